/**
 * `npm run bench [-- hash|codec|full|delta|delta-codec ...] [--rounds N] [--pair NAME ...]`: runs the named
 * sections (all without a name; --pair, repeatable, limits the delta section to those image
 * pairs) and prints Markdown tables on stdout, progress on stderr, and at the end the project's
 * performance bars with the figures measured in this very run.
 *
 * Peers always run in the same process and the same interleaved rounds, and results are read as
 * ratios: the machine is a shared 2-vCPU VM whose absolute speed varies from minute to minute.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tuneRuntime } from '../src/runtime/tune.js';
import { runCodec, type CodecFigures } from './codec.js';
import { deltaBarRows, runDelta, type DeltaFigures } from './delta.js';
import { runDeltaCodec } from './delta-codec.js';
import { ensureDeltaCorpus } from './delta-corpus.js';
import { runFull, type FullFigures } from './full.js';
import { fmtPaired, fmtRate, fmtRatio, out, progress, table, type Paired } from './harness.js';
import { runHash, type HashFigures } from './hash.js';
import { isTmpfs } from './rootfs.js';
import { runOmahaLoad, type OmahaLoadFigures } from './omaha-load.js';

const SECTIONS = ['hash', 'codec', 'full', 'delta', 'delta-codec', 'omaha'] as const;
type Section = (typeof SECTIONS)[number];
/**
 * Measured rounds (after a warm-up run) unless --rounds says otherwise: ≥ 5 for the CPU-bound
 * rows; the full image's generate-vs-gzip pair takes ~30 s a round, so it gets 3 to keep the whole
 * run near 10 minutes, and apply-vs-dd (~10 s a round) gets 5. The delta peers' encodes take
 * minutes each (zstd -19 on 512 MiB), so delta encode/decode rows get 1 and its apply-vs-dd 3.
 */
const DEFAULT_ROUNDS = { hash: 9, codec: 3, fullGenerate: 3, fullApply: 5, delta: 1, deltaApply: 3, omaha: 5 };

