import { inflateRawSync } from 'node:zlib';
import { FastPatchError, type ErrorCode } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, OP_NAMES, OpType } from '../format/constants.js';
import type { WasmCore } from '../wasm/core.js';

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
  /** A view of the blob's buffer or of a buffer of its own, so that it can move by transfer. */
  output: Uint8Array;
  digests: Uint8Array;
  /** The job's blob, handed back for reuse; a REPLACE output shares its memory. */
  blob: Uint8Array;
}

/**
 * Checks the blob against its signed hash, decodes it and hashes the output per block. Pure
 * computation, run in decode workers. Throws FastPatchError('HASH_MISMATCH' | 'CORRUPT_PAYLOAD').
 */
export function decodeOperation(core: WasmCore, job: DecodeJob): Decoded {
  const what = `operation ${job.index} (${OP_NAMES[job.type]})`;
  const blobDigests = blockDigests(core, job.blob);
  if (Buffer.compare(core.sha256().update(blobDigests).digest(), job.dataHash) !== 0) {
    throw new FastPatchError('HASH_MISMATCH', `${what}: data does not match its signed hash`);
  }
  let output: Uint8Array;
  if (job.type === OpType.REPLACE) {
    // The blob is the output: its block digests, just computed, are the output's.
    if (job.blob.length !== job.outputLength) throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${job.blob.length} bytes of data for ${job.outputLength} of output`);
    return { output: job.blob, digests: blobDigests, blob: job.blob };
  } else if (job.type === OpType.REPLACE_DEFLATE) {
    // One output chunk: no re-assembly, and anything longer than the output is an error. The chunk
    // has a byte to spare because zlib allocates a second, unused chunk after filling one exactly,
    // and that churn maps fresh pages (measured on 2 MiB outputs: ~1.5× the page faults and inflate time).
    const size = Math.max(job.outputLength, 64);
    const chunkSize = size + 1;
    try {
      output = inflateRawSync(job.blob, { maxOutputLength: size, chunkSize });
    } catch (err) {
      throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: deflate stream does not decode to ${job.outputLength} bytes (${(err as Error).message})`);
    }
    // Small chunks are views of Buffer's shared pool, which must not be transferred: copy those.
    if (output.buffer.byteLength !== chunkSize) output = Uint8Array.from(output);
  } else {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: not a data operation`);
  }
  if (output.length !== job.outputLength) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: produces ${output.length} bytes, its extents hold ${job.outputLength}`);
  }
  return { output, digests: blockDigests(core, output), blob: job.blob };
}

/** SHA-256 of each 4096-byte block of `data` (the last may be short), in a new array. */
function blockDigests(core: WasmCore, data: Uint8Array): Uint8Array {
  const digests = new Uint8Array(Math.ceil(data.length / BLOCK_SIZE) * DIGEST_SIZE);
  core.blockDigestsInto(data, digests);
  return digests;
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
