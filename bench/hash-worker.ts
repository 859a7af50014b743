/**
 * Worker for the 2-thread rows of bench/hash.ts: hashes its own copy of a slice per 4 KiB block,
 * once per 'run' message, and answers 'done'. Each worker loads its own WasmCore, as a
 * multi-threaded applier would: WASM instances are per thread.
 */
import * as crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { WasmCore } from '../src/wasm/core.js';

export type WorkerMode = 'wasm' | 'node';
export interface HashWorkerData {
  mode: WorkerMode;
  data: Uint8Array;
}

const BLOCK = 4096;
const sha256Block = (b: Uint8Array) => crypto.hash('sha256', b, 'buffer');
const { mode, data } = workerData as HashWorkerData;
const core = WasmCore.load('release');
const digests = new Uint8Array((core.windowSize / BLOCK) * 32);

/** Same loops as the single-thread cases in hash.ts. */
function runOnce(): void {
  if (mode === 'wasm') {
    for (let pos = 0; pos < data.length; pos += core.windowSize) {
      core.blockDigestsInto(data.subarray(pos, pos + core.windowSize), digests);
    }
  } else {
    for (let pos = 0; pos < data.length; pos += BLOCK) {
      digests.set(sha256Block(data.subarray(pos, pos + BLOCK)), ((pos / BLOCK) * 32) % digests.length);
    }
  }
}

parentPort!.on('message', (msg: string) => {
  if (msg === 'run') {
    runOnce();
    parentPort!.postMessage('done');
  }
});
parentPort!.postMessage('ready');
