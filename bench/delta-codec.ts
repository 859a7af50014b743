/**
 * Section "delta-codec": which compressor the SOURCE_DIFF streams should use. The streams are the
 * real ones: a delta of the debian-64M pair is generated, and every SOURCE_DIFF operation's
 * difference and extra streams are taken back out of it (decompressed, filter undone). Each codec
 * then compresses each operation's stream on its own, as the generator does, and the table gives
 * the total and the speed. fflate and node:zlib deflate are the issue's baseline; brotli (in Node
 * 20's zlib) is what FastPatch uses; zstd and xz (their CLIs, native) are reference rows for codecs
 * Node 20 does not ship (perf-limits.md: zstd in WASM compresses at 0.5-0.8x native).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants as zc, deflateRawSync } from 'node:zlib';
import { deflateSync as fflateDeflate } from 'fflate';
import { generateDeltaPayload } from '../src/generate/delta.js';
import { decodeHeader } from '../src/format/header.js';
import { decodeManifest } from '../src/format/manifest.js';
import { Codec, decodeDiffBlob, Filter } from '../src/format/diff.js';
import { HEADER_SIZE, OpType } from '../src/format/constants.js';
import { extentBytes } from '../src/format/manifest.js';
import { generateKey } from '../src/sign/keys.js';
import { DeltaCore } from '../src/wasm/delta.js';
import type { DeltaPair } from './delta-corpus.js';
import { fmtRate, progress, table } from './harness.js';

export interface DeltaCodecRow {
  codec: string;
  stream: 'extra' | 'difference';
  bytes: number;
  seconds: number;
}

/** Per-operation raw streams of every SOURCE_DIFF in a payload. */
function streamsOf(payload: Uint8Array): { extra: Uint8Array[]; difference: Uint8Array[] } {
  const header = decodeHeader(payload);
  if ('need' in header) throw new Error('payload too short');
  const manifest = decodeManifest(payload.subarray(HEADER_SIZE, HEADER_SIZE + header.manifestSize));
  const dataStart = HEADER_SIZE + header.manifestSize + header.signaturesSize;
  const delta = new DeltaCore();
  const extra: Uint8Array[] = [];
  const difference: Uint8Array[] = [];
  for (const [i, op] of manifest.operations.entries()) {
    if (op.type !== OpType.SOURCE_DIFF) continue;
    const blob = payload.subarray(dataStart + op.dataOffset, dataStart + op.dataOffset + op.dataLength);
    const [, diff, ext] = decodeDiffBlob(blob, extentBytes(op.dstExtents, manifest.targetSize), `operation ${i}`).map((s) => {
      const raw = s.codec === Codec.BROTLI ? new Uint8Array(brotliDecompressSync(s.data)) : s.data;
      return s.filter === Filter.X86 ? delta.x86Filter(raw, 'decode') : raw;
    });
    if (diff!.length > 0) difference.push(diff!);
    if (ext!.length > 0) extra.push(ext!);
  }
  return { extra, difference };
}

const brotli = (q: number) => (d: Uint8Array) =>
  brotliCompressSync(d, { params: { [zc.BROTLI_PARAM_QUALITY]: q, [zc.BROTLI_PARAM_LGWIN]: 24, [zc.BROTLI_PARAM_SIZE_HINT]: d.length } }).length;
const cli = (cmd: string, args: string[]) => (d: Uint8Array) => execFileSync(cmd, args, { input: d, maxBuffer: 1 << 30 }).length;

export async function runDeltaCodec(pair: DeltaPair, workDir: string): Promise<DeltaCodecRow[]> {
  progress(`delta-codec: generating a delta of ${pair.name} to take its streams from`);
  const out = join(workDir, 'codec-source.fpay');
  await generateDeltaPayload({ source: pair.source, target: pair.target, keys: [generateKey()], version: '2.0.0', out, force: true }); // workDir outlives runs
  const streams = streamsOf(readFileSync(out));
  const delta = new DeltaCore();
  const codecs: [string, (d: Uint8Array) => number][] = [
    ['node:zlib deflateRaw L9', (d) => deflateRawSync(d, { level: 9 }).length],
    ['fflate deflate L9', (d) => fflateDeflate(d, { level: 9 }).length],
    ['brotli Q5', brotli(5)],
    ['brotli Q9 (FastPatch, streams > 256 KiB)', brotli(9)],
    ['brotli Q9 + x86 filter', (d) => brotli(9)(delta.x86Filter(d, 'encode'))],
    ['brotli Q10', brotli(10)],
    ['brotli Q11 (FastPatch, streams ≤ 256 KiB)', brotli(11)],
    ['zstd -19 (native CLI, reference)', cli('zstd', ['-19', '-c', '-q'])],
    ['xz -9e (native CLI, reference)', cli('xz', ['-9e', '-c'])],
  ];
  const rows: DeltaCodecRow[] = [];
  for (const stream of ['extra', 'difference'] as const) {
    const pieces = streams[stream];
    const raw = pieces.reduce((n, p) => n + p.length, 0);
    for (const [codec, compress] of codecs) {
      progress(`delta-codec: ${stream} streams (${pieces.length}, ${(raw / 1e6).toFixed(1)} MB) with ${codec}`);
      const t0 = performance.now();
      let bytes = 0;
      for (const p of pieces) bytes += compress(p);
      rows.push({ codec, stream, bytes, seconds: (performance.now() - t0) / 1000 });
    }
    table(
      `Delta codec: the ${stream} streams of a ${pair.name} delta (${pieces.length} streams, ${raw.toLocaleString('en-US')} bytes raw), each compressed on its own; one run`,
      ['codec', 'compressed bytes', '% of raw', '× brotli Q9', 'MB/s'],
      rows.filter((r) => r.stream === stream).map((r) => {
        const q9 = rows.find((x) => x.stream === stream && x.codec.startsWith('brotli Q9 ('))!.bytes;
        return [r.codec, r.bytes.toLocaleString('en-US'), ((r.bytes / raw) * 100).toFixed(1), (r.bytes / q9).toFixed(3), fmtRate(raw / 1e6 / r.seconds)];
      }),
    );
  }
  return rows;
}
