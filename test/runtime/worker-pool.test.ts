// The worker pool hands jobs out from one queue, at most two per worker: short jobs given after a
// long one run on the free worker instead of waiting behind it, the costliest queued job goes
// first, and every job is answered once.
import { describe, expect, it } from 'vitest';
import { WorkerPool } from '../../dist/src/runtime/worker-pool.js';

const script = new URL('./fixtures/busy-worker.mjs', import.meta.url);

interface Job {
  ms: number;
  tag: string;
}
interface Done {
  thread: number;
  tag: string;
}

describe('WorkerPool', () => {
  it('short jobs given after a long one do not queue behind it', async () => {
    const pool = new WorkerPool<Job, Done>(script, undefined, 'test worker', 2);
    try {
      const long = pool.run({ ms: 1500, tag: 'long' });
      const short = Array.from({ length: 8 }, (_, i) => pool.run({ ms: 20, tag: `short ${i}` }));
      const done = await Promise.all([long, ...short]);
      const longThread = done[0]!.thread;
      // The long job's worker holds one more job (its next) at most; handed out in turn, as before
      // this pool had its queue, four of the eight waited for the long one.
      const behindLong = done.slice(1).filter((d) => d.thread === longThread).length;
      expect(behindLong).toBeLessThanOrEqual(1);
      expect(done.map((d) => d.tag)).toEqual(['long', ...short.map((_, i) => `short ${i}`)]);
    } finally {
      await pool.close();
    }
  });

  it('a free worker takes the queued job of highest priority first, equal ones in order', async () => {
    const pool = new WorkerPool<Job, Done>(script, undefined, 'test worker', 1);
    const started: string[] = [];
    try {
      // The one worker holds two jobs at most: 'first' and 'second' go at once, the rest queue.
      const jobs = [
        pool.run({ ms: 150, tag: 'first' }),
        pool.run({ ms: 10, tag: 'second' }),
        pool.run({ ms: 10, tag: 'low' }, [], 1),
        pool.run({ ms: 10, tag: 'high' }, [], 9),
        pool.run({ ms: 10, tag: 'middle a' }, [], 5),
        pool.run({ ms: 10, tag: 'middle b' }, [], 5),
      ];
      jobs.forEach((j) => void j.then((d) => started.push(d.tag)));
      await Promise.all(jobs);
      expect(started).toEqual(['first', 'second', 'high', 'middle a', 'middle b', 'low']);
    } finally {
      await pool.close();
    }
  });

  it('jobs still queued when the pool closes are rejected, not lost', async () => {
    const pool = new WorkerPool<Job, Done>(script, undefined, 'test worker', 1);
    const jobs = Array.from({ length: 4 }, (_, i) => pool.run({ ms: 50, tag: `job ${i}` }));
    const settled = Promise.allSettled(jobs);
    await pool.close();
    const results = await settled;
    // The worker had two (the one it ran and the next) and finished them; the others never left the queue.
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected']);
    expect((results[2] as PromiseRejectedResult).reason.message).toMatch(/pool closed/);
  });
});
