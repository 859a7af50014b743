/**
 * Worker thread body of the decode pool: each worker owns its WASM cores, so the machine's cores
 * check, inflate and patch different operations at once. Messages are DecodeJob in, Decoded out
 * (runtime/worker-pool.ts protocol); buffers move by transfer, never by copy.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isCloseMessage, toFailure } from '../runtime/worker-pool.js';
import { WasmCore, type CoreBuild } from '../wasm/core.js';
import { DeltaCore } from '../wasm/delta.js';
import { OpType } from '../format/constants.js';
import { GarbageMeter } from '../runtime/collect.js';
import { decodeOperation, KEEP_DELTA_BYTES, type DecodeJob } from './decode.js';

const build = (workerData as { build: CoreBuild }).build;
const core = WasmCore.load(build);
// Only delta payloads need the delta module; it is made on their first SOURCE_DIFF.
let delta: DeltaCore | undefined;
const deltaCore = () => (delta ??= new DeltaCore(build));
// What decoding leaves behind here: decompressed diff streams and a dropped delta module (runtime/collect.ts).
const garbage = new GarbageMeter();
const minor = () => garbage.minor();

parentPort!.on('message', (message: { id: number; job: DecodeJob }) => {
  // Jobs run one at a time, in order: every job sent before the close is done.
  if (isCloseMessage(message)) return parentPort!.close();
  try {
    const result = decodeOperation(core, message.job, deltaCore, minor);
    // A REPLACE output is a view of its blob, a SOURCE_COPY's of its source: each buffer goes once.
    const buffers = [result.output, result.digests, result.blob, result.source, result.spare, result.spareDigests];
    const transfer = new Set(buffers.map((b) => b?.buffer).filter((b) => b instanceof ArrayBuffer));
    // Before the answer, which releases the job's memory in the main thread's count (decode-pool.ts):
    // a SOURCE_DIFF leaves brotli decoders and decoded streams behind: young garbage, which a
    // young-generation collection frees at once (measured: a delta's apply peak at 8 GiB 150 -> 121
    // MiB, 1 GiB 113 -> 106). zstd and deflate leave nothing of size: they decompress into the
    // job's `out` (zlib-into.ts).
    settle(message.job);
    parentPort!.postMessage({ id: message.id, result }, [...transfer]);
    garbage.operation();
  } catch (err) {
    settle(message.job);
    parentPort!.postMessage({ id: message.id, failure: toFailure(err) });
  }
});

/**
 * Returns what a job left behind in this worker before its answer goes out: the main thread counts
 * a job's memory here only until then (decode-pool.ts), so it must be gone (a grown delta module
 * with it, KEEP_DELTA_BYTES).
 */
function settle(job: DecodeJob): void {
  if (delta && delta.memoryBytes > KEEP_DELTA_BYTES) {
    delta = undefined;
    garbage.full();
  } else if (job.type === OpType.SOURCE_DIFF) {
    garbage.minor();
  }
}
