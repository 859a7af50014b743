/**
 * Section "codec": the full payload's codec and level, on a sample of the rootfs image. Format 2
 * compresses 16 MiB pieces with zstd (window 16 MiB), format 1 2 MiB pieces with deflate, each
 * piece alone, exactly as the generator does. This is the measurement behind DEFAULT_LEVELS and
 * DATA_CHUNKS: size against gzip -6 of the same bytes (the bar is 0.80x), compression speed, and
 * decompression speed (what a device pays). gzip -6 and zstd -19 --long CLIs are reference rows.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { DATA_CHUNKS, DEFAULT_LEVELS, zstdParams } from '../src/generate/generator.js';
import { fmtMiB, fmtPaired, fmtRange, fmtRate, fmtRuns, measureInterleaved, paired, progress, table, withCanary, type Case, type Stats } from './harness.js';
import { ensureRootfs } from './rootfs.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;
/** Two 16 MiB pieces: 32 MiB, enough to rank levels, small enough for level 19 in every round. */
const SAMPLE_PIECES = 2;
const PIECE = DATA_CHUNKS.zstd;
/** zstd levels measured: the fast end, the lazy matchers, the first optimal-parser level, the last. */
const ZSTD_LEVELS = [3, 9, 12, 16, 19];

export interface CodecFigures {
  rows: { name: string; sizeRatio: number; gzipRatio: number; compress: Stats }[];
}

export async function runCodec(rounds: number, workDir: string): Promise<CodecFigures> {
  let figures: CodecFigures | undefined;
  await withCanary('codec', async () => {
    figures = await measure(rounds, workDir);
  });
  return figures!;
}

/**
 * Evenly spaced 16 MiB pieces of the image among those that are mostly data (≤ 10% zero blocks):
 * the generator turns long zero runs into ZERO operations, so they never reach the compressor.
 */
