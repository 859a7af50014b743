/**
 * glibc's allocator setting for delta generation, made before anything else loads. Imported by
 * ../cli.ts right after the runtime check; ES modules are evaluated in import order.
 *
 * Why: the diff workers allocate and free tens of MiB per range (zstd's workspace and its copy of
 * the dictionary, brotli's tables, the range buffers). glibc raises its mmap threshold to the size
 * of each large block freed (up to 32 MiB) and its trim threshold to twice that, so after the first
 * few ranges such blocks come from each thread's arena and their memory stays with the process
 * once freed. Setting the trim threshold turns that dynamic adjustment off: freed memory goes back
 * to the system. Measured on the 512 MiB bench pairs (bench/RESULTS.md, "Fourth session of issue
 * 12"): peak RSS 482-501 -> 424-447 MiB by hand, the same deltas, the same elapsed time within noise,
 * for 1.5 s more system time (the blocks are mapped and faulted in afresh).
 *
 * The threshold is read once, when the process starts, so the command restarts itself with it
 * (process.execve: same process id, same arguments, ~25 ms). Only `generate --source` does: it is
 * the only command whose memory is churned this way; the library leaves its host's allocator alone
 * (README.md, "Memory", says what a host may set). An operator's own MALLOC_TRIM_THRESHOLD_ wins.
 */
export const TRIM_THRESHOLD_ENV = 'MALLOC_TRIM_THRESHOLD_';
/** Freed blocks above 4 MiB at an arena's top go back to the system at once. */
export const TRIM_THRESHOLD = String(4 * 1024 * 1024);

/**
 * The environment to restart with, or undefined to go on: for `generate --source` on Linux, when
 * the trim threshold is not set already. `args` are the command's arguments (argv after the script).
 */
export function allocatorRestart(args: readonly string[], env: NodeJS.ProcessEnv, platform: NodeJS.Platform): NodeJS.ProcessEnv | undefined {
  const command = args.find((a) => !a.startsWith('-')); // `fastpatch --verbose generate ...`
  const deltaGeneration = command === 'generate' && args.some((a) => a === '--source' || a.startsWith('--source='));
  if (!deltaGeneration || platform !== 'linux' || env[TRIM_THRESHOLD_ENV] !== undefined) return undefined;
  return { ...env, [TRIM_THRESHOLD_ENV]: TRIM_THRESHOLD };
}

const restart = allocatorRestart(process.argv.slice(2), process.env, process.platform);
if (restart && typeof process.execve === 'function') {
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], restart);
  } catch {
    // The restart only saves memory: where it cannot happen (the binary moved, a sandbox denies
    // execve), the command goes on in this process, as it did before the restart existed.
  }
}
