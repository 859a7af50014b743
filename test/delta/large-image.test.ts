// Images past 4 GiB: a sparse image of almost 8 GiB (a short last block) with data below, across
// and above the 4 GiB line, and a second version changed only above it (bytes edited in place,
// data moved to unaligned offsets, a new region, a region zeroed, the last partial block edited).
// Full and delta payloads of it must round-trip, and their operations must name blocks above 2^20
// (byte offsets above 2^32) on both sides: anything that keeps a byte offset in 32 bits, in JS or in
// the WASM core, shows up as a wrong block, a wrong anchor position or a hash mismatch here.
//
// The images are sparse files (a few MiB of data each); comparing 8 GiB outputs byte for byte would
// dominate the run, so the outputs are checked by their block-list hash (hashImage, read from the
// file) against the hash the generator read from the input image, plus direct compares of every
// region written and of the bytes around each region's edges.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format, generateDeltaPayload, generateFullPayload, hashImage, readPayloadChunks } from '../../dist/src/index.js';
import { manifestOf, opName, proseBytes } from '../helpers/delta.js';
import { BLOCK, KiB, MiB, makeKeyPair, randomBytes, removeDir, tempDir, textBytes } from '../helpers/payloads.js';

const GiB = 1024 * MiB;
/** Almost 8 GiB: the last block holds 1596 bytes. */
const SIZE = 8 * GiB - 2500;
/** The first block whose byte offset does not fit 32 bits. */
const BLOCK_4G = 2 ** 32 / BLOCK;

interface Region {
  at: number;
  bytes: Uint8Array;
  what: string;
}

// The source image, v1.
const A = { at: 0, bytes: textBytes(2 * MiB, 1), what: 'A: text at 0' };
const B = { at: Math.floor(3.9 * GiB) + 123, bytes: randomBytes(1 * MiB, 2), what: 'B: random at 3.9 GiB (unaligned)' };
const C = { at: 4 * GiB - 2 * KiB, bytes: proseBytes(1 * MiB, 3), what: 'C: prose across 4 GiB' };
const D = { at: 4.5 * GiB, bytes: randomBytes(2 * MiB, 4), what: 'D: random at 4.5 GiB' };
const E = { at: Math.floor(7.99 * GiB), bytes: textBytes(1 * MiB, 5), what: 'E: text at 7.99 GiB' };
const F = { at: SIZE - 10_000, bytes: randomBytes(10_000, 6), what: 'F: random up to the end (short last block)' };
const V1: Region[] = [A, B, C, D, E, F];

// The target image, v2: A, C, E stay; B is zeroed; D is edited in place; C, D and E are also
// copied elsewhere above 4 GiB (C and E at offsets that are not block-aligned, so no block matches
// and only the fingerprint index can find them); a new region; F's last bytes edited.
function edited(bytes: Uint8Array, step: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 17; i < out.length; i += step) out[i] = out[i]! ^ 0x5a;
  return out;
}
const B2 = { at: B.at, bytes: new Uint8Array(B.bytes.length), what: 'B zeroed' };
const D2 = { at: D.at, bytes: edited(D.bytes, 20_011), what: 'D edited in place' };
const C2 = { at: 5 * GiB + 2 * KiB + 7, bytes: C.bytes, what: 'C moved to 5 GiB + 2055' };
const D3 = { at: 6.25 * GiB + 12 * KiB, bytes: D.bytes, what: 'D (unedited) copied to 6.25 GiB + 12 KiB' };
const E2 = { at: 7 * GiB + 100, bytes: edited(E.bytes, 50_000), what: 'E moved to 7 GiB + 100, lightly edited' };
const N2 = { at: 7.5 * GiB, bytes: textBytes(1 * MiB, 7), what: 'new text at 7.5 GiB' };
const F2 = { at: F.at, bytes: edited(F.bytes, 997), what: 'F edited (short last block)' };
const V2: Region[] = [A, B2, C, D2, C2, D3, E2, N2, E, F2];

