/**
 * Worker thread body of the diff pool: each worker owns a delta WASM instance (the matcher's) and
 * its own handles on the two images, so the machine's cores encode different diff ranges at once.
 * The fingerprint indexes stay in the main thread, which sends each job's votes (diff-votes.ts,
 * votesOf). Messages: DiffJob in, DiffResult[] out (blobs by transfer).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openImageForRead } from '../io/device.js';
import { GarbageMeter } from '../runtime/collect.js';
import { isCloseMessage, toFailure } from '../runtime/worker-pool.js';
import { DeltaCore } from '../wasm/delta.js';
import type { CoreBuild } from '../wasm/core.js';
import { BLOCK_SIZE } from '../format/constants.js';
import { DIFF_OP_BLOCKS } from './delta-plan.js';
import { encodeDiffJob, MAX_DIFF_SOURCE_BLOCKS, type DiffContext, type DiffJob } from './diff-op.js';

export interface DiffWorkerData {
  build: CoreBuild;
  sourcePath: string;
  targetPath: string;
  quality: number;
  formatVersion: number;
  zstdLevel: number;
}

const data = workerData as DiffWorkerData;
const delta = new DeltaCore(data.build);
// Its memory sized once, for the largest job the planner makes (a range of DIFF_OP_BLOCKS against at
// most MAX_DIFF_SOURCE_BLOCKS of source): never grown mid-run.
delta.reserve(DeltaCore.diffEncodeBytes(MAX_DIFF_SOURCE_BLOCKS * BLOCK_SIZE, DIFF_OP_BLOCKS * BLOCK_SIZE));
// Each job lets go of ~40 MiB of buffers (the range, its source blocks, dictionaries, streams);
// V8 would collect them at its own pace, and the two workers' piles added up at the peak.
const garbage = new GarbageMeter();
const ready: Promise<DiffContext> = (async () => ({
  delta,
  source: await openImageForRead(data.sourcePath),
  target: await openImageForRead(data.targetPath),
  quality: data.quality,
  formatVersion: data.formatVersion,
  zstdLevel: data.zstdLevel,
  collect: () => garbage.minor(),
}))();

// One job at a time per worker: the delta module's scratch memory is reused from job to job.
let queue: Promise<void> = Promise.resolve();
parentPort!.on('message', (message: { id: number; job: DiffJob }) => {
  if (isCloseMessage(message)) {
    queue = queue.then(() => parentPort!.close()); // after the jobs already queued
    return;
  }
  queue = queue.then(async () => {
    try {
      const result = await encodeDiffJob(await ready, message.job);
      parentPort!.postMessage({ id: message.id, result }, result.map((r) => r.blob.buffer as ArrayBuffer));
      garbage.minor();
    } catch (err) {
      parentPort!.postMessage({ id: message.id, failure: toFailure(err) });
    }
  });
});
