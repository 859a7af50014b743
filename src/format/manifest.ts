import { FastPatchError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, FORMAT_VERSION, LIMITS, OP_NAMES, OPS_OF_VERSION, OpType, SOURCE_OPS } from './constants.js';

/** A run of whole blocks: [startBlock, startBlock + blockCount). */
export interface Extent {
  startBlock: number;
  blockCount: number;
}

/** One operation of the manifest (docs/FORMAT.md, "Operation"). Hashes are views into the manifest bytes. */
export interface Operation {
  type: number;
  /** Offset of this operation's data blob from the start of the data section. */
  dataOffset: number;
  dataLength: number;
  /** Block-list hash of the data blob; absent when dataLength is 0. */
  dataHash: Uint8Array | undefined;
  /** Block-list hash of the bytes the operation writes, in extent order. */
  outputHash: Uint8Array;
  /** Block-list hash of the source blocks the operation reads (delta operations), in extent order. */
  sourceHash: Uint8Array | undefined;
  srcExtents: Extent[];
  dstExtents: Extent[];
  /**
   * SOURCE_ZSTD only (format 2): target blocks that earlier operations wrote (all before the
   * operation's first destination block) joining its dictionary after the source data, in
   * extent order (absent or empty: none).
   */
  targetDictionary?: Extent[];
  /** Block-list hash of those target blocks; present when targetDictionary is not empty. */
  targetDictionaryHash?: Uint8Array | undefined;
}

export interface Manifest {
  blockSize: number;
  /** Bytes of the image the payload produces. */
  targetSize: number;
  /** Block-list hash of the whole target image. */
  targetHash: Uint8Array;
  /** 0 with an all-zero hash for full payloads. */
  sourceSize: number;
  sourceHash: Uint8Array;
  /** Release version of the image, e.g. "1.2.0" (for downgrade checks). */
  version: string;
  /**
   * A delta's source release, e.g. "1.1.0", so a device on another release is told which one the
   * delta needs; '' when the generator was not told (and always for a full payload).
   */
  sourceVersion: string;
  operations: Operation[];
}

const FIXED_SIZE = 4 + 4 + 8 + 32 + 8 + 32;
const OP_FIXED_SIZE = 1 + 1 + 2 + 2 + 2 + 8 + 4;
const EXTENT_SIZE = 12;
const FLAG_HAS_SOURCE = 1;
/** Release versions: printable and shell-safe, so error messages can quote them. */
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.+~_-]*$/;

/** Bytes one operation takes in the manifest. */
export function operationSize(op: Operation): number {
  return (
    OP_FIXED_SIZE +
    (op.dataLength > 0 ? DIGEST_SIZE : 0) +
    DIGEST_SIZE +
    (op.srcExtents.length > 0 ? DIGEST_SIZE : 0) +
    ((op.targetDictionary?.length ?? 0) > 0 ? DIGEST_SIZE : 0) +
    EXTENT_SIZE * (op.srcExtents.length + op.dstExtents.length + (op.targetDictionary?.length ?? 0))
  );
}

/** Throws RangeError unless `version` is a release version the manifest can carry. */
export function checkReleaseVersion(version: string): void {
  if (!VERSION_RE.test(version) || version.length > LIMITS.MAX_VERSION_LENGTH) {
    throw new RangeError(`version "${version}" must be 1..${LIMITS.MAX_VERSION_LENGTH} characters of [0-9A-Za-z.+~_-], starting with a letter or digit`);
  }
}

