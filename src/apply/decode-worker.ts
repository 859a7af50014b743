/**
 * Worker thread body of the decode pool: each worker owns its WASM cores, so the machine's cores
 * check, inflate and patch different operations at once. Messages are DecodeJob in, Decoded out
 * (io/worker-pool.ts protocol); buffers move by transfer, never by copy.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isCloseMessage, toFailure } from '../io/worker-pool.js';
import { WasmCore, type CoreBuild } from '../wasm/core.js';
import { DeltaCore } from '../wasm/delta.js';
import { OpType } from '../format/constants.js';
import { GarbageMeter } from './collect.js';
import { decodeOperation, type DecodeJob } from './decode.js';

const build = (workerData as { build: CoreBuild }).build;
const core = WasmCore.load(build);
// Only delta payloads need the delta module; it is made on their first SOURCE_DIFF.
let delta: DeltaCore | undefined;
const deltaCore = () => (delta ??= new DeltaCore(build));
// What decoding leaves behind here: inflated and patched streams, source copies (collect.ts).
const garbage = new GarbageMeter();

parentPort!.on('message', (message: { id: number; job: DecodeJob }) => {
  // Jobs run one at a time, in order: every job sent before the close is done.
  if (isCloseMessage(message)) return parentPort!.close();
  try {
    const result = decodeOperation(core, message.job, deltaCore);
    // A REPLACE output is a view of its blob, a SOURCE_COPY's of its source: each buffer goes once.
    const transfer = new Set([result.output.buffer, result.digests.buffer, result.blob.buffer, result.source?.buffer, result.spare?.buffer].filter((b) => b !== undefined) as ArrayBuffer[]);
    parentPort!.postMessage({ id: message.id, result }, [...transfer]);
    garbage.released(message.job.blob.byteLength + result.output.byteLength);
    // A SOURCE_DIFF leaves brotli decoders and decoded streams behind; a young-generation collection
    // right away frees them (measured: a delta's apply peak at 8 GiB 150 -> 121 MiB, 1 GiB 113 -> 106).
    if (message.job.type === OpType.SOURCE_DIFF) garbage.minor();
  } catch (err) {
    parentPort!.postMessage({ id: message.id, failure: toFailure(err) });
  }
});
