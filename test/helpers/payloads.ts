/**
 * Shared helpers for the apply and CLI suites: deterministic images, keys, payloads written with
 * generateFullPayload, payload bytes fed to applyPayload in chosen chunkings, refusal checks and
 * loop devices. Everything here runs against the built library in dist/.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  FastPatchError,
  applyPayload,
  format,
  generateFullPayload,
  generateKey,
  publicKeyOf,
  type ApplyOptions,
  type ApplyResult,
  type CoreBuild,
  type GenerateResult,
  type PrivateKey,
  type PublicKey,
} from '../../dist/src/index.js';
import { signPayload } from '../../dist/src/sign/signer.js';
import { Prng as SamplePrng } from '../../dist/src/demo/sample.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const BLOCK = 4096;
/** Uncompressed bytes per data operation in a format-1 (deflate) payload (src/generate/generator.ts DATA_CHUNKS). */
export const DATA_CHUNK = 2 * MiB;
/** The same for a format-2 (zstd) payload, the default. */
export const ZSTD_DATA_CHUNK = 16 * MiB;
export const HEADER_SIZE = 32;
export const BUILDS: readonly CoreBuild[] = ['release', 'debug'];

// ---------------------------------------------------------------------------------------------
// Deterministic data

/** The demo's mulberry32 with the tests' own seeding, so every failure reproduces. */
export class Prng extends SamplePrng {
  constructor(seed: number) {
    super(0);
    this.state = (seed * 0x9e3779b1 + 0x1234567) >>> 0;
  }
  /** Integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
  /** Byte by byte (not the demo's 4 bytes per draw), so seeded test data stays what it was. */
  override fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i++) out[i] = this.next32() & 0xff;
    return out;
  }
}

/** `length` pseudo-random (incompressible) bytes. */
export function randomBytes(length: number, seed: number): Uint8Array {
  return new Prng(seed).fill(new Uint8Array(length));
}

const WORDS = 'boot kernel module service config network device partition update image release slot root mount'.split(' ');

/** Compressible, text-like bytes that never form an all-zero block. */
export function textBytes(length: number, seed: number): Uint8Array {
  const rng = new Prng(seed);
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const word = `${WORDS[rng.below(WORDS.length)]}${rng.below(8) === 0 ? '\n' : ' '}`;
    for (let i = 0; i < word.length && at < length; i++) out[at++] = word.charCodeAt(i);
  }
  return out;
}

/** A recognizable non-zero pattern for pre-filled targets: no block of it is all zero. */
export function patternBytes(length: number, seed = 0x5a): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((i % 251) ^ seed ^ (i >>> 12)) | 0x01;
  return out;
}

/** Mostly zeros: long zero runs (≥ 16 blocks, so ZERO operations appear) between short data islands. */
export function zeroRunsImage(size: number, seed: number): Uint8Array {
  const rng = new Prng(seed);
  const out = new Uint8Array(size);
  for (let at = rng.between(0, 64 * BLOCK); at < size; at += rng.between(40, 200) * BLOCK) {
    const island = textBytes(Math.min(rng.between(1, 3 * BLOCK), size - at), rng.next32());
    out.set(island, at);
  }
  return out;
}

/**
 * A mix of every kind of content: random (stays REPLACE when a whole chunk of it), text, long zero
 * runs, short zero runs (folded into data), blocks with a zero head and a non-zero tail, and a
 * final partial block.
 */
export function mixedImage(size: number, seed: number): Uint8Array {
  const rng = new Prng(seed);
  const out = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const kind = rng.below(5);
    const blocks = kind === 2 ? rng.between(16, 80) : rng.between(1, 24);
    const length = Math.min(blocks * BLOCK, size - at);
    if (kind === 0) out.set(randomBytes(length, rng.next32()), at);
    else if (kind === 1) out.set(textBytes(length, rng.next32()), at);
    else if (kind === 3) out.fill(0, at, at + length); // short zero run: stays inside data
    else if (kind === 4) out.set(randomBytes(Math.min(7, length), rng.next32()), at + length - Math.min(7, length));
    at += length;
  }
  return out;
}

