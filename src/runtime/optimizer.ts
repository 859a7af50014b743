/**
 * Turning off V8's optimizing compiler for a process whose job is an apply.
 *
 * An apply's JavaScript only orchestrates: reading, checking and writing megabytes at a time,
 * while the hashing, inflating and patching run in WebAssembly and native code. V8's optimizing
 * compiler (TurboFan) still compiles the hot orchestration functions, on background threads, in
 * zone memory that the C allocator keeps resident in those threads' arenas afterwards; a longer
 * run compiles, deoptimizes and recompiles more, so the process's peak memory grew with the image.
 * Measured with `npm run rss` (medians of 5; images of 1 and 8 GiB, same data density): with it, a
 * full payload's apply peaked at 101 and 111 MiB, a delta's at 104 and 115; without it, 100 and
 * 102, 103 and 108. Time did not change: 3.2 s for the 8 GiB full apply, 1.3-1.5 s for the
 * debian-512M delta. WebAssembly has its own compiler tiers, which this leaves alone.
 *
 * V8 flags are process-wide and meant to be set before code runs hot: the CLI calls this first
 * thing in apply, verify and update. A program embedding the library decides for itself (it also
 * slows that program's own hot JavaScript); without it an apply works the same, in a little more
 * memory on long runs.
 */
import { setFlagsFromString } from 'node:v8';
import { isMainThread } from 'node:worker_threads';

let turnedOff = false;

/** Sets V8's --no-opt, once, from the main thread; call before starting an apply. */
export function disableOptimizingCompiler(): void {
  if (!isMainThread || turnedOff) return;
  turnedOff = true;
  setFlagsFromString('--no-opt');
}