async function readSample(path: string): Promise<Uint8Array[]> {
  const image = await fsp.readFile(path);
  const zero = new Uint8Array(BLOCK);
  const eligible: number[] = [];
  for (let pos = 0; pos + PIECE <= image.length; pos += PIECE) {
    let zeros = 0;
    for (let b = pos; b < pos + PIECE; b += BLOCK) if (image.subarray(b, b + BLOCK).equals(zero)) zeros++;
    if (zeros <= PIECE / BLOCK / 10) eligible.push(pos);
  }
  if (eligible.length < SAMPLE_PIECES) throw new Error(`rootfs image has only ${eligible.length} data-filled 16 MiB pieces`);
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < SAMPLE_PIECES; i++) {
    const pos = eligible[Math.floor((i * eligible.length) / SAMPLE_PIECES)]!;
    pieces.push(Uint8Array.from(image.subarray(pos, pos + PIECE)));
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
  progress(`codec: sampling ${SAMPLE_PIECES} × 16 MiB of ${rootfs.path}`);
  const pieces = await readSample(rootfs.path);
  const total = pieces.length * PIECE;
  const samplePath = join(workDir, 'codec-sample.bin');
  await fsp.writeFile(samplePath, Buffer.concat(pieces));
  const deflatePieces = pieces.flatMap((p) => Array.from({ length: PIECE / DATA_CHUNKS.deflate }, (_, i) => p.subarray(i * DATA_CHUNKS.deflate, (i + 1) * DATA_CHUNKS.deflate)));

  // Compressed outputs of the first run give each row's size, and feed the decoders.
  const streams = new Map<string, Uint8Array[]>();
  const compressCase = (name: string, input: Uint8Array[], compress: (p: Uint8Array) => Uint8Array): Case => ({
    name,
    bytes: total,
    run: () => {
      const outs = input.map(compress);
      if (!streams.has(name)) streams.set(name, outs);
    },
  });
  const deflateName = `deflate L${DEFAULT_LEVELS.deflate}, 2 MiB pieces (format 1)`;
  const zstdName = (level: number) => `zstd L${level}, 16 MiB pieces${level === DEFAULT_LEVELS.zstd ? ' (format 2 default)' : ''}`;
  const compress: Case[] = [compressCase(deflateName, deflatePieces, (p) => deflateRawSync(p, { level: DEFAULT_LEVELS.deflate }))];
  for (const level of ZSTD_LEVELS) compress.push(compressCase(zstdName(level), pieces, (p) => zstdCompressSync(p, { params: zstdParams(level) })));
  const cliRows: { name: string; cmd: string; args: string[] }[] = [];
  if (haveTool('gzip')) cliRows.push({ name: 'gzip -6 CLI, whole sample (the bar\'s reference)', cmd: 'gzip', args: ['-6', '-c', samplePath] });
  if (haveTool('zstd')) cliRows.push({ name: 'zstd -19 --long=27 CLI, whole sample, 1 thread', cmd: 'zstd', args: ['-19', '--long=27', '-T1', '-q', '-c', samplePath] });
  for (const r of cliRows) compress.push({ name: r.name, bytes: total, run: () => cliToDevNull(r.cmd, r.args) });

  const cstats = await measureInterleaved('codec compress', compress, { rounds });
  const size = (name: string) => {
    const cli = cliRows.find((r) => r.name === name);
    if (cli) return cliSize(cli.cmd, cli.args);
    return streams.get(name)!.reduce((n, s) => n + s.length, 0);
  };
  const gzipBytes = haveTool('gzip') ? cliSize('gzip', ['-6', '-c', samplePath]) : NaN;
  const rows = compress.map((c) => ({ name: c.name, sizeRatio: size(c.name) / total, gzipRatio: size(c.name) / gzipBytes, compress: cstats.get(c.name)! }));
  const deflateStats = cstats.get(deflateName)!;
  table(`Full payload codecs on ${fmtMiB(total)} of the rootfs image (each piece compressed alone, as the generator does)`,
    ['codec / level', 'size %', '× gzip -6 size', 'compress MB/s median (min–max)', 'MB per CPU-s', '× deflate L6 speed', 'clean runs', 'others\' cores'],
    rows.map((r) => [r.name, (r.sizeRatio * 100).toFixed(1), r.gzipRatio.toFixed(3), fmtRange(r.compress), fmtRate(r.compress.perCpuSecond), fmtPaired(paired(r.compress, deflateStats)), fmtRuns(r.compress), r.compress.othersCores.toFixed(2)]));

  // What a device pays: decompression of the format-1 stream against the format-2 default.
  const deflated = streams.get(deflateName)!;
  const zstded = streams.get(zstdName(DEFAULT_LEVELS.zstd))!;
  for (let i = 0; i < pieces.length; i++) {
    if (!Buffer.from(zstdDecompressSync(zstded[i]!)).equals(pieces[i]!)) throw new Error(`codec: zstd piece ${i} does not round-trip`);
  }
  const decode: Case[] = [
    { name: 'inflateRawSync of deflate L6 (2 MiB pieces)', bytes: total, run: () => { for (const s of deflated) inflateRawSync(s); } },
    { name: `zstdDecompressSync of zstd L${DEFAULT_LEVELS.zstd} (16 MiB pieces)`, bytes: total, run: () => { for (const s of zstded) zstdDecompressSync(s, { maxOutputLength: PIECE + 1, chunkSize: PIECE + 1 }); } },
  ];
  const dstats = await measureInterleaved('codec decompress', decode, { rounds });
  const peer = dstats.get(decode[0]!.name)!;
  table('Decompression (MB/s of decompressed output, one thread)',
    ['decoder', 'MB/s median (min–max)', 'MB per CPU-s', '× inflate', 'clean runs', 'others\' cores'],
    decode.map((c) => {
      const s = dstats.get(c.name)!;
      return [c.name, fmtRange(s), fmtRate(s.perCpuSecond), fmtPaired(paired(s, peer)), fmtRuns(s), s.othersCores.toFixed(2)];
    }));
  await fsp.rm(samplePath, { force: true });
  return { rows };
}