/** Serializes a manifest. Throws RangeError for values the format cannot hold. */
export function encodeManifest(m: Manifest): Uint8Array {
  checkReleaseVersion(m.version);
  // Absent (a manifest built by hand, in JS) is the same as '': not recorded.
  const sourceVersion = m.sourceVersion ?? '';
  if (sourceVersion !== '') checkReleaseVersion(sourceVersion);
  if (sourceVersion !== '' && m.sourceSize === 0) throw new RangeError('a full payload has no source version');
  const versionBytes = new TextEncoder().encode(m.version);
  const sourceVersionBytes = new TextEncoder().encode(sourceVersion);
  let size = FIXED_SIZE + 1 + versionBytes.length + (m.sourceSize > 0 ? 1 + sourceVersionBytes.length : 0) + 4;
  for (const op of m.operations) size += operationSize(op);
  if (size > LIMITS.MAX_MANIFEST_SIZE) throw new RangeError(`manifest of ${size} bytes exceeds ${LIMITS.MAX_MANIFEST_SIZE}`);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let p = 0;
  const u8 = (x: number) => void v.setUint8(p++, x);
  const u16 = (x: number) => { v.setUint16(p, x, true); p += 2; };
  const u32 = (x: number) => { v.setUint32(p, x, true); p += 4; };
  const u64 = (x: number) => { v.setBigUint64(p, BigInt(x), true); p += 8; };
  const bytes = (b: Uint8Array, n: number) => {
    if (b.length !== n) throw new RangeError(`expected ${n} bytes, got ${b.length}`);
    out.set(b, p);
    p += n;
  };
  u32(m.blockSize);
  u32(m.sourceSize > 0 ? FLAG_HAS_SOURCE : 0);
  u64(m.targetSize);
  bytes(m.targetHash, DIGEST_SIZE);
  u64(m.sourceSize);
  bytes(m.sourceHash, DIGEST_SIZE);
  u8(versionBytes.length);
  bytes(versionBytes, versionBytes.length);
  if (m.sourceSize > 0) {
    u8(sourceVersionBytes.length);
    bytes(sourceVersionBytes, sourceVersionBytes.length);
  }
  u32(m.operations.length);
  for (const op of m.operations) {
    u8(op.type);
    u8(0);
    u16(op.srcExtents.length);
    u16(op.dstExtents.length);
    u16(op.targetDictionary?.length ?? 0);
    u64(op.dataOffset);
    u32(op.dataLength);
    if (op.dataLength > 0) bytes(op.dataHash ?? new Uint8Array(0), DIGEST_SIZE);
    bytes(op.outputHash, DIGEST_SIZE);
    if (op.srcExtents.length > 0) bytes(op.sourceHash ?? new Uint8Array(0), DIGEST_SIZE);
    if ((op.targetDictionary?.length ?? 0) > 0) bytes(op.targetDictionaryHash ?? new Uint8Array(0), DIGEST_SIZE);
    for (const e of [...op.srcExtents, ...op.dstExtents, ...(op.targetDictionary ?? [])]) {
      u64(e.startBlock);
      u32(e.blockCount);
    }
  }
  return out;
}

