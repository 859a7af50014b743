/**
 * Helpers for the delta suites (test/delta): seeded image pairs (a source image and an edited
 * target), delta payloads made with generateDeltaPayload and their manifests, a JavaScript
 * reference of the SOURCE_DIFF apply kernel, and ext4 images made with mkfs.ext4 -d. Everything
 * runs against the built library in dist/.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { format, generateDeltaPayload, type CoreBuild, type DeltaResult, type PrivateKey } from '../../dist/src/index.js';
import { BLOCK, HEADER_SIZE, KiB, MiB, Prng, mixedImage, randomBytes, textBytes } from './payloads.js';
export { extentsOf } from './payloads.js';

// ---------------------------------------------------------------------------------------------
// Content

/** a[at] ^= mask (in place). */
export function xorByte(a: Uint8Array, at: number, mask: number): void {
  a[at] = a[at]! ^ mask;
}

const PROSE = (
  'the of and to in is that for it as with was on be by this are from at or an have not which but ' +
  'system update release device image partition kernel service network storage memory process user ' +
  'when each before after while during between through under every other first second new old ' +
  'write read verify check sign apply install remove change version support document example ' +
  'however therefore because although configuration available following important information'
).split(' ');

/**
 * English-like text with a wide vocabulary, capitals and punctuation: the kind of data brotli
 * (with its dictionary) compresses clearly better than deflate. Never an all-zero block.
 */
export function proseBytes(length: number, seed: number): Uint8Array {
  const rng = new Prng(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const words = rng.between(6, 18);
    let sentence = '';
    for (let i = 0; i < words; i++) {
      const w = PROSE[rng.below(PROSE.length)]!;
      sentence += i === 0 ? w[0]!.toUpperCase() + w.slice(1) : ` ${w}`;
      if (i > 0 && i < words - 1 && rng.below(9) === 0) sentence += ',';
      if (rng.below(23) === 0) sentence += ` ${rng.below(10000)}`;
    }
    sentence += rng.below(5) === 0 ? '.\n\n' : '. ';
    parts.push(sentence);
    size += sentence.length;
  }
  return new TextEncoder().encode(parts.join('')).subarray(0, length);
}

/** Fresh bytes of a random kind: incompressible, word soup, prose, or a copy of part of `from`. */
function freshBytes(rng: Prng, length: number, from: Uint8Array): { bytes: Uint8Array; kind: string } {
  const kind = rng.below(4);
  if (kind === 0) return { bytes: randomBytes(length, rng.next32()), kind: 'random' };
  if (kind === 1) return { bytes: textBytes(length, rng.next32()), kind: 'text' };
  if (kind === 2) return { bytes: proseBytes(length, rng.next32()), kind: 'prose' };
  const at = rng.below(Math.max(1, from.length - length));
  const copy = from.slice(at, at + length);
  return copy.length === length ? { bytes: copy, kind: `copied from ${at}` } : { bytes: randomBytes(length, rng.next32()), kind: 'random' };
}

// ---------------------------------------------------------------------------------------------
// Image pairs

