/**
 * Section "codec": deflate levels and implementations on a sample of the rootfs image, cut in
 * DATA_CHUNK (2 MiB) pieces compressed independently, exactly as the generator does. This is the
 * measurement behind DEFAULT_LEVEL and the choice of node:zlib over fflate; gzip -6 and zstd -3
 * (the CLIs, on the whole sample) are reference rows for what other codecs would give.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import { deflateSync as fflateDeflate, inflateSync as fflateInflate } from 'fflate';
import { DATA_CHUNKS, DEFAULT_LEVELS } from '../src/generate/generator.js';
const DATA_CHUNK = DATA_CHUNKS.deflate;
const DEFAULT_LEVEL = DEFAULT_LEVELS.deflate;
import { fmtMiB, fmtPaired, fmtRange, fmtRate, fmtRuns, measureInterleaved, paired, progress, table, withCanary, type Case, type Stats } from './harness.js';
import { ensureRootfs } from './rootfs.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;
/** 16 pieces of 2 MiB: 32 MiB, the size perf-limits.md used. */
const SAMPLE_PIECES = 16;
const deflateRawAsync = promisify(deflateRaw);
const inflateRawAsync = promisify(inflateRaw);

export interface CodecFigures {
  rows: { name: string; sizeRatio: number; compress: Stats }[];
}

export async function runCodec(rounds: number, workDir: string): Promise<CodecFigures> {
  let figures: CodecFigures | undefined;
  await withCanary('codec', async () => {
    figures = await measure(rounds, workDir);
  });
  return figures!;
}

/**
 * Evenly spaced 2 MiB pieces of the image among those that are mostly data (≤ 10% zero blocks):
 * the generator turns long zero runs into ZERO operations, so they never reach the compressor.
 */
async function readSample(path: string): Promise<Uint8Array[]> {
  const image = await fsp.readFile(path);
  const zero = new Uint8Array(BLOCK);
  const eligible: number[] = [];
  for (let pos = 0; pos + DATA_CHUNK <= image.length; pos += DATA_CHUNK) {
    let zeros = 0;
    for (let b = pos; b < pos + DATA_CHUNK; b += BLOCK) if (image.subarray(b, b + BLOCK).equals(zero)) zeros++;
    if (zeros <= DATA_CHUNK / BLOCK / 10) eligible.push(pos);
  }
  if (eligible.length < SAMPLE_PIECES) throw new Error(`rootfs image has only ${eligible.length} data-filled 2 MiB pieces`);
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < SAMPLE_PIECES; i++) {
    const pos = eligible[Math.floor((i * eligible.length) / SAMPLE_PIECES)]!;
    pieces.push(Uint8Array.from(image.subarray(pos, pos + DATA_CHUNK)));
  }
  return pieces;
}

/** Runs a CLI compressor with stdout to /dev/null (the timed form). */
function cliToDevNull(cmd: string, args: readonly string[]): Promise<void> {
  const devnull = openSync('/dev/null', 'w');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', devnull, 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  }).finally(() => closeSync(devnull));
}

/** Compressed size from one untimed run. */
function cliSize(cmd: string, args: readonly string[]): number {
  return execFileSync(cmd, args, { maxBuffer: 1 << 30 }).length;
}

