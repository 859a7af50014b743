/**
 * The floor under a delta's apply time on this machine: the SHA-256 that its checks alone need,
 * run by the WASM hasher on every core at once, from memory (no reads, no writes, no decoding).
 *
 * An apply checks each source block it reads, each target-dictionary block it reads back, each
 * output it decodes and each operation's data, every one as 4 KiB block digests (src/apply/
 * decode.ts). A SOURCE_COPY's output digests are its source's, a ZERO's one digest repeated:
 * neither hashes again. No apply that keeps every check can finish faster than this; bar (d3)
 * compares it with the time 80% of dd leaves (bench/RESULTS.md).
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { blockBytes, BLOCK_SIZE, decodeHeader, decodeManifest, HEADER_SIZE, OpType, type Extent } from '../src/format/index.js';
import { runWorker, startWorker } from './hash.js';

export interface CheckFloor {
  /** Bytes each kind of check hashes. */
  source: number;
  dictionary: number;
  output: number;
  data: number;
  total: number;
  threads: number;
  /** Best of the rounds: the floor, not a typical run. */
  seconds: number;
}

/** What a payload's checks hash, by kind, and where: extents of the source image and of the target. */
export function checkedBytes(payload: Uint8Array): Omit<CheckFloor, 'threads' | 'seconds'> & { sourceExtents: Extent[]; targetExtents: Extent[]; dataRanges: [number, number][] } {
  const header = decodeHeader(payload);
  if ('need' in header) throw new Error('payload shorter than its header');
  const m = decodeManifest(payload.subarray(HEADER_SIZE, HEADER_SIZE + header.manifestSize));
  const dataStart = HEADER_SIZE + header.manifestSize + header.signaturesSize;
  const sourceExtents: Extent[] = [];
  const targetExtents: Extent[] = [];
  const dataRanges: [number, number][] = [];
  let dictionary = 0;
  let output = 0;
  for (const op of m.operations) {
    if (op.sourceHash) sourceExtents.push(...op.srcExtents);
    for (const e of op.targetDictionary ?? []) {
      targetExtents.push(e);
      dictionary += e.blockCount * BLOCK_SIZE;
    }
    if (op.type !== OpType.SOURCE_COPY && op.type !== OpType.ZERO) {
      targetExtents.push(...op.dstExtents);
      output += blockBytes(op.dstExtents);
    }
    if (op.dataLength > 0) dataRanges.push([dataStart + op.dataOffset, op.dataLength]);
  }
  const source = blockBytes(sourceExtents);
  const data = dataRanges.reduce((n, [, length]) => n + length, 0);
  return { source, dictionary, output, data, total: source + dictionary + output + data, sourceExtents, targetExtents, dataRanges };
}

/**
 * Reads the blocks the payload's checks hash (from the two images and the payload itself) into
 * memory, then hashes them on `threads` workers at once, `rounds` times: the fastest round.
 * The real blocks, not random ones: the hasher takes a short cut for all-zero blocks (core.ts).
 */
export async function measureCheckFloor(payloadPath: string, sourcePath: string, targetPath: string, threads = availableParallelism(), rounds = 3): Promise<CheckFloor> {
  const payload = readFileSync(payloadPath);
  const { sourceExtents, targetExtents, dataRanges, ...bytes } = checkedBytes(payload);
  // Whole 4 KiB blocks per worker (the data's tail block is padded with zeros, as the applier's is).
  const blocks = (bytes.source + bytes.dictionary + bytes.output) / BLOCK_SIZE + dataRanges.reduce((n, [, length]) => n + Math.ceil(length / BLOCK_SIZE), 0);
  const all = new Uint8Array(Math.ceil(blocks / threads) * threads * BLOCK_SIZE);
  let at = 0;
  for (const [path, extents] of [[sourcePath, sourceExtents], [targetPath, targetExtents]] as const) {
    const fd = openSync(path, 'r');
    try {
      for (const e of extents) at += readSync(fd, all, at, e.blockCount * BLOCK_SIZE, e.startBlock * BLOCK_SIZE);
    } finally {
      closeSync(fd);
    }
  }
  for (const [offset, length] of dataRanges) {
    all.set(payload.subarray(offset, offset + length), at);
    at += Math.ceil(length / BLOCK_SIZE) * BLOCK_SIZE;
  }
  const share = all.length / threads;
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < threads; i++) workers.push(await startWorker('wasm', all.slice(i * share, (i + 1) * share)));
    let seconds = Infinity;
    for (let r = 0; r < rounds; r++) {
      const started = performance.now();
      await Promise.all(workers.map(runWorker));
      seconds = Math.min(seconds, (performance.now() - started) / 1000);
    }
    return { ...bytes, threads, seconds };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