const signer = makeKeyPair();
let dir: string;
let v1: string;
let v2: string;
const timings: string[] = [];

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    timings.push(`${what} ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
}

async function writeSparse(path: string, regions: readonly Region[]): Promise<void> {
  const handle = await fsp.open(path, 'w');
  try {
    await handle.truncate(SIZE);
    for (const r of regions) await handle.write(r.bytes, 0, r.bytes.length, r.at);
  } finally {
    await handle.close();
  }
}

/** The image's bytes [at, at + length), read from `path`. */
async function readAt(path: string, at: number, length: number): Promise<Buffer> {
  const handle = await fsp.open(path, 'r');
  try {
    const out = Buffer.alloc(length);
    const { bytesRead } = await handle.read(out, 0, length, at);
    return out.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * Every region of `regions` reads back from `path` as written, and the 8 KiB on each side of it
 * (outside every region) is zero. `regions` lists the final content: later entries win.
 */
async function checkRegions(path: string, regions: readonly Region[]): Promise<void> {
  const covered = (x: number) => regions.some((r) => x >= r.at && x < r.at + r.bytes.length);
  for (const r of regions) {
    const got = await readAt(path, r.at, r.bytes.length);
    const later = regions.slice(regions.indexOf(r) + 1);
    // Bytes a later region overwrote are checked with that region.
    const expected = Buffer.from(r.bytes);
    for (const l of later) {
      const from = Math.max(r.at, l.at), to = Math.min(r.at + r.bytes.length, l.at + l.bytes.length);
      if (from < to) expected.set(l.bytes.subarray(from - l.at, to - l.at), from - r.at);
    }
    expect(got.equals(expected), `${path}: ${r.what}`).toBe(true);
    for (const [from, to] of [[r.at - 8 * KiB, r.at], [r.at + r.bytes.length, r.at + r.bytes.length + 8 * KiB]] as const) {
      const lo = Math.max(0, from), hi = Math.min(SIZE, to);
      if (hi <= lo) continue;
      const around = await readAt(path, lo, hi - lo);
      around.forEach((b, i) => {
        if (b !== 0 && !covered(lo + i)) expect.fail(`${path}: byte ${lo + i} near ${r.what} is ${b}, expected 0`);
      });
    }
  }
  expect((await fsp.stat(path)).size).toBe(SIZE);
}

/** Applies a payload file to a new (sparse) target file and returns the result. */
async function applyTo(payloadPath: string, target: string, source?: string) {
  return applyPayload(readPayloadChunks(payloadPath), { trustedKeys: [signer.pub], target, ...(source ? { source } : {}) });
}

const maxBlock = (extents: readonly format.Extent[]) => Math.max(-1, ...extents.map((e) => e.startBlock + e.blockCount - 1));
const covers = (extents: readonly format.Extent[], byte: number) =>
  extents.some((e) => byte >= e.startBlock * BLOCK && byte < (e.startBlock + e.blockCount) * BLOCK);

beforeAll(async () => {
  dir = await tempDir('large-image');
  v1 = join(dir, 'v1.img');
  v2 = join(dir, 'v2.img');
  await writeSparse(v1, V1);
  await writeSparse(v2, V2);
  // A filesystem without sparse files would need 16 GiB here and much longer: say so, not time out.
  const { blocks } = await fsp.stat(v1);
  expect(blocks * 512, `${dir} does not keep files sparse`).toBeLessThan(64 * MiB);
});

afterAll(async () => {
  if (timings.length > 0) console.log(`large image (${SIZE} bytes): ${timings.join(', ')}`);
  await removeDir(dir);
});

describe('images past 4 GiB (sparse, 8 GiB - 2500 bytes)', () => {
  let v2Hash = '';

  it('full payload: generate, apply to a new file, same image; operations name blocks past 2^20', async () => {
    const payloadPath = join(dir, 'full.fpay');
    const result = await timed('full generate', () => generateFullPayload({ target: v2, keys: [signer.key], version: '2.0.0', out: payloadPath }));
    expect(result.targetSize).toBe(SIZE);
    v2Hash = result.targetHash;
    const m = manifestOf(await fsp.readFile(payloadPath));
    // Data operations past 4 GiB, at the right places: the region across the line, D, the moved
    // copies, and the short last block.
    const dataOps = m.operations.filter((op) => op.type !== format.OpType.ZERO);
    for (const r of [C, D2, C2, D3, E2, N2, E, F2]) {
      expect(dataOps.some((op) => covers(op.dstExtents, r.at + r.bytes.length - 1)), `a data operation writes the end of ${r.what}`).toBe(true);
    }
    expect(Math.max(...m.operations.map((op) => maxBlock(op.dstExtents)))).toBe(Math.ceil(SIZE / BLOCK) - 1);
    expect(dataOps.filter((op) => op.dstExtents[0]!.startBlock >= BLOCK_4G).length).toBeGreaterThanOrEqual(6);
    // The zeros between the regions travel as ZERO operations, not data.
    expect(result.payload.dataSize).toBeLessThan(16 * MiB);

    const out = join(dir, 'full-out.img');
    const applied = await timed('full apply', () => applyTo(payloadPath, out));
    expect(applied.targetHash).toBe(v2Hash);
    await checkRegions(out, V2);
    expect((await timed('hash full output', () => hashImage(out))).hash).toBe(v2Hash);
    await fsp.rm(out);
  });

  it('delta payload: generate from v1, apply onto a new file with v1 as source, same image; source extents past 2^20', async () => {
    const payloadPath = join(dir, 'delta.fpay');
    const result = await timed('delta generate', () => generateDeltaPayload({ source: v1, target: v2, keys: [signer.key], version: '2.0.0', out: payloadPath }));
    expect(result.sourceSize).toBe(SIZE);
    expect(result.targetSize).toBe(SIZE);
    if (v2Hash) expect(result.targetHash).toBe(v2Hash);
    v2Hash ||= result.targetHash;
    const m = manifestOf(await fsp.readFile(payloadPath));
    const summary = m.operations.filter((op) => op.type !== format.OpType.ZERO)
      .map((op) => `${opName(op)} ${op.dstExtents[0]!.startBlock}+${op.dstExtents[0]!.blockCount} <- [${op.srcExtents.slice(0, 3).map((e) => `${e.startBlock}+${e.blockCount}`).join(' ')}${op.srcExtents.length > 3 ? ' …' : ''}] ${op.dataLength} B`);
    const why = `operations:\n${summary.join('\n')}`;
    const sourceOps = m.operations.filter((op) => op.srcExtents.length > 0);
    /** The operations writing region r's middle, and whether one reads source blocks inside `from`. */
    const readsFrom = (r: Region, from: Region) => m.operations.some((op) =>
      covers(op.dstExtents, r.at + (r.bytes.length >> 1)) && op.srcExtents.some((e) =>
        e.startBlock * BLOCK < from.at + from.bytes.length && (e.startBlock + e.blockCount) * BLOCK > from.at));
    // Unchanged data past 4 GiB is copied from the same place; edited and moved data is diffed
    // against, or copied from, its old place past 4 GiB (found by block digest or by anchors
    // whose source positions are above 2^32).
    expect(readsFrom(E, E), `E copied ${why}`).toBe(true);
    expect(readsFrom(D2, D), `D edited in place ${why}`).toBe(true);
    expect(readsFrom(D3, D), `D copied to 6.25 GiB ${why}`).toBe(true);
    expect(readsFrom(C2, C), `C moved, unaligned ${why}`).toBe(true);
    expect(readsFrom(E2, E), `E moved, unaligned ${why}`).toBe(true);
    expect(readsFrom(F2, F), `F edited ${why}`).toBe(true);
    expect(sourceOps.some((op) => op.srcExtents.some((e) => e.startBlock > 2 * BLOCK_4G - 1024)), why).toBe(true);
    // Only the new region and the edits need data: the moved megabytes must not travel again.
    expect(result.payload.dataSize, why).toBeLessThan(1.5 * MiB);

    const out = join(dir, 'delta-out.img');
    const applied = await timed('delta apply', () => applyTo(payloadPath, out, v1));
    expect(applied.targetHash).toBe(v2Hash);
    expect(applied.sourceSize).toBe(SIZE);
    await checkRegions(out, V2);
    expect((await timed('hash delta output', () => hashImage(out))).hash).toBe(v2Hash);
    await fsp.rm(out);
  });
});
