/**
 * Collecting the garbage of an apply as it goes. V8 frees a dead ArrayBuffer's memory only when it
 * collects the JS object that owns it, and it collects an isolate when its JS heap fills or its
 * external memory grows by a wide margin. An applier's JS heap hardly grows (small objects, with
 * megabytes of buffers each), so the buffers its operations let go of (inflated outputs, patch
 * streams, transferred blobs) piled up, in the main thread and in each decode worker, and peak
 * memory grew with the length of the run, that is with the image. Measured with `npm run rss`
 * (medians of 3), a full collection every 32 MiB let go takes a full payload's apply from 171 MiB
 * at 1 GiB and 188 MiB at 8 GiB to 136 and 145 MiB, with no measurable cost in time (each
 * collection of these small heaps takes a few milliseconds).
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
 * decode worker starts (enableCollection, called by the applier's constructor): V8 flags are
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

/** Bytes of short-lived buffers between two young-generation collections (GarbageMeter.young). */
export const COLLECT_YOUNG_EVERY = 1024 * 1024;

/** Counts bytes let go and runs a full collection each time COLLECT_EVERY have gone by. */
export class GarbageMeter {
  private since = 0;
  private youngSince = 0;

  constructor(private readonly every = COLLECT_EVERY) {}

  /** A young-generation collection only (cheap): frees what the last operation just let go. */
  minor(): void {
    this.youngSince = 0;
    (collector() as ((o?: { type: string }) => void) | null)?.({ type: 'minor' });
  }

  /**
   * Counts `bytes` of buffers that died young (allocated and dropped by the last operation) and
   * runs a young-generation collection each time COLLECT_YOUNG_EVERY have gone by: one per
   * megabyte-sized operation, one per megabyte of small ones.
   */
  young(bytes: number): void {
    this.youngSince += bytes;
    if (this.youngSince >= COLLECT_YOUNG_EVERY) this.minor();
  }

  /** A full collection now (frees a dropped WebAssembly instance's memory, which a young one may not). */
  full(): void {
    this.since = 0;
    this.youngSince = 0;
    collector()?.();
  }

  released(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    collector()?.();
  }
}
