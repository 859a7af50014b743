/**
 * The process-wide settings a long apply or delta generation runs better with, as a choice the
 * host makes. V8's flags are the whole process's: they change how the host's own code runs, and
 * they are meant to be set before other threads start. So the library never sets them by itself;
 * the CLI calls tuneRuntime() first thing in apply, verify, update, generate and demo, and a
 * program embedding the library may call it before its first apply or generate, or not: without
 * it everything works the same, in more memory on long runs.
 */
import { enableCollection } from './collect.js';
import { disableOptimizingCompiler } from './optimizer.js';

export interface RuntimeTuning {
  /**
   * Let the applier, its decode workers and generation's diff workers run garbage collections as
   * they let go of large buffers (runtime/collect.ts: V8 does not count the shared memory they
   * drop towards collecting, so without this it waits for the JS heap to fill). Default true.
   */
  collections?: boolean;
  /**
   * Leave V8's optimizing compiler on. Default true; false keeps an apply's peak memory flat on
   * long runs (runtime/optimizer.ts), at the price of the rest of the program's hot JavaScript.
   */
  optimizingCompiler?: boolean;
}

/** Applies `tuning` to this process, from its main thread, before workers start. Idempotent. */
export function tuneRuntime(tuning: RuntimeTuning = {}): void {
  if (tuning.collections ?? true) enableCollection();
  if (tuning.optimizingCompiler === false) disableOptimizingCompiler();
}
