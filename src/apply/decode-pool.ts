import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CoreBuild } from '../wasm/core.js';
import { fromFailure, type Decoded, type DecodeFailure, type DecodeJob } from './decode.js';

interface Pending {
  resolve: (d: Decoded) => void;
  reject: (e: Error) => void;
}

/**
 * Worker threads that check, inflate and hash operations (decodeOperation) in parallel, one WASM
 * core each. Jobs go to the least busy worker; results come back by transfer. Workers start on the
 * first job, so payloads that fail before their data never pay for them.
 */
export class DecodePool {
  private workers: { worker: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;
  /** Why the pool stopped working: a worker died, and its jobs cannot be told apart from the others'. */
  private broken: Error | undefined;

  constructor(private readonly build: CoreBuild, private readonly size = Math.max(1, Math.min(availableParallelism(), 4))) {}

  /**
   * Decodes one job. The whole buffer under the job's blob moves to the worker by transfer (the
   * reader's blobs own theirs) and comes back as the result's blob.
   */
  decode(job: DecodeJob): Promise<Decoded> {
    if (this.closed) return Promise.reject(new Error('decode pool is closed'));
    if (this.broken) return Promise.reject(this.broken);
    if (this.workers.length === 0) this.start();
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy++;
    return new Promise<Decoded>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (d) => { slot.busy--; resolve(d); },
        reject: (e) => { slot.busy--; reject(e); },
      });
      slot.worker.postMessage({ id, job }, [job.blob.buffer as ArrayBuffer]);
    });
  }

  /** Stops the workers; jobs still pending are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate()));
    this.failAll(new Error('decode pool closed'));
  }

  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(new URL('./decode-worker.js', import.meta.url), { workerData: { build: this.build } });
      worker.on('message', (m: { id: number; decoded?: Decoded; failure?: DecodeFailure }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.failure) p.reject(fromFailure(m.failure));
        else p.resolve(m.decoded!);
      });
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`decode worker exited with code ${code}`));
      });
      this.workers.push({ worker, busy: 0 });
    }
  }

  /** A worker died: reject everything pending and every later job, and stop the other workers. */
  private fail(err: Error): void {
    if (this.broken || this.closed) return;
    this.broken = err;
    const workers = this.workers;
    this.workers = [];
    for (const w of workers) void w.worker.terminate();
    this.failAll(err);
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
