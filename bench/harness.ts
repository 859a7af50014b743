/**
 * The small timing harness every bench section uses: interleaved rounds, median and min–max,
 * CPU accounting, a noise canary and Markdown tables.
 *
 * Why not benchmark.js (installed as a dev dependency): it is built for micro-operations, picks
 * its own sample counts and runs one case to completion before the next. On this shared 2-vCPU
 * machine a burst of noise would then hit one candidate and not its peer. Here every case runs
 * once per round, round after round, so a ratio between peers compares runs taken side by side
 * (the method of /work/shared/reference/perf-limits.md: warm-up, ≥ 5 runs, medians, MB = 10^6 B).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** One benchmark candidate: `run` does the whole measured job once over `bytes` bytes of input. */
export interface Case {
  name: string;
  /** Bytes of input one run processes (MB/s = bytes / seconds / 10^6). */
  bytes: number;
  /** Does the job once (sync or async); the wall time around it is what counts. */
  run: () => unknown;
  /** Run once before any measured round (JIT, WASM tier-up, page cache). Default true. */
  warmUp?: boolean;
  /**
   * Cores the case keeps busy: 1 (default) for one thread, 2 for two, 0 for I/O-bound work. Used
   * to tell clean runs from contended ones (see isClean).
   */
  cores?: number;
}

/** One timed run of a case. */
export interface Sample {
  seconds: number;
  /** CPU seconds of this process (all threads) and of its reaped children during the run. */
  cpuSeconds: number;
  /** Cores of user time the rest of the machine used meanwhile: the noise indicator. */
  othersCores: number;
}