/** Block-list hash per docs/FORMAT.md, computed with node:crypto as an independent reference. */
export function blockListHashRef(data: Uint8Array): string {
  const list = createHash('sha256');
  for (let pos = 0; pos < data.length; pos += BLOCK) {
    list.update(createHash('sha256').update(data.subarray(pos, pos + BLOCK)).digest());
  }
  return list.digest('hex');
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** True when both byte ranges are equal (without a huge diff in the failure message). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** First offset where a and b differ, or -1; the shorter length counts as a difference. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

// ---------------------------------------------------------------------------------------------
// Temporary folders, keys, payloads

/** A fresh temporary folder; remove it with removeDir in afterAll. */
export function tempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(join(tmpdir(), `fastpatch-${prefix}-`));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
}

export interface KeyPair {
  key: PrivateKey;
  pub: PublicKey;
  keyId: string;
}

export function makeKeyPair(): KeyPair {
  const key = generateKey();
  return { key, pub: publicKeyOf(key), keyId: hex(key.keyId) };
}

export interface BuiltPayload {
  image: Uint8Array;
  imagePath: string;
  payloadPath: string;
  /** The payload file's bytes. */
  payload: Buffer;
  result: GenerateResult;
}

/** Writes `image` to DIR/NAME.img and generates DIR/NAME.fpay from it. */
export async function buildPayload(
  dir: string,
  name: string,
  image: Uint8Array,
  options: { keys: readonly PrivateKey[]; version?: string; build?: CoreBuild; level?: number; formatVersion?: number },
): Promise<BuiltPayload> {
  const imagePath = join(dir, `${name}.img`);
  const payloadPath = join(dir, `${name}.fpay`);
  await fsp.writeFile(imagePath, image);
  const result = await generateFullPayload({
    target: imagePath,
    keys: options.keys,
    version: options.version ?? '1.0.0',
    out: payloadPath,
    force: true, // fixtures: a test may rebuild a name it built before
    ...(options.build ? { build: options.build } : {}),
    ...(options.level ? { level: options.level } : {}),
    ...(options.formatVersion ? { formatVersion: options.formatVersion } : {}),
  });
  return { image, imagePath, payloadPath, payload: await fsp.readFile(payloadPath), result };
}

/** Where the data section starts: header + manifest + signature block. */
export function dataStartOf(payload: Uint8Array): number {
  const v = new DataView(payload.buffer, payload.byteOffset, HEADER_SIZE);
  return HEADER_SIZE + v.getUint32(12, true) + v.getUint32(16, true);
}

// ---------------------------------------------------------------------------------------------
// Chunkings

/**
 * How to cut a payload into pushes: 'whole' (one chunk), a fixed size, sizes used in turn, or
 * { seed, max } for seeded random sizes in 1..max.
 */
export type Chunking = 'whole' | number | readonly number[] | { seed: number; max: number };

export function describeChunking(c: Chunking): string {
  if (c === 'whole') return 'whole buffer';
  if (typeof c === 'number') return `${c}-byte chunks`;
  if (Array.isArray(c)) return `chunks of ${c.join(', ')}`;
  const r = c as { seed: number; max: number };
  return `random chunks 1..${r.max} (seed ${r.seed})`;
}

/** The chunk sizes `chunking` cuts `length` bytes into (the last may be short). */
export function chunkSizes(length: number, chunking: Chunking): number[] {
  const sizes: number[] = [];
  if (chunking === 'whole') return length > 0 ? [length] : [];
  const rng = typeof chunking === 'object' && !Array.isArray(chunking) ? new Prng((chunking as { seed: number }).seed) : undefined;
  let at = 0;
  for (let i = 0; at < length; i++) {
    let n: number;
    if (typeof chunking === 'number') n = chunking;
    else if (Array.isArray(chunking)) n = chunking[i % chunking.length]!;
    else n = rng!.between(1, (chunking as { max: number }).max);
    n = Math.min(n, length - at);
    sizes.push(n);
    at += n;
  }
  return sizes;
}

/** Yields views of `data` in the given chunking (views share data's buffer and byteOffset). */
export async function* chunksOf(data: Uint8Array, chunking: Chunking = 'whole'): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const n of chunkSizes(data.length, chunking)) {
    yield data.subarray(at, at + n);
    at += n;
  }
}

/** Yields data cut at the given offsets (each in 0..length, ascending). */
export async function* splitAt(data: Uint8Array, ...cuts: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const cut of [...cuts, data.length]) {
    yield data.subarray(at, cut);
    at = cut;
  }
}

