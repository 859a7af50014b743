/**
 * Collecting the garbage of an apply, and of delta generation's diff workers, as it goes. V8 frees a dead ArrayBuffer's memory only when it
 * collects the JS object that owns it, and it collects an isolate when its JS heap fills or its
 * external memory grows by a wide margin. An applier's JS heap hardly grows (small objects, with
 * megabytes of buffers each), so the buffers its operations let go of (inflated outputs, patch
 * streams, transferred blobs) piled up, in the main thread and in each decode worker, and peak
 * memory grew with the length of the run, that is with the image. Measured with `npm run rss`
 * (medians of 3), a full collection every 32 MiB let go took a full payload's apply from 171 MiB
 * at 1 GiB and 188 MiB at 8 GiB to 136 and 145 MiB.
 *
 * Those collections cost time once the rest got fast: on the 512 MiB bench rootfs (16 MiB
 * operations), a full collection per 32 MiB in the main thread and in each worker, and a
 * young-generation one per operation in the workers, took 2.86 CPU-seconds of apply to 2.22
 * without them (medians of 6; V8's helper threads alone 0.38 -> 0.05). Now nothing large is let go
 * per operation: outputs are decompressed into pooled buffers (zlib-into.ts), which are shared
 * with the workers rather than transferred (buffer-pool.ts), and blobs are read into pooled
 * buffers. What is left: a full collection when the pools have dropped COLLECT_EVERY bytes (shared
 * memory, which V8 does not count towards collecting), one every COLLECT_EVERY_OPS operations in
 * each thread for the small objects each operation leaves (a few promoted to the old generation,
 * otherwise collected only at a limit sized for the whole application), and young-generation ones
 * after a SOURCE_DIFF's decompressed streams. The decode workers' heaps are also kept small
 * (decode-pool.ts, WORKER_HEAP_LIMITS).
 *
 * The diff workers of delta generation (generate/diff-worker.ts) run a young-generation collection
 * after each job and before its zstd encodings, whose tables are the worker's peak.
 *
 * Node exposes no collection call without a command-line flag; the flag is set at run time, once,
 * and the function taken from a fresh context (the documented effect of --expose-gc). Where that
 * fails, the collector does nothing and V8 collects on its own schedule.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread } from 'node:worker_threads';

let collectNow: (() => void) | null | undefined;
let flagSet = false;

/**
 * Exposes the collection function, once per process and from the main thread only, before any
 * decode worker starts (tuneRuntime, runtime/tune.ts, which the host calls): V8 flags are
 * process-wide and are not meant to change while other threads run. A worker only takes the
 * function from a fresh context, where the flag makes V8 install it.
 */
export function enableCollection(): void {
  if (!isMainThread || flagSet) return;
  flagSet = true;
  try {
    setFlagsFromString('--expose-gc');
  } catch {
    collectNow = null;
  }
}

function collector(): (() => void) | null {
  if (collectNow === undefined) {
    try {
      const gc = runInNewContext('typeof gc === "function" ? gc : null') as unknown;
      collectNow = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collectNow = null;
    }
  }
  return collectNow;
}

/** Bytes of buffers let go between two collections. */
export const COLLECT_EVERY = 32 * 1024 * 1024;

/**
 * Operations between two full collections (GarbageMeter.operation). Measured with `npm run rss`'s
 * images in one process (library, medians of 3, with WORKER_HEAP_LIMITS): a full apply's peak
 * 119 -> 132 MiB from 1 to 8 GiB without, 120 -> 126 with it (2,034 operations at 8 GiB; a
 * 512 MiB image of 16 MiB operations has 30, and none of these collections).
 */
export const COLLECT_EVERY_OPS = 256;

/** Counts bytes let go and operations done, and runs a full collection when enough have gone by. */
export class GarbageMeter {
  private since = 0;
  private ops = 0;

  constructor(private readonly every = COLLECT_EVERY) {}

  /** A young-generation collection only (cheap): frees what the last operation just let go. */
  minor(): void {
    (collector() as ((o?: { type: string }) => void) | null)?.({ type: 'minor' });
  }

  /** A full collection now (frees a dropped WebAssembly instance's memory, which a young one may not). */
  full(): void {
    this.since = 0;
    collector()?.();
  }

  /**
   * Counts one operation done and runs a full collection every COLLECT_EVERY_OPS of them: what each
   * operation leaves in the JS heap (its messages, promises and views) is small, but some of it
   * lives long enough to be promoted, and the old generation is otherwise collected only at a limit
   * sized for the whole application.
   */
  operation(): void {
    if (++this.ops < COLLECT_EVERY_OPS) return;
    this.ops = 0;
    collector()?.();
  }

  /** Counts `bytes` of buffers let go and runs a full collection each time COLLECT_EVERY have gone by. */
  released(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    collector()?.();
  }
}
