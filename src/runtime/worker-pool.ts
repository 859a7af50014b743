/**
 * A fixed set of worker threads running one kind of job, for the CPU-heavy stages that must use
 * both cores (decoding operations on apply, diffing ranges on generate). Jobs wait in one queue and
 * go to a worker when it holds fewer than JOBS_PER_WORKER; buffers listed for transfer move
 * instead of being copied. Workers start on the first job, so work that fails early never pays
 * for them, or on start(), when the caller knows they will be needed and has other work to
 * overlap their start-up with. A worker that dies fails every pending and later
 * job: its jobs cannot be told apart from the others'.
 *
 * Protocol with the worker body: it receives { id, job } and answers { id, result } or
 * { id, failure } (a FastPatchError's code and message cross the thread boundary as plain data).
 */
import { availableParallelism } from 'node:os';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { FastPatchError, type ErrorCode } from '../errors.js';

interface Pending<R> {
  resolve: (r: R) => void;
  reject: (e: Error) => void;
}

/** A worker and the jobs (ids) it was given and has not answered yet. */
interface Slot {
  worker: Worker;
  jobs: Set<number>;
}

/**
 * Jobs a worker holds at once: the one it runs and the next, so that it never waits for a round
 * trip to the main thread, and no more: jobs handed out as they came (to the least busy worker)
 * queued behind a long one on one worker while the other ran dry (delta generation's 4 MiB
 * ranges take 10 ms to 1.7 s).
 */
const JOBS_PER_WORKER = 2;

/** The message that asks a worker to finish its jobs and exit (see isCloseMessage). */
export const CLOSE = { close: true } as const;
/** How long a closing worker may take to finish its jobs before it is terminated. */
const CLOSE_TIMEOUT_MS = 30_000;

/** True for the pool's request to stop: the worker closes its port once its jobs are done. */
export function isCloseMessage(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { close?: unknown }).close === true;
}

/** A job failure as it crosses a thread boundary. */
export interface JobFailure {
  code: ErrorCode | null;
  message: string;
}

export function toFailure(err: unknown): JobFailure {
  return err instanceof FastPatchError ? { code: err.code, message: err.message } : { code: null, message: err instanceof Error ? err.message : String(err) };
}

export function fromFailure(f: JobFailure, what: string): Error {
  return f.code ? new FastPatchError(f.code, f.message) : new Error(`${what}: ${f.message}`);
}

/** Workers for most jobs: one per core, at most 4 (measured: more only adds memory). */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(availableParallelism(), 4));
}

export class WorkerPool<J, R> {
  private workers: Slot[] = [];
  private readonly pending = new Map<number, Pending<R>>();
  /** Jobs not yet given to a worker, in the order they came (dispatch takes the highest priority first). */
  private queued: { id: number; job: J; transfer: readonly ArrayBuffer[]; priority: number }[] = [];
  private nextId = 0;
  private closed = false;
  private broken: Error | undefined;

  /**
   * @param script  the worker body's URL
   * @param name    what the workers do, for error messages ("decode worker")
   * @param resourceLimits  the workers' JS heap limits (node:worker_threads), if any
   */
  constructor(
    private readonly script: URL,
    private workerData: unknown,
    private readonly name: string,
    readonly size = defaultWorkers(),
    private readonly resourceLimits?: ResourceLimits,
  ) {}

  /**
   * Queues a job; a free worker takes the queued job of highest `priority` first, and of equal
   * priority the oldest. A caller that knows what its jobs cost gives the costliest the highest:
   * started last, one long job leaves the other workers idle while it runs.
   */
  run(job: J, transfer: readonly ArrayBuffer[] = [], priority = 0): Promise<R> {
    if (this.closed) return Promise.reject(new Error(`${this.name} pool is closed`));
    if (this.broken) return Promise.reject(this.broken);
    this.start();
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queued.push({ id, job, transfer, priority });
      this.dispatch();
    });
  }

  /** Gives queued jobs to the workers that hold fewer than JOBS_PER_WORKER. */
  private dispatch(): void {
    while (this.queued.length > 0 && !this.closed && !this.broken) {
      const slot = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
      if (slot.jobs.size >= JOBS_PER_WORKER) return;
      let next = 0;
      for (let i = 1; i < this.queued.length; i++) if (this.queued[i]!.priority > this.queued[next]!.priority) next = i;
      const { id, job, transfer } = this.queued.splice(next, 1)[0]!;
      slot.jobs.add(id);
      slot.worker.postMessage({ id, job }, [...transfer]);
    }
  }

  /** Jobs given and not yet answered. */
  get inflight(): number {
    return this.pending.size;
  }

  /** Stops the workers; jobs still pending are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers;
    this.workers = [];
    // Asked to stop, not terminated: a worker terminated in the middle of a job can take the whole
    // process down (Node 20 asserts "close before init" tearing down a zlib stream the job was
    // making: seen in CI). A worker finishes the jobs it has, then closes its port and exits.
    await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
      w.worker.once('exit', () => resolve());
      w.worker.postMessage(CLOSE);
      setTimeout(() => void w.worker.terminate(), CLOSE_TIMEOUT_MS).unref();
    })));
    this.failAll(new Error(`${this.name} pool closed`));
  }

  /** Starts the workers, unless they are running (or the pool is closed or broken); run() calls it. */
  start(): void {
    if (this.workers.length > 0 || this.closed || this.broken) return;
    const workerData = this.workerData;
    // Workers start once, together, and are never replaced: their data need not be kept here.
    this.workerData = undefined;
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(this.script, { workerData, ...(this.resourceLimits ? { resourceLimits: this.resourceLimits } : {}) });
      const slot: Slot = { worker, jobs: new Set() };
      worker.on('message', (m: { id: number; result?: R; failure?: JobFailure }) => {
        const p = this.pending.get(m.id);
        if (!p || !slot.jobs.delete(m.id)) return;
        this.pending.delete(m.id);
        if (m.failure) p.reject(fromFailure(m.failure, this.name));
        else p.resolve(m.result!);
        this.dispatch();
      });
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`${this.name} exited with code ${code}`));
      });
      this.workers.push(slot);
    }
  }

  private fail(err: Error): void {
    if (this.broken || this.closed) return;
    this.broken = err;
    const workers = this.workers;
    this.workers = [];
    for (const w of workers) void w.worker.terminate();
    this.failAll(err);
  }

  private failAll(err: Error): void {
    this.queued = [];
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
