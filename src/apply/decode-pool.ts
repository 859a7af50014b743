import type { CoreBuild } from '../wasm/core.js';
import { WorkerPool } from '../io/worker-pool.js';
import type { Decoded, DecodeJob } from './decode.js';

/**
 * Worker threads that check, inflate, patch and hash operations (decodeOperation) in parallel, one
 * WASM core each. The job's buffers (blob, source, and the output and digest buffers the main thread
 * lends) move to the worker by transfer and come back in the result.
 */
export class DecodePool {
  private readonly pool: WorkerPool<DecodeJob, Decoded>;

  constructor(build: CoreBuild) {
    this.pool = new WorkerPool(new URL('./decode-worker.js', import.meta.url), { build }, 'decode worker');
  }

  decode(job: DecodeJob): Promise<Decoded> {
    const transfer = new Set([job.blob.buffer, job.source?.buffer, job.out?.buffer, job.digests?.buffer].filter((b) => b !== undefined) as ArrayBuffer[]);
    return this.pool.run(job, [...transfer]);
  }

  /** Stops the workers; jobs still pending are rejected. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