/** Summary of a case's samples. Rates in MB/s (10^6 bytes per second). */
export interface Stats {
  name: string;
  bytes: number;
  /** Runs the figures below summarize: the clean ones if there are at least MIN_CLEAN, else all. */
  runs: number;
  /** Runs taken in all, and how many of them were clean. */
  taken: number;
  clean: number;
  /** Fewer than MIN_CLEAN clean runs: the figures come from contended runs too. */
  noisy: boolean;
  median: number;
  min: number;
  max: number;
  /** Median MB per CPU-second: insensitive to time-slicing by other processes. */
  perCpuSecond: number;
  /** Median cores used by other processes during the runs. */
  othersCores: number;
  /** Median seconds per run. */
  seconds: number;
  /** Every run in round order: its rate (MB/s) and whether it was clean. */
  all: readonly { rate: number; clean: boolean }[];
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds used so far: by this process (all threads) plus its reaped children, and by the whole machine. */
interface CpuReading {
  selfUser: number;
  selfTotal: number;
  machineUser: number;
}

/**
 * Own CPU from process.cpuUsage() (µs resolution: runs here can be as short as 50 ms), children's
 * from /proc/self/stat (cutime, cstime; 10 ms ticks), the machine's from /proc/stat.
 */
function readCpu(): CpuReading {
  const own = process.cpuUsage();
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the parenthesised command name (which may contain spaces); f[0] is field 3.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cutime = Number(f[13]) / CLK_TCK;
  const cstime = Number(f[14]) / CLK_TCK;
  const machine = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return {
    selfUser: own.user / 1e6 + cutime,
    selfTotal: (own.user + own.system) / 1e6 + cutime + cstime,
    machineUser: ((machine[0] ?? 0) + (machine[1] ?? 0)) / CLK_TCK,
  };
}

/**
 * Runs fn once (awaiting it) and returns its sample. Other processes' load counts user time only:
 * the kernel threads doing this process's own I/O (loop device worker, writeback) run as system
 * time outside it and would otherwise read as noise.
 */
export async function timeOnce(fn: () => unknown): Promise<Sample> {
  const c0 = readCpu();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) / 1000;
  const c1 = readCpu();
  const others = c1.machineUser - c0.machineUser - (c1.selfUser - c0.selfUser);
  return { seconds: wall, cpuSeconds: c1.selfTotal - c0.selfTotal, othersCores: Math.max(0, others) / Math.max(wall, 1e-3) };
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const NPROC = cpus().length;
/** Clean runs a case needs before its median stands on them alone. */
export const MIN_CLEAN = 3;

/**
 * The clean-run rule of perf-limits.md, adapted to a case's cores: a one-thread run must get
 * ≥ 90% of a core while the rest of the machine uses ≤ (nproc − 1) + 0.25 cores; a run using
 * every core needs an otherwise idle machine (others ≤ 0.25); an I/O-bound run tolerates one busy
 * core elsewhere.
 */
export function isClean(sample: Sample, cores: number): boolean {
  if (cores === 0) return sample.othersCores <= 1.0;
  if (cores === 1 && sample.cpuSeconds / sample.seconds < 0.9) return false;
  return sample.othersCores <= Math.max(0.25, NPROC - cores + 0.25);
}

/**
 * Waits (up to maxSeconds) until other processes use at most `threshold` cores over 250 ms, so
 * that a round starts in a quiet moment when there is one. Returns the last reading.
 */
export async function waitForQuiet(maxSeconds: number, threshold = 0.3): Promise<number> {
  const deadline = performance.now() + maxSeconds * 1000;
  let others = Infinity;
  do {
    const s = await timeOnce(() => new Promise((r) => setTimeout(r, 250)));
    others = s.othersCores;
  } while (others > threshold && performance.now() < deadline);
  return others;
}

export interface MeasureOptions {
  /** Measured rounds (after one warm-up run of each case). */
  rounds: number;
  /** Untimed step before every run, e.g. `sync`. */
  between?: () => unknown;
  /** Extra rounds allowed while some case has fewer than MIN_CLEAN clean runs. Default: rounds. */
  extraRounds?: number;
  /** Longest wait for a quiet machine before each round, in seconds. Default 3. */
  quietWait?: number;
}

/**
 * Runs the cases interleaved: one warm-up run of each, then rounds in which every case runs once,
 * in the same order, so that noise hits peers alike. While a case lacks MIN_CLEAN clean runs,
 * extra rounds follow (all cases again, to keep the rounds paired), up to `extraRounds`.
 */
export async function measureInterleaved(section: string, cases: readonly Case[], options: MeasureOptions): Promise<Map<string, Stats>> {
  const { rounds, between } = options;
  const extra = options.extraRounds ?? rounds;
  const quietWait = options.quietWait ?? 3;
  const samples = new Map<string, Sample[]>(cases.map((c) => [c.name, []]));
  for (const c of cases) {
    if (c.warmUp === false) continue;
    progress(`${section}: warm-up ${c.name}`);
    await between?.();
    await c.run();
  }
  const lacking = () => cases.some((c) => samples.get(c.name)!.filter((x) => isClean(x, c.cores ?? 1)).length < MIN_CLEAN);
  for (let r = 1; r <= rounds + extra; r++) {
    if (r > rounds && !lacking()) break;
    const others = await waitForQuiet(quietWait);
    progress(`${section}: round ${r}/${rounds}${r > rounds ? ' (extra: too few clean runs)' : ''}; others' load ${others.toFixed(2)} cores`);
    for (const c of cases) {
      await between?.();
      const x = await timeOnce(c.run);
      samples.get(c.name)!.push(x);
      const mark = isClean(x, c.cores ?? 1) ? '' : ' (not clean)';
      progress(`  ${fmtRate(c.bytes / x.seconds / 1e6)} MB/s, ${x.seconds.toFixed(3)} s, CPU ${x.cpuSeconds.toFixed(2)} s, others ${x.othersCores.toFixed(2)}${mark}: ${c.name}`);
    }
  }
  return new Map(cases.map((c) => [c.name, summarize(c.name, c.bytes, samples.get(c.name)!, c.cores ?? 1)]));
}

export function summarize(name: string, bytes: number, all: readonly Sample[], cores = 1): Stats {
  const clean = all.filter((x) => isClean(x, cores));
  const runs = all.map((x) => ({ rate: bytes / x.seconds / 1e6, clean: isClean(x, cores) }));
  const noisy = clean.length < MIN_CLEAN;
  const samples = noisy ? all : clean;
  const rates = samples.map((s) => bytes / s.seconds / 1e6);
  return {
    name,
    bytes,
    runs: samples.length,
    taken: all.length,
    clean: clean.length,
    noisy,
    median: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
    perCpuSecond: median(samples.map((s) => bytes / Math.max(s.cpuSeconds, 1e-6) / 1e6)),
    othersCores: median(samples.map((s) => s.othersCores)),
    seconds: median(samples.map((s) => s.seconds)),
    all: runs,
  };
}

/** A ratio between two cases of one measureInterleaved call, from their runs round by round. */
export interface Paired {
  ratio: number;
  /** Rounds it is the median of. */
  rounds: number;
  /** Fewer than MIN_CLEAN rounds had both runs clean, so all rounds were used. */
  noisy: boolean;
}

/**
 * Median over rounds of a's rate / b's rate, using the rounds in which both runs were clean when
 * there are at least MIN_CLEAN of them. Pairing runs of the same round cancels slow drifts of the
 * machine that a ratio of two separate medians would keep. a and b must come from the same
 * measureInterleaved call (run i of each is from round i).
 */
export function paired(a: Stats, b: Stats): Paired {
  const every: number[] = [];
  const both: number[] = [];
  for (let i = 0; i < Math.min(a.all.length, b.all.length); i++) {
    const r = a.all[i]!.rate / b.all[i]!.rate;
    every.push(r);
    if (a.all[i]!.clean && b.all[i]!.clean) both.push(r);
  }
  const noisy = both.length < MIN_CLEAN;
  const use = noisy ? every : both;
  return { ratio: median(use), rounds: use.length, noisy };
}

export function fmtPaired(p: Paired): string {
  return `${fmtRatio(p.ratio)}${p.noisy ? ' ⚠' : ''}`;
}

/**
 * The noise canary of perf-limits.md: node:crypto SHA-256 of 32 MiB, median of 5 runs. It reads
 * ~1,670 MB/s on an idle machine; a lower reading means a neighbour is taking cache or core time.
 */
export async function canary(): Promise<number> {
  const data = randomFillSync(new Uint8Array(32 * 1024 * 1024));
  // createHash, not crypto.hash: the latter needs Node ≥ 20.12, and for one big buffer they are equal.
  const sha = () => createHash('sha256').update(data).digest();
  sha();
  const rates: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = await timeOnce(sha);
    rates.push(data.length / s.seconds / 1e6);
  }
  return median(rates);
}