/** A copy of `data` placed at byteOffset `shift` inside a larger ArrayBuffer filled with 0xa5. */
export function atByteOffset(data: Uint8Array, shift: number): Uint8Array {
  const backing = new Uint8Array(new ArrayBuffer(data.length + shift + 13)).fill(0xa5);
  backing.set(data, shift);
  return backing.subarray(shift, shift + data.length);
}

/** applyPayload over an in-memory payload cut with `chunking`. */
export function applyBytes(payload: Uint8Array, options: ApplyOptions, chunking: Chunking = 'whole'): Promise<ApplyResult> {
  return applyPayload(chunksOf(payload, chunking), options);
}

/** The result without its timing, for comparing runs. */
export function untimed(result: ApplyResult): Omit<ApplyResult, 'seconds'> {
  const { seconds: _seconds, ...rest } = result;
  return rest;
}

/** A copy of `data` with data[at] ^= mask. */
export function flipped(data: Uint8Array, at: number, mask = 0x01): Buffer {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ mask;
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Refusals

/** Awaits `promise` and returns what it threw; fails the test if it resolved. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal, but the call succeeded');
}

/** Asserts `err` is a FastPatchError with `code` and `exitCode`. */
export function expectFastPatchError(err: unknown, code: string, exitCode: number): asserts err is FastPatchError {
  expect(err, String(err)).toBeInstanceOf(FastPatchError);
  const e = err as FastPatchError;
  expect({ code: e.code, exitCode: e.exitCode }, e.message).toEqual({ code, exitCode });
}

/** Describes an outcome for tables that collect mismatches: "CODE/exit" or the non-FastPatchError. */
export function outcome(err: unknown): string {
  if (err instanceof FastPatchError) return `${err.code}/${err.exitCode}`;
  return `not a FastPatchError: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
}

/** Writes a target file pre-filled with patternBytes(size) and returns its content. */
export async function writePatternFile(path: string, size: number, seed = 0x5a): Promise<Uint8Array> {
  const bytes = patternBytes(size, seed);
  await fsp.writeFile(path, bytes);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Root and loop devices

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** True when the suite may run root-only tests; otherwise prints why it skips them. */
export function rootOrWarn(what: string): boolean {
  if (!isRoot) console.warn(`skipping ${what}: needs root for loop devices (uid ${process.getuid?.()})`);
  else if (!existsSync('/dev/loop-control')) console.warn(`skipping ${what}: /dev/loop-control is missing`);
  return isRoot && existsSync('/dev/loop-control');
}

/** Attaches `backing` to a free loop device and returns its path (/dev/loopN). Detach with detachLoop. */
export function attachLoop(backing: string, options: { sectorSize?: number } = {}): string {
  const args = ['--find', '--show', ...(options.sectorSize ? ['--sector-size', String(options.sectorSize)] : []), backing];
  return execFileSync('losetup', args, { encoding: 'utf8' }).trim();
}

export function detachLoop(device: string): void {
  execFileSync('losetup', ['--detach', device]);
}

/** Runs `fn` with `backing` attached to a loop device, always detaching it afterwards. */
export async function withLoopDevice<T>(backing: string, options: { sectorSize?: number }, fn: (device: string) => Promise<T>): Promise<T> {
  const device = attachLoop(backing, options);
  try {
    return await fn(device);
  } finally {
    detachLoop(device);
  }
}

/**
 * Like withLoopDevice, with the disk's GPT partitions registered in the kernel (`partx --add`,
 * which works here although the kernel parses no partition table itself): /dev/loopNpM exist.
 */
export async function withPartitionedLoop<T>(backing: string, options: { sectorSize?: number }, fn: (device: string) => Promise<T>): Promise<T> {
  return withLoopDevice(backing, options, async (device) => {
    execFileSync('partx', ['--add', device]);
    try {
      return await fn(device);
    } finally {
      execFileSync('partx', ['--delete', device]);
    }
  });
}

/** Reads `length` bytes from the start of a file or block device. */
export async function readHead(path: string, length: number): Promise<Buffer> {
  const handle = await fsp.open(path, 'r');
  try {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(out, done, length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return out.subarray(0, done);
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-built payloads

/**
 * A payload assembled from parts, signed by `keys` like the generator signs (header + manifest),
 * so tests can build validly signed payloads that lie about their data. Blobs are concatenated in
 * order as the data section; `dataSize` defaults to their total length.
 */
export function assemblePayload(manifest: format.Manifest, blobs: readonly Uint8Array[], keys: readonly PrivateKey[], dataSize?: number, version: number = format.FORMAT_VERSION): Buffer {
  const manifestBytes = format.encodeManifest(manifest);
  const data = Buffer.concat(blobs);
  const header = format.encodeHeader({
    version,
    manifestSize: manifestBytes.length,
    signaturesSize: format.signaturesSize(keys.length),
    dataSize: dataSize ?? data.length,
  });
  const signatures = format.encodeSignatures(signPayload(header, manifestBytes, keys));
  return Buffer.concat([header, manifestBytes, signatures, data]);
}

/** One operation of handPayload: what it writes from block `start` on, and what it reads. */
export interface HandOp {
  type: number;
  start: number;
  /** The image's bytes the operation writes. */
  output: Uint8Array;
  blob?: Uint8Array;
  /** Source extents as [start, count] in blocks. */
  src?: ReadonlyArray<readonly [number, number]>;
  /** Target dictionary extents (SOURCE_ZSTD, format 2), and the bytes its hash is made from (default: the image's). */
  tdict?: format.Extent[];
  tdictBytes?: Uint8Array;
}

/** `extents` of `image` one after another, a short last block padded with zeros (what an operation reads). */
export function extentsOf(image: Uint8Array, extents: readonly format.Extent[]): Uint8Array {
  const out = new Uint8Array(extents.reduce((n, e) => n + e.blockCount, 0) * BLOCK);
  let at = 0;
  for (const e of extents) {
    out.set(image.subarray(e.startBlock * BLOCK, (e.startBlock + e.blockCount) * BLOCK), at);
    at += e.blockCount * BLOCK;
  }
  return out;
}

/**
 * A payload with header `version`, built from `ops` over `image` (and `source` for a delta) and
 * signed by `keys`, with every hash the manifest holds computed from what is given, so a blob that
 * lies is signed as is.
 */
export function handPayload(version: number, image: Uint8Array, ops: readonly HandOp[], keys: readonly PrivateKey[], source?: Uint8Array): Buffer {
  const hashOf = (data: Uint8Array) => Buffer.from(blockListHashRef(data), 'hex');
  let dataOffset = 0;
  const operations: format.Operation[] = ops.map((op) => {
    const blob = op.blob ?? new Uint8Array(0);
    const srcExtents = (op.src ?? []).map(([startBlock, blockCount]) => ({ startBlock, blockCount }));
    const built: format.Operation = {
      type: op.type,
      dataOffset,
      dataLength: blob.length,
      dataHash: blob.length > 0 ? hashOf(blob) : undefined,
      outputHash: hashOf(op.output),
      sourceHash: op.src && source ? hashOf(extentsOf(source, srcExtents)) : undefined,
      srcExtents,
      dstExtents: [{ startBlock: op.start, blockCount: Math.ceil(op.output.length / BLOCK) }],
      ...(op.tdict ? { targetDictionary: op.tdict, targetDictionaryHash: hashOf(op.tdictBytes ?? extentsOf(image, op.tdict)) } : {}),
    };
    dataOffset += blob.length;
    return built;
  });
  const manifest: format.Manifest = {
    blockSize: BLOCK,
    targetSize: image.length,
    targetHash: hashOf(image),
    sourceSize: source?.length ?? 0,
    sourceHash: source ? hashOf(source) : new Uint8Array(32),
    version: '2.0.0',
    sourceVersion: '',
    operations,
  };
  return assemblePayload(manifest, ops.map((op) => op.blob ?? new Uint8Array(0)), keys, undefined, version);
}

/** A raw 32-byte header with every field chosen by the caller (no checks), for hostile-header tests. */
export function rawHeader(fields: { magic?: Uint8Array; version?: number; manifestSize?: number; signaturesSize?: number; flags?: number; dataSize?: bigint }): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out.set(fields.magic ?? format.MAGIC, 0);
  out.writeUInt32LE(fields.version ?? format.FORMAT_VERSION, 8);
  out.writeUInt32LE(fields.manifestSize ?? 200, 12);
  out.writeUInt32LE(fields.signaturesSize ?? format.signaturesSize(1), 16);
  out.writeUInt32LE(fields.flags ?? 0, 20);
  out.writeBigUInt64LE(fields.dataSize ?? 0n, 24);
  return out;
}