export interface ImagePair {
  seed: number;
  source: Uint8Array;
  target: Uint8Array;
  /** What was done to the source, for failure messages. */
  edits: string[];
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** A run length: a few bytes, up to 3 blocks, or up to 64 whole blocks. */
function runLength(rng: Prng): number {
  const kind = rng.below(3);
  return kind === 0 ? rng.between(1, 64) : kind === 1 ? rng.between(1, 3 * BLOCK) : rng.between(1, 64) * BLOCK;
}

/** Applies one random edit to `img`, returning the new image and what was done. */
export function randomEdit(img: Uint8Array, rng: Prng): { image: Uint8Array; what: string } {
  const blocks = Math.floor(img.length / BLOCK);
  switch (rng.below(7)) {
    case 0: {
      const out = img.slice();
      const n = rng.between(1, 16);
      for (let i = 0; i < n; i++) xorByte(out, rng.below(out.length), rng.between(1, 255));
      return { image: out, what: `${n} scattered byte changes` };
    }
    case 1: {
      const at = rng.below(img.length + 1);
      const { bytes, kind } = freshBytes(rng, runLength(rng), img);
      return { image: concat(img.subarray(0, at), bytes, img.subarray(at)), what: `insert ${bytes.length} ${kind} bytes at ${at}` };
    }
    case 2: {
      const n = Math.min(runLength(rng), img.length - 1);
      const at = rng.below(img.length - n + 1);
      return { image: concat(img.subarray(0, at), img.subarray(at + n)), what: `delete ${n} bytes at ${at}` };
    }
    case 3: {
      if (blocks < 4) return { image: img, what: 'no move (too small)' };
      const n = rng.between(1, Math.min(80, blocks >> 1));
      const from = rng.below(blocks - n + 1);
      const moved = img.subarray(from * BLOCK, (from + n) * BLOCK);
      const rest = concat(img.subarray(0, from * BLOCK), img.subarray((from + n) * BLOCK));
      const to = rng.below(Math.floor(rest.length / BLOCK) + 1) * BLOCK;
      return { image: concat(rest.subarray(0, to), moved, rest.subarray(to)), what: `move blocks ${from}+${n} to byte ${to}` };
    }
    case 4: {
      if (blocks < 1) return { image: img, what: 'no zeroing (too small)' };
      const n = rng.between(1, Math.min(48, blocks));
      const from = rng.below(blocks - n + 1);
      const out = img.slice();
      out.fill(0, from * BLOCK, (from + n) * BLOCK);
      return { image: out, what: `zero blocks ${from}+${n}` };
    }
    case 5: {
      const n = Math.min(rng.between(1, 8 * BLOCK), img.length);
      const from = rng.below(img.length - n + 1);
      const to = rng.below(img.length - n + 1);
      const out = img.slice();
      out.set(img.subarray(from, from + n), to);
      return { image: out, what: `copy ${n} bytes from ${from} over ${to}` };
    }
    default: {
      if (rng.below(2) === 0) {
        const { bytes, kind } = freshBytes(rng, runLength(rng), img);
        return { image: concat(img, bytes), what: `append ${bytes.length} ${kind} bytes` };
      }
      const n = Math.min(runLength(rng), img.length - 1);
      return { image: img.slice(0, img.length - n), what: `truncate ${n} bytes` };
    }
  }
}

/**
 * A seeded source image of `minSize`..`maxSize` bytes (log-uniform; half of them not a multiple of
 * 4096) and a target made from it by 0..`maxEdits` random edits.
 */
export function randomPair(seed: number, options: { minSize?: number; maxSize?: number; maxEdits?: number } = {}): ImagePair {
  const rng = new Prng(seed);
  const lo = Math.log(options.minSize ?? 64 * KiB);
  const hi = Math.log(options.maxSize ?? 4 * MiB);
  let size = Math.round(Math.exp(lo + ((hi - lo) * rng.next32()) / 2 ** 32));
  if (rng.below(2) === 0) size = Math.max(BLOCK, size - (size % BLOCK));
  const source = mixedImage(size, rng.next32());
  if (rng.below(3) === 0) {
    const prose = proseBytes(Math.min(size, rng.between(1, 64) * BLOCK), rng.next32());
    source.set(prose, Math.floor(rng.below(size - prose.length + 1) / BLOCK) * BLOCK);
  }
  let target = source;
  const edits: string[] = [`source of ${size} bytes`];
  const count = rng.below((options.maxEdits ?? 8) + 1);
  for (let i = 0; i < count; i++) {
    const e = randomEdit(target, rng);
    target = e.image;
    edits.push(e.what);
  }
  if (target === source) target = source.slice();
  return { seed, source, target, edits };
}

// ---------------------------------------------------------------------------------------------
// Delta payloads

export interface BuiltDelta {
  sourcePath: string;
  targetPath: string;
  payloadPath: string;
  payload: Buffer;
  manifest: format.Manifest;
  result: DeltaResult;
}

/** Writes DIR/NAME.old.img and DIR/NAME.new.img and generates DIR/NAME.fpay from them. */
export async function buildDelta(
  dir: string,
  name: string,
  source: Uint8Array,
  target: Uint8Array,
  options: { keys: readonly PrivateKey[]; build?: CoreBuild; version?: string; workers?: number; formatVersion?: number },
): Promise<BuiltDelta> {
  const sourcePath = join(dir, `${name}.old.img`);
  const targetPath = join(dir, `${name}.new.img`);
  await fsp.writeFile(sourcePath, source);
  await fsp.writeFile(targetPath, target);
  return deltaOfFiles(sourcePath, targetPath, join(dir, `${name}.fpay`), options);
}

/** generateDeltaPayload of two image files (or devices), with the payload's bytes and manifest. */
export async function deltaOfFiles(
  sourcePath: string,
  targetPath: string,
  payloadPath: string,
  options: { keys: readonly PrivateKey[]; build?: CoreBuild; version?: string; workers?: number; formatVersion?: number },
): Promise<BuiltDelta> {
  const result = await generateDeltaPayload({
    source: sourcePath,
    target: targetPath,
    keys: options.keys,
    version: options.version ?? '2.0.0',
    out: payloadPath,
    force: true, // fixtures: a test may rebuild a name it built before
    ...(options.build ? { build: options.build } : {}),
    ...(options.workers ? { workers: options.workers } : {}),
    ...(options.formatVersion ? { formatVersion: options.formatVersion } : {}),
  });
  const payload = await fsp.readFile(payloadPath);
  return { sourcePath, targetPath, payloadPath, payload, manifest: manifestOf(payload), result };
}

/** The decoded manifest of a payload's bytes. */
export function manifestOf(payload: Uint8Array): format.Manifest {
  const size = new DataView(payload.buffer, payload.byteOffset, HEADER_SIZE).getUint32(12, true);
  return format.decodeManifest(payload.subarray(HEADER_SIZE, HEADER_SIZE + size));
}

export const opName = (op: format.Operation) => format.OP_NAMES[op.type] ?? `type ${op.type}`;

/** Byte range [start, end) of the target that operation `op` writes (its extents are contiguous). */
export function targetRange(m: format.Manifest, op: format.Operation): [number, number] {
  const first = op.dstExtents[0]!.startBlock * BLOCK;
  return [first, first + format.extentBytes(op.dstExtents, m.targetSize)];
}

/** Block numbers listed by `extents`, in order. */
export function blocksOf(extents: readonly format.Extent[]): number[] {
  return extents.flatMap((e) => Array.from({ length: e.blockCount }, (_, i) => e.startBlock + i));
}


/** For each target block, the source block a SOURCE_COPY operation copies into it, or -1. */
export function copyMap(m: format.Manifest): Int32Array {
  const map = new Int32Array(Math.ceil(m.targetSize / BLOCK)).fill(-1);
  for (const op of m.operations) {
    if (op.type !== format.OpType.SOURCE_COPY) continue;
    const src = blocksOf(op.srcExtents);
    blocksOf(op.dstExtents).forEach((b, i) => (map[b] = src[i]!));
  }
  return map;
}

/** Data offset of operation `index`'s blob in the payload bytes. */
export function blobStart(payload: Uint8Array, m: format.Manifest, index: number): number {
  const v = new DataView(payload.buffer, payload.byteOffset, HEADER_SIZE);
  return HEADER_SIZE + v.getUint32(12, true) + v.getUint32(16, true) + m.operations[index]!.dataOffset;
}

// ---------------------------------------------------------------------------------------------
// SOURCE_DIFF control streams

/** Unsigned LEB128 of `x` (a bigint allows values past 2^53); `pad` adds redundant 0x80 bytes. */
export function varint(x: number | bigint, pad = 0): number[] {
  let v = BigInt(x);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  if (pad === 0) return [...out, Number(v)];
  out.push(Number(v) | 0x80);
  for (let i = 1; i < pad; i++) out.push(0x80);
  return [...out, 0];
}

/** Zigzag code of a signed distance: 0, -1, 1, -2, ... as 0, 1, 2, 3, ... */
export const zigzag = (d: number) => (d >= 0 ? d * 2 : -d * 2 - 1);

/** A control stream of (diffLen, extraLen, signed source distance) entries. */
export function control(entries: readonly (readonly [number, number, number])[]): Uint8Array {
  return Uint8Array.from(entries.flatMap(([n, x, d]) => [...varint(n), ...varint(x), ...varint(zigzag(d))]));
}

/**
 * Reference of the SOURCE_DIFF kernel (assembly/delta/patch.ts), written from its contract: per
 * entry three LEB128 numbers (at most 5 bytes, below 2^32): diffLen, extraLen and the zigzag
 * distance from where the previous entry's source bytes ended; output = source + difference bytes,
 * then extra bytes. Returns the output or the kernel's negative code.
 */
export function patchApplyRef(src: Uint8Array, ctrl: Uint8Array, diff: Uint8Array, extra: Uint8Array, outLen: number): Uint8Array | number {
  let cursor = 0;
  const read = (): number => {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      if (cursor >= ctrl.length) return -1;
      const b = ctrl[cursor++]!;
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return value > 0xffffffff ? -1 : value;
    }
    return -1;
  };
  const out = new Uint8Array(outLen);
  let o = 0, d = 0, e = 0, expected = 0;
  while (cursor < ctrl.length) {
    const n = read(), x = read(), z = read();
    if (n < 0 || x < 0 || z < 0) return -1;
    const at = expected + (z % 2 === 1 ? -(z + 1) / 2 : z / 2);
    if (at < 0 || at + n > src.length) return -2;
    if (o + n + x > outLen) return -3;
    if (d + n > diff.length || e + x > extra.length) return -4;
    for (let i = 0; i < n; i++) out[o + i] = (src[at + i]! + diff[d + i]!) & 0xff;
    o += n;
    d += n;
    out.set(extra.subarray(e, e + x), o);
    o += x;
    e += x;
    expected = at + n;
  }
  return o === outLen && d === diff.length && e === extra.length ? out : -5;
}

