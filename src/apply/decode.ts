import { inflateRawSync } from 'node:zlib';
import { FastPatchError, type ErrorCode } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, OP_NAMES, OpType } from '../format/constants.js';
import { blockListHash, type WasmCore } from '../wasm/core.js';

/** What a decoder needs to know of one data-carrying operation. */
export interface DecodeJob {
  index: number;
  type: number;
  blob: Uint8Array;
  /** Signed block-list hash of the blob. */
  dataHash: Uint8Array;
  /** Bytes the operation's extents cover. */
  outputLength: number;
}

/** A decoded operation: its output and the per-block SHA-256 digests of that output. */
export interface Decoded {
  output: Uint8Array;
  digests: Uint8Array;
}

/**
 * Checks the blob against its signed hash, decodes it and hashes the output per block. Pure
 * computation, run in decode workers. Throws FastPatchError('HASH_MISMATCH' | 'CORRUPT_PAYLOAD').
 */
export function decodeOperation(core: WasmCore, job: DecodeJob): Decoded {
  const what = `operation ${job.index} (${OP_NAMES[job.type]})`;
  if (Buffer.compare(blockListHash(core, job.blob), job.dataHash) !== 0) {
    throw new FastPatchError('HASH_MISMATCH', `${what}: data does not match its signed hash`);
  }
  let output: Uint8Array;
  if (job.type === OpType.REPLACE) {
    output = job.blob;
  } else if (job.type === OpType.REPLACE_DEFLATE) {
    // One output chunk of the exact size: no re-assembly, and anything longer is an error.
    const size = Math.max(job.outputLength, 64);
    try {
      output = inflateRawSync(job.blob, { maxOutputLength: size, chunkSize: size });
    } catch (err) {
      throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: deflate stream does not decode to ${job.outputLength} bytes (${(err as Error).message})`);
    }
  } else {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: not a data operation`);
  }
  if (output.length !== job.outputLength) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: produces ${output.length} bytes, its extents hold ${job.outputLength}`);
  }
  const digests = new Uint8Array(Math.ceil(output.length / BLOCK_SIZE) * DIGEST_SIZE);
  core.blockDigestsInto(output, digests);
  return { output, digests };
}

/** A decode failure as it crosses a thread boundary. */
export interface DecodeFailure {
  code: ErrorCode | null;
  message: string;
}

export function toFailure(err: unknown): DecodeFailure {
  return err instanceof FastPatchError ? { code: err.code, message: err.message } : { code: null, message: err instanceof Error ? err.message : String(err) };
}

export function fromFailure(f: DecodeFailure): Error {
  return f.code ? new FastPatchError(f.code, f.message) : new Error(`decode worker: ${f.message}`);
}
