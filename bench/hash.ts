/**
 * Section "hash": SHA-256 throughput of the WASM core against node:crypto (OpenSSL, SHA-NI) and
 * @noble/hashes (pure JS), per 4 KiB block and streaming, on one thread and on two workers.
 *
 * Per-block hashing is what generate and apply do for every block of an image, so it is the
 * figure that matters (bar a: WASM ≥ 0.7× node:crypto per block on one core). Input is random,
 * so nothing is faster for being zero or repeated.
 */
import * as crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { WasmCore } from '../src/wasm/core.js';
import { fmtPaired, fmtRange, fmtRate, fmtRatio, fmtRuns, measureInterleaved, paired, progress, table, withCanary, type Case, type Paired, type Stats } from './harness.js';
import type { HashWorkerData, WorkerMode } from './hash-worker.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;
const DATA_BYTES = 64 * MiB;
/** noble runs at ~0.15 GB/s; a quarter of the data keeps its rows short without changing the rate. */
const NOBLE_BYTES = 16 * MiB;
const STREAM_CHUNK = 1 * MiB;

// crypto.hash() arrived in Node 20.12; createHash() per block is the fallback (≈ 20% slower).
const hasOneShot = typeof crypto.hash === 'function';
const sha256Block = hasOneShot
  ? (b: Uint8Array) => crypto.hash('sha256', b, 'buffer')
  : (b: Uint8Array) => crypto.createHash('sha256').update(b).digest();

export interface HashFigures {
  wasmPerBlock: Stats;
  nodePerBlock: Stats;
  /** WASM / node:crypto, per block, one thread: bar (a). */
  perBlockRatio: Paired;
  wasmStream: Stats;
  nodeStream: Stats;
  streamRatio: Paired;
  wasm2: Stats | undefined;
  node2: Stats | undefined;
  workersRatio: Paired | undefined;
}

export async function runHash(rounds: number): Promise<HashFigures> {
  let figures: HashFigures | undefined;
  await withCanary('hash', async () => {
    figures = await measure(rounds);
  });
  return figures!;
}