/** Reads fields of a manifest with every read bounds-checked against its length. */
class Reader {
  private pos = 0;
  private readonly view: DataView;
  constructor(private readonly source: Uint8Array) {
    this.view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  }
  get remaining(): number {
    return this.source.length - this.pos;
  }
  private take(n: number, what: string): number {
    if (n > this.remaining) throw corrupt(`manifest ends inside ${what} (offset ${this.pos}, needs ${n} bytes)`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8(what: string): number { return this.view.getUint8(this.take(1, what)); }
  u16(what: string): number { return this.view.getUint16(this.take(2, what), true); }
  u32(what: string): number { return this.view.getUint32(this.take(4, what), true); }
  u64(what: string): number {
    const x = this.view.getBigUint64(this.take(8, what), true);
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${what} ${x} out of range`);
    return Number(x);
  }
  bytes(n: number, what: string): Uint8Array {
    const at = this.take(n, what);
    return this.source.subarray(at, at + n);
  }
}

function corrupt(message: string): FastPatchError {
  return new FastPatchError('CORRUPT_PAYLOAD', message);
}

/**
 * Parses manifest bytes (already length-checked against LIMITS by the header) into a Manifest whose
 * hashes are views into `bytes`. Structural checks only; call validateManifest before acting on it.
 * Throws FastPatchError('CORRUPT_PAYLOAD').
 */
export function decodeManifest(bytes: Uint8Array): Manifest {
  const r = new Reader(bytes);
  const blockSize = r.u32('block size');
  const flags = r.u32('flags');
  if ((flags & ~FLAG_HAS_SOURCE) !== 0) throw corrupt(`unknown manifest flags 0x${flags.toString(16)}`);
  const targetSize = r.u64('target size');
  const targetHash = r.bytes(DIGEST_SIZE, 'target hash');
  const sourceSize = r.u64('source size');
  const sourceHash = r.bytes(DIGEST_SIZE, 'source hash');
  if ((flags & FLAG_HAS_SOURCE) !== 0 !== sourceSize > 0) throw corrupt('source flag and source size disagree');
  const versionLength = r.u8('version length');
  if (versionLength === 0 || versionLength > LIMITS.MAX_VERSION_LENGTH) throw corrupt(`version length ${versionLength} out of range`);
  const version = new TextDecoder('utf-8', { fatal: false }).decode(r.bytes(versionLength, 'version'));
  if (!VERSION_RE.test(version)) throw corrupt('release version has characters outside [0-9A-Za-z.+~_-]');
  let sourceVersion = '';
  if (sourceSize > 0) {
    const length = r.u8('source version length');
    if (length > LIMITS.MAX_VERSION_LENGTH) throw corrupt(`source version length ${length} out of range`);
    sourceVersion = new TextDecoder('utf-8', { fatal: false }).decode(r.bytes(length, 'source version'));
    if (length > 0 && !VERSION_RE.test(sourceVersion)) throw corrupt('source version has characters outside [0-9A-Za-z.+~_-]');
  }
  const opCount = r.u32('operation count');
  // Each operation takes at least OP_FIXED_SIZE + a digest + one extent, so a count the remaining
  // bytes cannot hold is refused before any array is sized by it.
  if (opCount > LIMITS.MAX_OPS || opCount * (OP_FIXED_SIZE + DIGEST_SIZE + EXTENT_SIZE) > r.remaining) {
    throw corrupt(`operation count ${opCount} does not fit the manifest`);
  }
  const operations: Operation[] = [];
  let extents = 0;
  for (let i = 0; i < opCount; i++) {
    const op = readOperation(r, i);
    extents += op.srcExtents.length + op.dstExtents.length + (op.targetDictionary?.length ?? 0);
    if (extents > LIMITS.MAX_EXTENTS) throw corrupt(`more than ${LIMITS.MAX_EXTENTS} extents in all`);
    operations.push(op);
  }
  if (r.remaining !== 0) throw corrupt(`${r.remaining} unexpected bytes after the last operation`);
  return { blockSize, targetSize, targetHash, sourceSize, sourceHash, version, sourceVersion, operations };
}

function readOperation(r: Reader, index: number): Operation {
  const what = `operation ${index}`;
  const type = r.u8(`${what} type`);
  const flags = r.u8(`${what} flags`);
  const srcCount = r.u16(`${what} source extent count`);
  const dstCount = r.u16(`${what} destination extent count`);
  // The target dictionary's extent count: only a SOURCE_ZSTD may have one (validateManifest).
  const dictCount = r.u16(`${what} target dictionary extent count`);
  if (flags !== 0) throw corrupt(`${what}: reserved fields are not zero`);
  const dataOffset = r.u64(`${what} data offset`);
  const dataLength = r.u32(`${what} data length`);
  const dataHash = dataLength > 0 ? r.bytes(DIGEST_SIZE, `${what} data hash`) : undefined;
  const outputHash = r.bytes(DIGEST_SIZE, `${what} output hash`);
  const sourceHash = srcCount > 0 ? r.bytes(DIGEST_SIZE, `${what} source hash`) : undefined;
  const targetDictionaryHash = dictCount > 0 ? r.bytes(DIGEST_SIZE, `${what} target dictionary hash`) : undefined;
  if ((srcCount + dstCount + dictCount) * EXTENT_SIZE > r.remaining) throw corrupt(`${what}: extent count does not fit the manifest`);
  const readExtents = (n: number, kind: string): Extent[] => {
    const list: Extent[] = [];
    for (let i = 0; i < n; i++) {
      list.push({ startBlock: r.u64(`${what} ${kind} extent start`), blockCount: r.u32(`${what} ${kind} extent length`) });
    }
    return list;
  };
  const srcExtents = readExtents(srcCount, 'source');
  const dstExtents = readExtents(dstCount, 'destination');
  const targetDictionary = readExtents(dictCount, 'target dictionary');
  return { type, dataOffset, dataLength, dataHash, outputHash, sourceHash, srcExtents, dstExtents, ...(dictCount > 0 ? { targetDictionary, targetDictionaryHash } : {}) };
}

/** Bytes of the whole blocks `extents` name: what a buffer that reads them holds (readExtents). */
export function blockBytes(extents: readonly Extent[]): number {
  return extents.reduce((n, e) => n + e.blockCount * BLOCK_SIZE, 0);
}

/** Number of bytes `extents` cover in an image of `imageSize` bytes (the last block may be short). */
export function extentBytes(extents: readonly Extent[], imageSize: number): number {
  let total = 0;
  for (const e of extents) {
    const start = e.startBlock * BLOCK_SIZE;
    total += Math.min(start + e.blockCount * BLOCK_SIZE, imageSize) - start;
  }
  return total;
}

/** Operations of one type: how many, the image bytes they write and the data bytes they carry. */
export interface OperationStats {
  count: number;
  outputBytes: number;
  dataBytes: number;
}

/** Per-type totals of a manifest's operations, keyed by type name (for reports). */
export function operationStats(m: Manifest): Record<string, OperationStats> {
  const byType: Record<string, OperationStats> = {};
  for (const op of m.operations) {
    const s = (byType[OP_NAMES[op.type] ?? `type ${op.type}`] ??= { count: 0, outputBytes: 0, dataBytes: 0 });
    s.count++;
    s.outputBytes += extentBytes(op.dstExtents, m.targetSize);
    s.dataBytes += op.dataLength;
  }
  return byType;
}

/**
 * Semantic checks that must hold before any operation runs: supported types, extents inside the
 * target and covering it block after block in operation order, data blobs laid out back to back
 * in operation order and summing to the header's data size, per-operation limits; only the operation
 * types of the header's format version. Throws FastPatchError('CORRUPT_PAYLOAD') naming the first
 * offending operation.
 */
export function validateManifest(m: Manifest, dataSize: number, formatVersion: number = FORMAT_VERSION): void {
  const supported = OPS_OF_VERSION.get(formatVersion);
  if (!supported) throw corrupt(`format version ${formatVersion} is not supported`);
  if (m.blockSize !== BLOCK_SIZE) throw corrupt(`block size ${m.blockSize} is not supported (v1 uses ${BLOCK_SIZE})`);
  if (m.targetSize > LIMITS.MAX_IMAGE_SIZE) throw corrupt(`target size ${m.targetSize} out of range`);
  if (m.sourceSize > LIMITS.MAX_IMAGE_SIZE) throw corrupt(`source size ${m.sourceSize} out of range`);
  const targetBlocks = Math.ceil(m.targetSize / BLOCK_SIZE);
  const sourceBlocks = Math.ceil(m.sourceSize / BLOCK_SIZE);
  // A full payload writes blocks 0, 1, 2, ... in operation order: no gap can leave old bytes in the
  // new image, no block is written twice, and the applier hashes the image as it writes it.
  let cursor = 0;
  let nextData = 0;
  m.operations.forEach((op, i) => {
    const what = `operation ${i} (${OP_NAMES[op.type] ?? `type ${op.type}`})`;
    if (!supported.has(op.type)) throw corrupt(`${what}: unsupported operation type in a format version ${formatVersion} payload`);
    if (SOURCE_OPS.has(op.type)) {
      if (m.sourceSize === 0) throw corrupt(`${what}: reads a source image, but the payload names none`);
      let blocks = 0;
      for (const e of op.srcExtents) {
        if (e.blockCount === 0 || e.startBlock + e.blockCount > sourceBlocks) {
          throw corrupt(`${what}: source extent ${e.startBlock}+${e.blockCount} lies outside the ${sourceBlocks}-block source`);
        }
        blocks += e.blockCount;
      }
      if (blocks * BLOCK_SIZE > LIMITS.MAX_OP_SOURCE) throw corrupt(`${what}: reads ${blocks * BLOCK_SIZE} source bytes, more than ${LIMITS.MAX_OP_SOURCE}`);
      if (op.type === OpType.SOURCE_COPY) {
        const dst = op.dstExtents.reduce((n, e) => n + e.blockCount, 0);
        if (blocks === 0 || blocks !== dst) throw corrupt(`${what}: copies ${blocks} source blocks into ${dst} target blocks`);
        if (op.dataLength !== 0) throw corrupt(`${what}: carries data`);
      } else if (op.dataLength === 0) {
        throw corrupt(`${what}: empty diff data`);
      } else if (op.type === OpType.SOURCE_ZSTD && blocks === 0 && (op.targetDictionary?.length ?? 0) === 0) {
        throw corrupt(`${what}: names no source or target blocks for its dictionary`);
      }
    } else if (op.srcExtents.length > 0) {
      throw corrupt(`${what}: has source extents`);
    }
    if (op.dstExtents.length === 0) throw corrupt(`${what}: no destination extents`);
    const dictionary = op.targetDictionary ?? [];
    if (dictionary.length > 0) {
      // Blocks that earlier operations wrote: every block before this operation's first one.
      if (op.type !== OpType.SOURCE_ZSTD) throw corrupt(`${what}: only SOURCE_ZSTD may have a target dictionary`);
      let dictionaryBlocks = 0;
      for (const e of dictionary) {
        if (e.blockCount === 0 || e.startBlock + e.blockCount > cursor) {
          throw corrupt(`${what}: target dictionary extent ${e.startBlock}+${e.blockCount} is not before block ${cursor}`);
        }
        dictionaryBlocks += e.blockCount;
      }
      if (dictionaryBlocks > LIMITS.MAX_TARGET_DICTIONARY_BLOCKS) throw corrupt(`${what}: target dictionary of ${dictionaryBlocks} blocks, more than ${LIMITS.MAX_TARGET_DICTIONARY_BLOCKS}`);
    }
    for (const e of op.dstExtents) {
      if (e.blockCount === 0 || e.startBlock + e.blockCount > targetBlocks) {
        throw corrupt(`${what}: extent ${e.startBlock}+${e.blockCount} lies outside the ${targetBlocks}-block target`);
      }
      if (e.startBlock !== cursor) throw corrupt(`${what}: writes block ${e.startBlock} where block ${cursor} comes next`);
      cursor += e.blockCount;
    }
    if (op.dataOffset !== nextData) throw corrupt(`${what}: data offset ${op.dataOffset}, expected ${nextData}`);
    nextData += op.dataLength;
    if (op.dataLength > LIMITS.MAX_BLOB_SIZE) throw corrupt(`${what}: data length ${op.dataLength} exceeds ${LIMITS.MAX_BLOB_SIZE}`);
    const output = extentBytes(op.dstExtents, m.targetSize);
    if (op.type !== OpType.ZERO && output > LIMITS.MAX_OP_OUTPUT) {
      throw corrupt(`${what}: writes ${output} bytes, more than ${LIMITS.MAX_OP_OUTPUT}`);
    }
    if (op.type === OpType.ZERO && op.dataLength !== 0) throw corrupt(`${what}: carries data`);
    if (op.type === OpType.REPLACE && op.dataLength !== output) throw corrupt(`${what}: data length ${op.dataLength} != output ${output}`);
    if ((op.type === OpType.REPLACE_DEFLATE || op.type === OpType.REPLACE_ZSTD) && op.dataLength === 0) throw corrupt(`${what}: empty compressed data`);
  });
  if (nextData !== dataSize) throw corrupt(`operations use ${nextData} data bytes, header announces ${dataSize}`);
  if (cursor !== targetBlocks) throw corrupt(`operations cover ${cursor} of the ${targetBlocks} target blocks`);
}