// ---------------------------------------------------------------------------------------------
// ext4 images

/** Fixed so that mkfs.ext4 makes the same bytes from the same tree on every run. */
const FAKE_TIME = '1700000000';
const FIXED_DATE = '20231114221320'; // FAKE_TIME in debugfs's format (UTC)

/** Writes `files` (path relative to `root` -> content) under `root`, every timestamp fixed. */
export async function writeTree(root: string, files: ReadonlyMap<string, Uint8Array>): Promise<void> {
  for (const [path, content] of files) {
    await fsp.mkdir(join(root, dirname(path)), { recursive: true });
    await fsp.writeFile(join(root, path), content, { mode: 0o644 });
  }
  const time = new Date(Number(FAKE_TIME) * 1000);
  for (const path of (await walk(root)).reverse()) await fsp.utimes(path, time, time);
}

async function walk(root: string): Promise<string[]> {
  const out = [root];
  for (const entry of await fsp.readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out.sort();
}

/**
 * A fresh ext4 image of `size` bytes (4096-byte blocks) holding the tree at `root`, made with
 * mkfs.ext4 -d with a fixed UUID, hash seed and clock. mkfs copies each file's ctime and atime
 * from the host, so those are then set to the fixed time with debugfs: the image depends on the
 * tree only.
 */
export async function mkfsExt4(image: string, root: string, size: number, uuid: string): Promise<void> {
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: FAKE_TIME };
  await fsp.rm(image, { force: true });
  await fsp.writeFile(image, new Uint8Array(0));
  await fsp.truncate(image, size);
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-U', uuid, '-E', `hash_seed=${uuid},root_owner=0:0`, '-d', root, image], { env, stdio: 'pipe' });
  const commands = (await walk(root)).flatMap((p) => {
    const inFs = `/${relative(root, p)}`;
    return [`sif "${inFs}" ctime ${FIXED_DATE}`, `sif "${inFs}" atime ${FIXED_DATE}`];
  });
  const script = `${image}.debugfs`;
  await fsp.writeFile(script, `${commands.join('\n')}\n`);
  execFileSync('debugfs', ['-w', '-f', script, image], { env, stdio: 'pipe' });
  await fsp.rm(script);
}

/** Runs e2fsck -fn (force, read-only) on an image or device; returns its exit code and output. */
export function e2fsck(device: string): { code: number; output: string } {
  try {
    const output = execFileSync('e2fsck', ['-fn', device], { encoding: 'utf8', stdio: 'pipe' });
    return { code: 0, output };
  } catch (err) {
    const e = err as { status: number | null; stdout?: string; stderr?: string };
    return { code: e.status ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A file's content as debugfs reads it from an ext4 image or device, or undefined if it is missing. */
export function ext4File(device: string, path: string): Buffer | undefined {
  const stat = execFileSync('debugfs', ['-R', `stat "${path}"`, device], { encoding: 'utf8', stdio: 'pipe' });
  if (!/Inode: \d+/.test(stat)) return undefined;
  return execFileSync('debugfs', ['-R', `cat "${path}"`, device], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB });
}

/** Attaches `backing` read-only to a free loop device (losetup -f --show -r). Detach with detachLoop. */
export function attachLoopReadOnly(backing: string): string {
  return execFileSync('losetup', ['--find', '--show', '--read-only', backing], { encoding: 'utf8' }).trim();
}
