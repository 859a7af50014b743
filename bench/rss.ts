/**
 * `npm run rss [-- --sizes 1,8] [--runs N] [--fixed-data MiB] [--dir DIR] [--keep] [--work DIR] [--level N]`: peak resident memory (RSS)
 * of generate (full and delta) and apply (full and delta) at image sizes of 1 GiB and 8 GiB (or
 * --sizes, in GiB), each operation in a fresh child process (this file, run as `rss.js child ...`)
 * that prints its own process.resourceUsage().maxRSS (all threads, worker threads included) when
 * done. Apply is measured twice over: as `fastpatch apply` runs (the CLI itself, in the child),
 * and as a program calling applyPayload after tuneRuntime() with V8's optimizing compiler left on (runtime/tune.ts);
 * each apply N times (--runs, default 3), reporting the median.
 *
 * Images: sparse files with DATA_FRACTION of their bytes as data (the same density at every size),
 * in 1 MiB extents spread evenly across the image: a third incompressible, two thirds text-like.
 * The new version edits bytes in 2% of the extents, moves 1% to other places (block-aligned and
 * not), adds new extents (1% more data) and zeroes 1%. Apply writes to a new (sparse) file.
 *
 * --work DIR keeps the images and payloads in DIR and reuses those already there (the generate rows
 * then say "reused"), so that apply can be measured again after a change without generating
 * anew; --level N generates full payloads at zstd level N instead of the default (apply's memory
 * depends on the operations' sizes, not on the level; a lower level only saves time).
 *
 * Prints a table operation x size -> peak RSS MiB, apply's ratio of the largest to the smallest
 * size (the bar: within 10%), and generate's growth per GiB of image.
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const EXTENT = MiB;
/** Bytes of data per byte of image: 128 MiB per GiB. */
const DATA_FRACTION = 1 / 8;
const OPERATIONS = ['generate full', 'generate delta', 'apply full', 'apply delta', 'apply full, library', 'apply delta, library'] as const;
const APPLY_OPERATIONS = OPERATIONS.filter((op) => op.startsWith('apply'));
type Operation = (typeof OPERATIONS)[number];

// ---------------------------------------------------------------------------------------------
// Child: one operation, then its peak RSS on the last line of stdout.

async function child(args: string[]): Promise<void> {
  const lib = await import('../src/index.js');
  // What a program embedding the library would choose: collections, and V8's compiler left on.
  lib.tuneRuntime({ collections: true });
  const [op, keyPath, ...paths] = args;
  const started = performance.now();
  let detail = '';
  if (op === 'generate-full') {
    const [target, out, level] = paths as [string, string, string | undefined];
    const r = await lib.generateFullPayload({ target, out, version: '2.0.0', keys: [await lib.loadPrivateKeyFile(keyPath!)], ...(level ? { level: Number(level) } : {}) });
    detail = `${r.payload.totalSize} payload bytes`;
  } else if (op === 'generate-delta') {
    const [source, target, out] = paths as [string, string, string];
    const r = await lib.generateDeltaPayload({ source, target, out, version: '2.0.0', keys: [await lib.loadPrivateKeyFile(keyPath!)] });
    detail = `${r.payload.totalSize} payload bytes`;
  } else if (op === 'cli') {
    // `fastpatch ARGS...`, the command itself; its output goes first, the measurement last.
    process.on('exit', () => console.log(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS, seconds: (performance.now() - started) / 1000, detail: 'fastpatch CLI' })));
    process.argv = [process.argv[0]!, fileURLToPath(new URL('../src/cli.js', import.meta.url)), ...args.slice(1)];
    await import('../src/cli.js');
    return;
  } else if (op === 'apply-full' || op === 'apply-delta') {
    const [payload, target, source] = paths as [string, string, string | undefined];
    const key = await lib.loadKeyFile(keyPath!);
    const r = await lib.applyPayload(lib.readPayloadChunks(payload), { trustedKeys: [key], target, ...(source ? { source } : {}) });
    detail = `${r.operations} operations`;
  } else {
    throw new Error(`unknown child operation ${op}`);
  }
  const seconds = (performance.now() - started) / 1000;
  // maxRSS is in KiB (getrusage's ru_maxrss).
  console.log(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS, seconds, detail }));
}

// ---------------------------------------------------------------------------------------------
// Images