function haveTool(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function measure(rounds: number, workDir: string): Promise<CodecFigures> {
  const rootfs = await ensureRootfs();
  progress(`codec: sampling ${SAMPLE_PIECES} × 2 MiB of ${rootfs.path}`);
  const pieces = await readSample(rootfs.path);
  const total = pieces.length * DATA_CHUNK;
  const samplePath = join(workDir, 'codec-sample.bin');
  await fsp.writeFile(samplePath, Buffer.concat(pieces));

  // Compressed outputs of the warm-up run give each row's size, and feed the decoders.
  const streams = new Map<string, Uint8Array[]>();
  const compressCase = (name: string, compress: (p: Uint8Array) => Uint8Array): Case => ({
    name,
    bytes: total,
    run: () => {
      const outs = pieces.map(compress);
      if (!streams.has(name)) streams.set(name, outs);
    },
  });
  const zlibName = (level: number) => `node:zlib \`deflateRawSync\` L${level}${level === DEFAULT_LEVEL ? ' (DEFAULT_LEVEL)' : ''}`;
  const compress: Case[] = [1, 4, 6, 9].map((level) => compressCase(zlibName(level), (p) => deflateRawSync(p, { level })));
  compress.push(compressCase('fflate `deflateSync` L6', (p) => fflateDeflate(p, { level: 6 })));
  // The generator's real shape: async deflateRaw on libuv's pool, COMPRESS_DEPTH = 4 in flight.
  const asyncName = `node:zlib \`deflateRaw\` L${DEFAULT_LEVEL} async, 4 in flight (as the generator, 2 cores)`;
  compress.push({
    name: asyncName,
    bytes: total,
    cores: 2,
    run: async () => {
      const outs = await inFlight(pieces, 4, (p) => deflateRawAsync(p, { level: DEFAULT_LEVEL }));
      if (!streams.has(asyncName)) streams.set(asyncName, outs);
    },
  });
  const cliRows: { name: string; cmd: string; args: string[] }[] = [];
  if (haveTool('gzip')) cliRows.push({ name: 'gzip -6 CLI, whole sample (reference)', cmd: 'gzip', args: ['-6', '-c', samplePath] });
  if (haveTool('zstd')) cliRows.push({ name: 'zstd -3 CLI, whole sample, 1 thread (reference)', cmd: 'zstd', args: ['-3', '-T1', '-q', '-c', samplePath] });
  for (const r of cliRows) compress.push({ name: r.name, bytes: total, run: () => cliToDevNull(r.cmd, r.args) });

  const cstats = await measureInterleaved('codec compress', compress, { rounds });
  const size = (name: string) => {
    const cli = cliRows.find((r) => r.name === name);
    if (cli) return cliSize(cli.cmd, cli.args);
    return streams.get(name)!.reduce((n, s) => n + s.length, 0);
  };
  const rows = compress.map((c) => ({ name: c.name, sizeRatio: size(c.name) / total, compress: cstats.get(c.name)! }));
  const l6Stats = cstats.get(zlibName(6))!;
  table(`Deflate on ${fmtMiB(total)} of the rootfs image (${SAMPLE_PIECES} × 2 MiB pieces, each compressed alone)`,
    ['codec / level', 'size %', 'compress MB/s median (min–max)', 'MB per CPU-s', '× node:zlib L6 speed', 'clean runs', 'others\' cores'],
    rows.map((r) => [r.name, (r.sizeRatio * 100).toFixed(1), fmtRange(r.compress), fmtRate(r.compress.perCpuSecond), fmtPaired(paired(r.compress, l6Stats)), fmtRuns(r.compress), r.compress.othersCores.toFixed(2)]));

  // Decoders on the same L6 stream (node's, as the generator writes it), then fflate's own.
  const l6 = streams.get(zlibName(6))!;
  const fl6 = streams.get('fflate `deflateSync` L6')!;
  const reused = new Uint8Array(DATA_CHUNK);
  const decode: Case[] = [
    { name: 'node:zlib `inflateRawSync` (fresh output per piece)', bytes: total, run: () => { for (const s of l6) inflateRawSync(s); } },
    { name: 'fflate `inflateSync` (fresh output per piece)', bytes: total, run: () => { for (const s of l6) fflateInflate(s); } },
    { name: 'fflate `inflateSync` with `out` (one reused 2 MiB buffer)', bytes: total, run: () => { for (const s of l6) fflateInflate(s, { out: reused }); } },
    { name: 'node:zlib `inflateRaw` async, 4 in flight (2 cores)', bytes: total, cores: 2, run: () => inFlight(l6, 4, (s) => inflateRawAsync(s)) },
    { name: 'node:zlib `inflateRawSync` on fflate L6 stream', bytes: total, run: () => { for (const s of fl6) inflateRawSync(s); } },
  ];
  // Check the decoders agree with the input before timing them.
  for (let i = 0; i < pieces.length; i++) {
    if (!Buffer.from(inflateRawSync(l6[i]!)).equals(pieces[i]!) || !Buffer.from(fflateInflate(l6[i]!)).equals(pieces[i]!)) {
      throw new Error(`codec: piece ${i} does not round-trip`);
    }
  }
  const dstats = await measureInterleaved('codec inflate', decode, { rounds });
  const peer = dstats.get(decode[0]!.name)!;
  table('Inflate of the node:zlib L6 stream (MB/s of decompressed output)',
    ['decoder', 'MB/s median (min–max)', 'MB per CPU-s', '× node:zlib inflateRawSync', 'clean runs', 'others\' cores'],
    decode.map((c) => {
      const s = dstats.get(c.name)!;
      return [c.name, fmtRange(s), fmtRate(s.perCpuSecond), fmtPaired(paired(s, peer)), fmtRuns(s), s.othersCores.toFixed(2)];
    }));
  await fsp.rm(samplePath, { force: true });
  return { rows };
}

/** Runs job over items with at most `depth` pending at once, as the generator's and applier's pipelines do. */
async function inFlight<T, R>(items: readonly T[], depth: number, job: (item: T) => Promise<R>): Promise<R[]> {
  const results: Promise<R>[] = [];
  for (let i = 0; i < items.length; i++) {
    results.push(job(items[i]!));
    if (i + 1 >= depth) await results[i + 1 - depth];
  }
  return Promise.all(results);
}