async function measure(rounds: number): Promise<HashFigures> {
  progress('hash: 64 MiB of random data');
  const data = crypto.randomFillSync(new Uint8Array(DATA_BYTES));
  const core = WasmCore.load('release');
  const windowBlocks = core.windowSize / BLOCK;
  // Every case stores its digests (one window's worth, reused) as generate and apply do.
  const digests = new Uint8Array(windowBlocks * 32);
  const noble = data.subarray(0, NOBLE_BYTES);

  const perBlock: Case[] = [
    {
      name: `WASM release \`blockDigestsInto\` (one call per ${core.windowSize / MiB} MiB window)`,
      bytes: DATA_BYTES,
      run: () => {
        for (let pos = 0; pos < DATA_BYTES; pos += core.windowSize) {
          core.blockDigestsInto(data.subarray(pos, pos + core.windowSize), digests);
        }
      },
    },
    {
      name: `node:crypto \`${hasOneShot ? 'crypto.hash' : 'createHash'}\` per block`,
      bytes: DATA_BYTES,
      run: () => {
        for (let pos = 0, i = 0; pos < DATA_BYTES; pos += BLOCK, i = (i + 1) % windowBlocks) {
          digests.set(sha256Block(data.subarray(pos, pos + BLOCK)), i * 32);
        }
      },
    },
    {
      name: 'node:crypto `createHash` per block',
      bytes: DATA_BYTES,
      run: () => {
        for (let pos = 0, i = 0; pos < DATA_BYTES; pos += BLOCK, i = (i + 1) % windowBlocks) {
          digests.set(crypto.createHash('sha256').update(data.subarray(pos, pos + BLOCK)).digest(), i * 32);
        }
      },
    },
    {
      name: `@noble/hashes \`sha256\` per block (${NOBLE_BYTES / MiB} MiB)`,
      bytes: NOBLE_BYTES,
      run: () => {
        for (let pos = 0, i = 0; pos < NOBLE_BYTES; pos += BLOCK, i = (i + 1) % windowBlocks) {
          digests.set(nobleSha256(noble.subarray(pos, pos + BLOCK)), i * 32);
        }
      },
    },
  ];
  const streaming: Case[] = [
    {
      name: 'WASM release `core.sha256().update()`',
      bytes: DATA_BYTES,
      run: () => {
        const h = core.sha256();
        for (let pos = 0; pos < DATA_BYTES; pos += STREAM_CHUNK) h.update(data.subarray(pos, pos + STREAM_CHUNK));
        h.digest();
      },
    },
    {
      name: 'node:crypto `createHash().update()`',
      bytes: DATA_BYTES,
      run: () => {
        const h = crypto.createHash('sha256');
        for (let pos = 0; pos < DATA_BYTES; pos += STREAM_CHUNK) h.update(data.subarray(pos, pos + STREAM_CHUNK));
        h.digest();
      },
    },
    {
      name: `@noble/hashes \`sha256.create().update()\` (${NOBLE_BYTES / MiB} MiB)`,
      bytes: NOBLE_BYTES,
      run: () => {
        const h = nobleSha256.create();
        for (let pos = 0; pos < NOBLE_BYTES; pos += STREAM_CHUNK) h.update(noble.subarray(pos, pos + STREAM_CHUNK));
        h.digest();
      },
    },
  ];
  // One interleaved set, so per-block and streaming rows share their noise.
  const all = [...perBlock, ...streaming];
  const stats = await measureInterleaved('hash (1 thread)', all, { rounds });
  const s = (c: Case) => stats.get(c.name)!;
  const [wasmPB, nodePB] = [s(perBlock[0]!), s(perBlock[1]!)];
  const [wasmST, nodeST] = [s(streaming[0]!), s(streaming[1]!)];
  const rows = (cases: Case[], peer: Stats) => cases.map((c) => {
    const x = s(c);
    return [x.name, fmtRange(x), fmtRate(x.perCpuSecond), fmtPaired(paired(x, peer)), fmtRuns(x), x.othersCores.toFixed(2)];
  });
  const headers = ['candidate', 'MB/s median (min–max)', 'MB per CPU-s', '× node:crypto', 'clean runs', 'others\' cores'];
  table(`SHA-256 per 4 KiB block, one thread (${DATA_BYTES / MiB} MiB random)`, headers, rows(perBlock, nodePB));
  table(`SHA-256 streaming, ${STREAM_CHUNK / MiB} MiB updates, one thread`, headers, rows(streaming, nodeST));

  let wasm2: Stats | undefined;
  let node2: Stats | undefined;
  try {
    ({ wasm2, node2 } = await measureWorkers(data, rounds));
    const h2 = ['candidate', 'MB/s median (min–max)', '× same on 1 thread', '× node:crypto (2 workers)', 'clean runs', 'others\' cores'];
    table('SHA-256 per 4 KiB block, 2 worker threads (each its own WasmCore, 32 MiB each)', h2, [
      [wasm2.name, fmtRange(wasm2), fmtRatio(wasm2.median / wasmPB.median), fmtPaired(paired(wasm2, node2)), fmtRuns(wasm2), wasm2.othersCores.toFixed(2)],
      [node2.name, fmtRange(node2), fmtRatio(node2.median / nodePB.median), '1.00', fmtRuns(node2), node2.othersCores.toFixed(2)],
    ]);
  } catch (err) {
    progress(`hash: 2-worker rows skipped: ${(err as Error).message}`);
  }
  return {
    wasmPerBlock: wasmPB,
    nodePerBlock: nodePB,
    perBlockRatio: paired(wasmPB, nodePB),
    wasmStream: wasmST,
    nodeStream: nodeST,
    streamRatio: paired(wasmST, nodeST),
    wasm2,
    node2,
    workersRatio: wasm2 && node2 ? paired(wasm2, node2) : undefined,
  };
}

/** Starts one worker with its own copy of `data` and resolves once it has loaded its core. */
function startWorker(mode: WorkerMode, data: Uint8Array): Promise<Worker> {
  const workerData: HashWorkerData = { mode, data };
  const worker = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve(worker));
  });
}

function runWorker(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve());
    worker.postMessage('run');
  });
}

/** Both workers start together; the run ends when the slower one is done (wall time in this thread). */
async function measureWorkers(data: Uint8Array, rounds: number): Promise<{ wasm2: Stats; node2: Stats }> {
  const half = data.length / 2;
  const pairs = new Map<WorkerMode, Worker[]>();
  try {
    for (const mode of ['wasm', 'node'] as const) {
      pairs.set(mode, await Promise.all([startWorker(mode, data.slice(0, half)), startWorker(mode, data.slice(half))]));
    }
    const cases: Case[] = (['wasm', 'node'] as const).map((mode) => ({
      name: mode === 'wasm' ? 'WASM `blockDigestsInto`, 2 workers' : `node:crypto \`${hasOneShot ? 'crypto.hash' : 'createHash'}\` per block, 2 workers`,
      bytes: data.length,
      cores: 2,
      run: () => Promise.all(pairs.get(mode)!.map(runWorker)),
    }));
    const stats = await measureInterleaved('hash (2 workers)', cases, { rounds });
    return { wasm2: stats.get(cases[0]!.name)!, node2: stats.get(cases[1]!.name)! };
  } finally {
    await Promise.all([...pairs.values()].flat().map((w) => w.terminate()));
  }
}
