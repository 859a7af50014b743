/**
 * Worker thread body of the decode pool: each worker owns its WASM core, so the two cores of the
 * machine inflate and hash different operations at once. Messages are DecodeJob in, Decoded or
 * DecodeFailure out; buffers move by transfer, never by copy.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WasmCore, type CoreBuild } from '../wasm/core.js';
import { decodeOperation, toFailure, type DecodeJob } from './decode.js';

const core = WasmCore.load((workerData as { build: CoreBuild }).build);

parentPort!.on('message', (message: { id: number; job: DecodeJob }) => {
  try {
    const { output, digests, blob } = decodeOperation(core, message.job);
    // A REPLACE output is a view of its blob: each buffer goes once in the transfer list.
    const transfer = new Set([output.buffer, digests.buffer, blob.buffer] as ArrayBuffer[]);
    parentPort!.postMessage({ id: message.id, decoded: { output, digests, blob } }, [...transfer]);
  } catch (err) {
    parentPort!.postMessage({ id: message.id, failure: toFailure(err) });
  }
});
