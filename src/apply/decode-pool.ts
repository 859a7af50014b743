import { FastPatchError } from '../errors.js';
import type { CoreBuild } from '../wasm/core.js';
import { defaultWorkers, WorkerPool } from '../runtime/worker-pool.js';
import { workerBytes, type Decoded, type DecodeJob } from './decode.js';

/**
 * Memory the decode workers may use together beyond the buffers their jobs carry (workerBytes: the
 * delta module's memory, decompressed streams, zlib's output), whatever the number of workers. One
 * SOURCE_DIFF at every per-operation limit needs 96 MiB + 64 KiB, so it runs alone; operations of
 * generated payloads need a few MiB each and run on every worker at once.
 */
export const DECODE_MEMORY_BUDGET = 100 * 1024 * 1024;

/**
 * JS heap limits of a decode worker. Its JS objects are small (a job's message and views; the data
 * lives in shared buffers, WASM memory and zlib's native memory: a worker's live heap is ~7 MiB),
 * but V8 sizes a thread's heap for an application: the young generation grew as jobs went by and
 * promoted objects piled up in the old one. Measured with `npm run rss`'s images in one process
 * (library, 3 runs each, with COLLECT_EVERY_OPS): a full apply's peak 130-132 MiB at 1 GiB and
 * 141-143 at 8 GiB without limits, 123-125 and 133-134 with these. A 32 MiB old generation did a
 * little better on memory, but V8 scales the external memory a heap may see before a collection
 * with that limit, and each 16 MiB operation then set off a full collection (25 in a 512 MiB apply).
 */
export const WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 };

/** Environment variable that sets the number of decode workers (1-16), for tests and measurements. */
export const WORKERS_ENV = 'FASTPATCH_DECODE_WORKERS';

/**
 * Worker threads that check, inflate, patch and hash operations (decodeOperation) in parallel, one
 * WASM core each. The job's buffers (blob, source, and the output and digest buffers the main thread
 * lends) move to the worker by transfer and come back in the result. A job is sent only once the
 * memory it will use in its worker fits DECODE_MEMORY_BUDGET beside the jobs running (or none runs),
 * in the order jobs were given.
 */
export class DecodePool {
  private readonly pool: WorkerPool<DecodeJob, Decoded>;
  private charged = 0;
  private running = 0;
  private readonly waiting: { bytes: number; start: () => void }[] = [];

  /** @param workers decode workers (default: FASTPATCH_DECODE_WORKERS, else one per core, at most 4). */
  constructor(build: CoreBuild, workers = workersFromEnv() ?? defaultWorkers(), private readonly budget = DECODE_MEMORY_BUDGET) {
    if (!Number.isSafeInteger(workers) || workers < 1) throw new RangeError(`workers must be a whole number of at least 1, got ${workers}`);
    this.pool = new WorkerPool(new URL('./decode-worker.js', import.meta.url), { build }, 'decode worker', workers, WORKER_HEAP_LIMITS);
  }

  /** Starts the workers now rather than on the first job (their start-up then overlaps other work). */
  start(): void {
    this.pool.start();
  }

  /** Workers in the pool. */
  get workers(): number {
    return this.pool.size;
  }

  async decode(job: DecodeJob): Promise<Decoded> {
    const bytes = workerBytes(job);
    if (this.waiting.length > 0 || (this.running > 0 && this.charged + bytes > this.budget)) {
      await new Promise<void>((start) => this.waiting.push({ bytes, start })); // charged by startWaiting
    } else {
      this.charged += bytes;
      this.running++;
    }
    try {
      // Shared buffers (the applier's pools) go as they are; others move.
      const transfer = new Set([job.blob.buffer, job.source?.buffer, job.out?.buffer, job.digests?.buffer].filter((b) => b instanceof ArrayBuffer));
      return await this.pool.run(job, [...transfer]);
    } finally {
      this.charged -= bytes;
      this.running--;
      this.startWaiting();
    }
  }

  /** Stops the workers; jobs still pending are rejected. */
  close(): Promise<void> {
    return this.pool.close();
  }

  private startWaiting(): void {
    while (this.waiting.length > 0 && (this.running === 0 || this.charged + this.waiting[0]!.bytes <= this.budget)) {
      const next = this.waiting.shift()!;
      // Charged here, synchronously, so that the next one in line sees it.
      this.charged += next.bytes;
      this.running++;
      next.start();
    }
  }
}

function workersFromEnv(): number | undefined {
  const value = process.env[WORKERS_ENV];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 16) throw new FastPatchError('USAGE', `${WORKERS_ENV} must be a whole number from 1 to 16, got "${value}"; unset it for one worker per core`);
  return n;
}
