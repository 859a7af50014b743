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
    const { output, digests } = decodeOperation(core, message.job);
    // inflateRawSync may hand back a view of a pooled or larger buffer; transfer only what we own.
    const owned = output.byteOffset === 0 && output.byteLength === output.buffer.byteLength ? output : Uint8Array.from(output);
    parentPort!.postMessage({ id: message.id, output: owned, digests }, [owned.buffer as ArrayBuffer, digests.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: message.id, failure: toFailure(err) });
  }
});