/** Deterministic xorshift, so both versions of an image agree on what did not change. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  below(n: number): number {
    return this.next() % n;
  }
}

const WORDS = 'the system update release device image partition kernel service network storage memory process user write read verify check sign apply install remove change version config module boot mount slot root'.split(' ');

/** 1 MiB of extent `seed`'s content: incompressible, or text-like (compresses ~3:1). */
function extentBytes(seed: number): Uint8Array {
  const out = new Uint8Array(EXTENT);
  const rng = new Rng(seed * 2654435761 + 1 >>> 0 || 1);
  if (seed % 3 === 0) {
    randomFillSync(out);
    return out;
  }
  let at = 0;
  while (at < out.length) {
    const w = `${WORDS[rng.below(WORDS.length)]}${rng.below(9) === 0 ? `${rng.below(100000)}\n` : ' '}`;
    for (let i = 0; i < w.length && at < out.length; i++) out[at++] = w.charCodeAt(i);
  }
  return out;
}

interface Layout {
  size: number;
  v1: { at: number; seed: number }[];
}

/** Where the data extents of a `size`-byte image go: evenly spaced, block-aligned. */
function layoutOf(size: number, dataBytes = size * DATA_FRACTION): Layout {
  const count = Math.floor(dataBytes / EXTENT);
  const stride = Math.floor(size / count / 4096) * 4096;
  return { size, v1: Array.from({ length: count }, (_, i) => ({ at: i * stride, seed: i + 1 })) };
}

async function writeImages(dir: string, layout: Layout): Promise<{ v1: string; v2: string }> {
  const v1 = join(dir, `v1-${layout.size / GiB}g.img`);
  const v2 = join(dir, `v2-${layout.size / GiB}g.img`);
  const h1 = await fsp.open(v1, 'w');
  const h2 = await fsp.open(v2, 'w');
  try {
    await h1.truncate(layout.size);
    await h2.truncate(layout.size);
    const rng = new Rng(0x5eed);
    const stride = layout.v1.length > 1 ? layout.v1[1]!.at : layout.size;
    let extra = 0;
    for (const { at, seed } of layout.v1) {
      const bytes = extentBytes(seed);
      await h1.write(bytes, 0, bytes.length, at);
      const roll = rng.below(100);
      if (roll < 2) {
        // Edited: a few hundred bytes changed, spread over the extent.
        const edited = bytes.slice();
        for (let i = rng.below(4096); i < edited.length; i += 3000 + rng.below(3000)) edited[i] = edited[i]! ^ 0xa5;
        await h2.write(edited, 0, edited.length, at);
      } else if (roll < 3) {
        // Moved into the gap after its place, at an offset that is not block-aligned half the time.
        const to = at + EXTENT + 64 * 1024 + (rng.below(2) === 0 ? 0 : 1 + rng.below(4095));
        if (to + EXTENT <= at + stride) await h2.write(bytes, 0, bytes.length, to);
      } else if (roll < 4) {
        // Zeroed: left out of v2.
      } else {
        await h2.write(bytes, 0, bytes.length, at);
      }
      if (roll >= 4 && rng.below(100) < 1) {
        // New data in the gap.
        const fresh = extentBytes(1_000_000 + extra++);
        const to = at + EXTENT + 2 * 1024 * 1024;
        if (to + EXTENT <= at + stride) await h2.write(fresh, 0, fresh.length, to);
      }
    }
  } finally {
    await h1.close();
    await h2.close();
  }
  return { v1, v2 };
}

// ---------------------------------------------------------------------------------------------
// Parent

interface Measured {
  maxRssKiB: number;
  seconds: number;
  detail: string;
}

function runChild(args: string[]): Measured {
  const script = fileURLToPath(import.meta.url);
  const output = execFileSync(process.execPath, [script, 'child', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * MiB });
  const last = output.trim().split('\n').pop()!;
  return JSON.parse(last) as Measured;
}

