import { FastPatchError } from '../errors.js';
import type { CoreBuild } from '../wasm/core.js';
import { defaultWorkers, WorkerPool } from '../io/worker-pool.js';
import { workerBytes, type Decoded, type DecodeJob } from './decode.js';

/**
 * Memory the decode workers may use together beyond the buffers their jobs carry (workerBytes: the
 * delta module's memory, decompressed streams, zlib's output), whatever the number of workers. One
 * SOURCE_DIFF at every per-operation limit needs 96 MiB + 64 KiB, so it runs alone; operations of
 * generated payloads need a few MiB each and run on every worker at once.
 */
export const DECODE_MEMORY_BUDGET = 100 * 1024 * 1024;

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
    this.pool = new WorkerPool(new URL('./decode-worker.js', import.meta.url), { build }, 'decode worker', workers);
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
      const transfer = new Set([job.blob.buffer, job.source?.buffer, job.out?.buffer, job.digests?.buffer].filter((b) => b !== undefined) as ArrayBuffer[]);
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