/** Runs a section between two canary readings and prints them under its tables. */
export async function withCanary(section: string, body: () => Promise<void>): Promise<void> {
  progress(`${section}: canary`);
  const before = await canary();
  await body();
  const after = await canary();
  out(`Noise canary (node:crypto SHA-256 of 32 MiB, idle reference ~1,670 MB/s): ${fmtRate(before)} MB/s before, ${fmtRate(after)} MB/s after.\n`);
}

/** A rate or other figure with sensible precision: 3 significant digits below 100, integers above. */
export function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString('en-US');
  return x.toPrecision(3);
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? x.toFixed(2) : '–';
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** "median (min–max)" in MB/s, with the clean-run count, and ⚠ when too few runs were clean. */
export function fmtRange(s: Stats): string {
  return `${fmtRate(s.median)} (${fmtRate(s.min)}–${fmtRate(s.max)})${s.noisy ? ' ⚠' : ''}`;
}

/** "clean/taken" runs, for a table column. */
export function fmtRuns(s: Stats): string {
  return `${s.clean}/${s.taken}`;
}

/** A Markdown table on stdout: the first column left-aligned, the others right-aligned. */
export function table(title: string, headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const lines = [`### ${title}`, '', `| ${headers.join(' | ')} |`, `|${headers.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  out(`${lines.join('\n')}\n`);
}

/** Result text goes to stdout. */
export function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Progress goes to stderr, so stdout holds only results. */
export function progress(text: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

const interruptCleanups = new Set<() => void>();
let interruptHooked = false;

/**
 * Registers a synchronous cleanup to run if the process gets SIGINT/SIGTERM (finally blocks do not
 * run then), e.g. detaching a loop device. Returns a function that unregisters it.
 */
export function onInterrupt(cleanup: () => void): () => void {
  if (!interruptHooked) {
    interruptHooked = true;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        for (const fn of interruptCleanups) {
          try {
            fn();
          } catch {
            // best effort: the process is going away
          }
        }
        process.exit(130);
      });
    }
  }
  interruptCleanups.add(cleanup);
  return () => interruptCleanups.delete(cleanup);
}
