/**
 * Worker thread body of the diff pool: each worker owns a delta WASM instance holding a copy of
 * the source fingerprint index, and its own handles on the two images, so the machine's cores
 * encode different diff ranges at once. Messages: DiffJob in, DiffResult[] out (blobs by transfer).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openImageForRead } from '../io/device.js';
import { isCloseMessage, toFailure } from '../io/worker-pool.js';
import { DeltaCore } from '../wasm/delta.js';
import type { CoreBuild } from '../wasm/core.js';
import { encodeDiffJob, loadAnchors, type DiffContext, type DiffJob } from './diff-op.js';
import type { AnchorTables } from './source-index.js';

export interface DiffWorkerData {
  build: CoreBuild;
  sourcePath: string;
  targetPath: string;
  anchors: AnchorTables;
  quality: number;
  formatVersion: number;
  zstdLevel: number;
}

const data = workerData as DiffWorkerData;
const delta = new DeltaCore(data.build);
const ready: Promise<DiffContext> = (async () => ({
  delta,
  source: await openImageForRead(data.sourcePath),
  target: await openImageForRead(data.targetPath),
  anchors: loadAnchors(delta, data.anchors, () => {
    // Loaded into this worker's WASM memory: let go of the shared copy (the last worker to do so frees it).
    data.anchors = { keys: new Uint8Array(0), positions: new Uint8Array(0), mask: data.anchors.mask };
  }),
  quality: data.quality,
  formatVersion: data.formatVersion,
  zstdLevel: data.zstdLevel,
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
    } catch (err) {
      parentPort!.postMessage({ id: message.id, failure: toFailure(err) });
    }
  });
});