function parseArgs(argv: readonly string[]): { sections: Section[]; rounds: number | undefined; pairs: string[] } {
  const sections: Section[] = [];
  const pairs: string[] = [];
  let rounds: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--rounds') {
      rounds = Number(argv[++i]);
      if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds expects a positive integer, got ${argv[i]}`);
    } else if (arg === '--pair') {
      const name = argv[++i];
      if (!name) throw new RangeError('--pair expects the name of a delta pair, e.g. debian-64M');
      pairs.push(name);
    } else if ((SECTIONS as readonly string[]).includes(arg)) {
      sections.push(arg as Section);
    } else {
      throw new RangeError(`unknown argument "${arg}"; usage: npm run bench -- [${SECTIONS.join('|')} ...] [--rounds N] [--pair NAME ...]`);
    }
  }
  const chosen = sections.length > 0 ? sections : [...SECTIONS];
  if (pairs.length > 0 && !chosen.includes('delta')) throw new RangeError('--pair only applies to the delta section');
  return { sections: chosen, rounds, pairs };
}

/** The package root (this file runs as dist/bench/run.js). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sh(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

function printMachine(sections: readonly Section[]): void {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? '?';
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.split(' ') ?? [];
  const features = ['sha_ni', 'avx2', 'avx512f'].filter((f) => flags.includes(f)).join(', ') || 'none of sha_ni/avx2/avx512f';
  const v = process.versions;
  out('## Run');
  out('');
  out(`- date: ${sh('date', ['-u'])}`);
  out(`- command: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` (sections: ${sections.join(', ')})`);
  out(`- machine: ${sh('nproc', [])} vCPUs, ${model} (${features}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, kernel ${release()}`);
  out(`- Node ${process.version} (V8 ${v.v8}, OpenSSL ${v.openssl}, zlib ${v.zlib}); load average at start: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const wasm = join(ROOT, 'build', 'release.wasm');
  const wasmId = existsSync(wasm) ? `sha256 ${createHash('sha256').update(readFileSync(wasm)).digest('hex').slice(0, 12)}, built ${statSync(wasm).mtime.toISOString()}` : 'missing';
  const dirty = sh('git', ['status', '--porcelain', '--', 'src', 'assembly']).split('\n').filter(Boolean).length;
  out(`- code: git ${sh('git', ['rev-parse', '--short', 'HEAD'])}${dirty > 0 ? ` + ${dirty} uncommitted files in src/ and assembly/` : ''}; build/release.wasm ${wasmId}`);
  out('- MB/s = 10^6 bytes per second of input (of output for inflate); "median (min–max)" over the measured runs after a warm-up;');
  out('  "MB per CPU-s" divides by the CPU time this process and its children used (insensitive to time-slicing);');
  out('  "others\' cores" = median user CPU the rest of the machine used during the runs (noise: 1.0 means one vCPU of two was busy elsewhere);');
  out('  "× peer" columns are paired ratios: the median over rounds of (this run / the peer\'s run in the same round).');
  out('- clean run: a one-thread row got ≥ 0.9 of a core while others used ≤ nproc − 0.75 cores; a two-core row needs others ≤ 0.25;');
  out('  an I/O row (dd, apply) others ≤ 1.0. Figures are over the clean runs (ratios: rounds where both runs are clean)\n  when there are ≥ 3, else over all runs and marked ⚠.');
  out('  Rounds with too few clean runs are repeated (limited), and each round waits up to 3 s for a quiet moment.');
  out('');
}

/** A disk-backed scratch directory: /var/tmp normally, the OS temp dir if /var/tmp is tmpfs or missing. */
function makeWorkDir(): string {
  for (const base of ['/var/tmp', tmpdir()]) {
    try {
      if (!isTmpfs(base)) return mkdtempSync(join(base, 'fastpatch-bench-'));
    } catch {
      // try the next one
    }
  }
  return mkdtempSync(join(tmpdir(), 'fastpatch-bench-'));
}

interface Figures {
  hash?: HashFigures;
  codec?: CodecFigures;
  full?: FullFigures;
  delta?: DeltaFigures;
  omaha?: OmahaLoadFigures;
}

/** The bars with this run's figures. Ratios are paired by round (harness.ts, `paired`). */
function printBars(f: Figures): void {
  const rows: string[][] = [];
  const verdict = (ok: boolean, p?: Paired) => `${ok ? 'holds' : '**misses**'}${p?.noisy ? ' (⚠ noisy)' : ''}`;
  if (f.hash) {
    const h = f.hash;
    rows.push(['(a) WASM per-block SHA-256 ≥ 0.7× node:crypto per block, one core', `${fmtRate(h.wasmPerBlock.median)} vs ${fmtRate(h.nodePerBlock.median)} MB/s; paired ratio ${fmtPaired(h.perBlockRatio)}×; per CPU-s ${fmtRatio(h.wasmPerBlock.perCpuSecond / h.nodePerBlock.perCpuSecond)}×`, verdict(h.perBlockRatio.ratio >= 0.7, h.perBlockRatio)]);
    rows.push(['(info) WASM streaming SHA-256 vs node:crypto streaming', `${fmtRate(h.wasmStream.median)} vs ${fmtRate(h.nodeStream.median)} MB/s; ${fmtPaired(h.streamRatio)}×`, '–']);
    if (h.wasm2 && h.node2 && h.workersRatio) {
      rows.push(['(info) WASM vs node:crypto per block, 2 workers', `${fmtRate(h.wasm2.median)} vs ${fmtRate(h.node2.median)} MB/s; ${fmtPaired(h.workersRatio)}×`, '–']);
    }
  }
  if (f.full) {
    const x = f.full;
    const size = x.payloadBytes / x.gzipBytes;
    rows.push(['(b1) full payload ≤ 1.05× gzip -6 size', `${x.payloadBytes.toLocaleString('en-US')} / ${x.gzipBytes.toLocaleString('en-US')} B = ${size.toFixed(3)}×`, verdict(size <= 1.05)]);
    rows.push(['(b2) generated at least as fast as gzip -6', `${fmtRate(x.generate.median)} vs ${fmtRate(x.gzip.median)} MB/s; paired ${fmtPaired(x.generateRatio)}×`, verdict(x.generateRatio.ratio >= 1, x.generateRatio)]);
    if (x.apply && x.dd && x.applyRatio) {
      const cold = x.ddCold && x.applyRatioCold ? `; against dd right after the apply (device cache empty) ${fmtRate(x.ddCold.median)} MB/s, ${(x.applyRatioCold.ratio * 100).toFixed(0)}%` : '';
      rows.push(['(c) apply onto a block device ≥ 80% of dd bs=4M conv=fsync (dd after dd)', `${fmtRate(x.apply.median)} vs ${fmtRate(x.dd.median)} MB/s; paired ${(x.applyRatio.ratio * 100).toFixed(0)}%${x.applyRatio.noisy ? ' ⚠' : ''}${cold}`, verdict(x.applyRatio.ratio >= 0.8, x.applyRatio)]);
    }
    if (x.applyRssKiB !== undefined) rows.push(['(info) peak RSS of `fastpatch apply`, 512 MiB image', `${(x.applyRssKiB / 1024).toFixed(0)} MiB`, '–']);
  }
  if (f.delta) rows.push(...deltaBarRows(f.delta));
  if (f.omaha) {
    const o = f.omaha;
    const peer = o.peer ? `; go-omaha ${o.peer.checksPerSecond.toFixed(0)}/s (${(o.checksPerSecond / o.peer.checksPerSecond).toFixed(2)}×)` : '';
    rows.push(['(info) update checks one `fastpatch serve` answers, 10,000 machines', `${o.checksPerSecond.toFixed(0)}/s, p99 ${o.p99Ms.toFixed(1)} ms: ${Math.floor(o.checksPerSecond * 2700).toLocaleString('en-US')} machines at one check per 45 min${peer}`, '–']);
  }
  if (rows.length > 0) table('Bars (figures from this run)', ['bar', 'measured', 'verdict'], rows);
}

async function main(): Promise<void> {
  const { sections, rounds, pairs } = parseArgs(process.argv.slice(2));
  // The in-process apply rows collect as they go, as they did when the applier set this itself.
  tuneRuntime({ collections: true });
  printMachine(sections);
  const workDir = makeWorkDir();
  const figures: Figures = {};
  const started = performance.now();
  try {
    for (const section of sections) {
      const t0 = performance.now();
      out(`## ${section}\n`);
      if (section === 'hash') figures.hash = await runHash(rounds ?? DEFAULT_ROUNDS.hash);
      if (section === 'codec') figures.codec = await runCodec(rounds ?? DEFAULT_ROUNDS.codec, workDir);
      if (section === 'full') {
        figures.full = await runFull({ generate: rounds ?? DEFAULT_ROUNDS.fullGenerate, apply: rounds ?? DEFAULT_ROUNDS.fullApply }, workDir);
      }
      if (section === 'delta') {
        figures.delta = await runDelta({ rounds: rounds ?? DEFAULT_ROUNDS.delta, applyRounds: rounds ?? DEFAULT_ROUNDS.deltaApply, pairs }, workDir);
      }
      if (section === 'omaha') figures.omaha = await runOmahaLoad(rounds ?? DEFAULT_ROUNDS.omaha, workDir);
      if (section === 'delta-codec') {
        const pair = (await ensureDeltaCorpus()).find((p) => p.name === 'debian-64M');
        if (!pair) throw new Error('delta corpus has no debian-64M pair');
        await runDeltaCodec(pair, workDir);
      }
      progress(`${section}: done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    printBars(figures);
    out(`Total time: ${((performance.now() - started) / 1000).toFixed(0)} s.`);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  // A usage error needs its message only; anything else, the stack.
  const text = err instanceof RangeError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`bench: ${text}\n`);
  process.exitCode = err instanceof RangeError ? 2 : 1;
});