async function main(argv: string[]): Promise<void> {
  const option = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sizes = (option('--sizes') ?? '1,8').split(',').map(Number);
  const runs_ = Number(option('--runs') ?? 3);
  if (!(Number.isInteger(runs_) && runs_ > 0)) throw new Error('--runs: a whole number of runs, e.g. 3');
  if (sizes.some((s) => !(s > 0))) throw new Error('--sizes: GiB numbers, e.g. 1,8');
  const work = option('--work');
  const level = option('--level');
  const dir = work ?? (await fsp.mkdtemp(join(option('--dir') ?? tmpdir(), 'fastpatch-rss-')));
  if (work) await fsp.mkdir(work, { recursive: true });
  const keep = argv.includes('--keep') || work !== undefined;
  const lib = await import('../src/index.js');
  const exists = (path: string) => fsp.access(path).then(() => true, () => false);
  const keyBase = join(dir, 'key');
  const { privatePath, publicPath } = work && (await exists(keyBase)) ? { privatePath: keyBase, publicPath: `${keyBase}.pub` } : await lib.writeKeyPair(keyBase, lib.generateKey());
  const results = new Map<string, Measured>();
  try {
    for (const gib of sizes) {
      // --fixed-data MiB: the same data in every image, so only the image size (zero space) grows.
      const fixed = option('--fixed-data');
      const layout = layoutOf(Math.round(gib * GiB), fixed !== undefined ? Number(fixed) * MiB : undefined);
      const full = join(dir, `full-${gib}g.fpay`);
      const delta = join(dir, `delta-${gib}g.fpay`);
      const reuse = work !== undefined && (await exists(full)) && (await exists(delta));
      let v1 = join(dir, `v1-${layout.size / GiB}g.img`);
      if (!reuse) {
        process.stderr.write(`${gib} GiB: writing images (${layout.v1.length} MiB of data each)...\n`);
        ({ v1 } = await writeImages(dir, layout));
      }
      const v2 = join(dir, `v2-${layout.size / GiB}g.img`);
      const out = join(dir, 'out.img');
      const steps: [Operation, string[]][] = [
        ['generate full', ['generate-full', privatePath, v2, full, ...(level ? [level] : [])]],
        ['generate delta', ['generate-delta', privatePath, v1, v2, delta]],
        ['apply full', ['cli', 'apply', full, '--target', out, '--pubkey', publicPath, '--json']],
        ['apply delta', ['cli', 'apply', delta, '--source', v1, '--target', out, '--pubkey', publicPath, '--json']],
        ['apply full, library', ['apply-full', publicPath, full, out]],
        ['apply delta, library', ['apply-delta', publicPath, delta, out, v1]],
      ];
      for (const [name, args] of steps) {
        const apply = name.startsWith('apply');
        if (!apply && reuse) {
          results.set(`${name}@${gib}`, { maxRssKiB: 0, seconds: 0, detail: 'reused' });
          process.stderr.write(`  ${name}: reused ${name.endsWith('full') ? full : delta}\n`);
          continue;
        }
        const runs: Measured[] = [];
        for (let i = 0; i < (apply ? runs_ : 1); i++) {
          runs.push(runChild(args));
          await fsp.rm(out, { force: true });
        }
        runs.sort((a, b) => a.maxRssKiB - b.maxRssKiB);
        const m = runs[(runs.length - 1) >> 1]!;
        results.set(`${name}@${gib}`, m);
        const each = runs.length > 1 ? ` (median of ${runs.map((r) => (r.maxRssKiB / 1024).toFixed(0)).join(', ')})` : '';
        process.stderr.write(`  ${name}: ${(m.maxRssKiB / 1024).toFixed(0)} MiB peak RSS${each}, ${m.seconds.toFixed(1)} s (${m.detail})\n`);
      }
      if (!keep) await Promise.all([v1, v2, full, delta].map((p) => fsp.rm(p, { force: true })));
    }
  } finally {
    if (!keep) await fsp.rm(dir, { recursive: true, force: true });
  }

  const mib = (op: Operation, gib: number) => results.get(`${op}@${gib}`)!.maxRssKiB / 1024;
  const fixedData = option('--fixed-data');
  const density = fixedData !== undefined ? `${fixedData} MiB of data in every image (only the zero space grows)` : `${DATA_FRACTION * 1024} MiB of data per GiB (same density at every size)`;
  console.log(`Peak RSS (MiB), one fresh process per operation (apply: median of ${runs_}); images sparse, ${density}, node ${process.version}`);
  console.log('apply = `fastpatch apply` (the CLI); apply, library = applyPayload in a program after tuneRuntime(), the optimizing compiler on\n');
  console.log(`| operation | ${sizes.map((s) => `${s} GiB`).join(' | ')} |`);
  console.log(`|---|${sizes.map(() => '---:').join('|')}|`);
  for (const op of OPERATIONS) console.log(`| ${op} | ${sizes.map((s) => mib(op, s).toFixed(0)).join(' | ')} |`);
  const lo = Math.min(...sizes), hi = Math.max(...sizes);
  if (hi > lo) {
    console.log('');
    for (const op of APPLY_OPERATIONS) {
      const ratio = mib(op, hi) / mib(op, lo);
      console.log(`${op}: ${hi} GiB / ${lo} GiB = ${ratio.toFixed(3)} (bar: within 10%: ${Math.abs(ratio - 1) <= 0.1 ? 'met' : 'NOT met'})`);
    }
    for (const op of ['generate full', 'generate delta'] as const) {
      console.log(`${op}: ${((mib(op, hi) - mib(op, lo)) / (hi - lo)).toFixed(1)} MiB per GiB of image`);
    }
  }
}

if (process.argv[2] === 'child') await child(process.argv.slice(3));
else await main(process.argv.slice(2));
