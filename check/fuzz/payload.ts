/**
 * Payload building blocks for the fuzz harness: a "loose" manifest and header encoder that writes
 * whatever it is given (u64 fields as bigints, counts declared apart from the lists they count), so
 * structural mutations can produce values the library's own writer refuses; then signing with the
 * library's signer, so the mutated structure reaches the parser, the validator and the applier.
 */
import { createHash } from 'node:crypto';
import { BLOCK_SIZE, DIGEST_SIZE, HEADER_SIZE, MAGIC, FORMAT_VERSION } from '../../src/format/constants.js';
import { decodeHeader } from '../../src/format/header.js';
import { decodeManifest, validateManifest, type Manifest } from '../../src/format/manifest.js';
import { encodeSignatures, signaturesSize } from '../../src/format/signatures.js';
import type { PrivateKey } from '../../src/sign/keys.js';
import { signPayload } from '../../src/sign/signer.js';

export interface LooseExtent {
  start: bigint;
  /** Written as u32 (wrapped). */
  count: number;
}

export interface LooseOp {
  type: number;
  flags: number;
  /** Declared target dictionary extent count (offset 6; format 2, SOURCE_ZSTD); default tdict.length. */
  reserved?: number;
  /** Declared counts; default the list lengths. */
  srcCount?: number;
  dstCount?: number;
  dataOffset: bigint;
  dataLength: number;
  dataHash: Uint8Array;
  outputHash: Uint8Array;
  sourceHash: Uint8Array;
  src: LooseExtent[];
  dst: LooseExtent[];
  /** Target dictionary extents and their hash, written when the declared count is not 0. */
  tdict: LooseExtent[];
  tdictHash: Uint8Array;
  /** The data blob put in the data section for this operation (may differ from dataLength). */
  blob: Uint8Array;
}

export interface LooseManifest {
  blockSize: number;
  flags: number;
  targetSize: bigint;
  targetHash: Uint8Array;
  sourceSize: bigint;
  sourceHash: Uint8Array;
  version: Uint8Array;
  /** Declared version length; default version.length. */
  versionLength?: number;
  /** A delta's source release; written (length byte, then bytes) when the source size is non-zero. */
  sourceVersion: Uint8Array;
  /** Declared source version length; default sourceVersion.length. */
  sourceVersionLength?: number;
  /** Declared operation count; default ops.length. */
  opCount?: number;
  ops: LooseOp[];
  /** Bytes appended after the last operation. */
  trailing?: Uint8Array;
}

export interface LooseHeader {
  magic?: Uint8Array;
  version?: number;
  manifestSize?: number;
  signaturesSize?: number;
  flags?: number;
  /** Default: the sum of the blobs. */
  dataSize?: bigint;
}

const u64 = (x: bigint) => BigInt.asUintN(64, x);

/** Writes a loose manifest byte by byte as docs/FORMAT.md lays it out; hashes are zero-padded or cut to 32 bytes. */
export function encodeLooseManifest(m: LooseManifest): Uint8Array {
  const parts: Uint8Array[] = [];
  const u8 = (x: number) => parts.push(Uint8Array.of(x & 0xff));
  const u16 = (x: number) => { const b = new Uint8Array(2); new DataView(b.buffer).setUint16(0, x & 0xffff, true); parts.push(b); };
  const u32 = (x: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, x >>> 0, true); parts.push(b); };
  const u64w = (x: bigint) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, u64(x), true); parts.push(b); };
  const digest = (d: Uint8Array) => { const b = new Uint8Array(DIGEST_SIZE); b.set(d.subarray(0, DIGEST_SIZE)); parts.push(b); };
  u32(m.blockSize);
  u32(m.flags);
  u64w(m.targetSize);
  digest(m.targetHash);
  u64w(m.sourceSize);
  digest(m.sourceHash);
  u8(m.versionLength ?? m.version.length);
  parts.push(m.version);
  if (m.sourceSize !== 0n) {
    u8(m.sourceVersionLength ?? m.sourceVersion.length);
    parts.push(m.sourceVersion);
  }
  u32(m.opCount ?? m.ops.length);
  for (const op of m.ops) {
    const srcCount = op.srcCount ?? op.src.length;
    u8(op.type);
    u8(op.flags);
    u16(srcCount);
    u16(op.dstCount ?? op.dst.length);
    const tdictCount = op.reserved ?? op.tdict.length;
    u16(tdictCount);
    u64w(op.dataOffset);
    u32(op.dataLength);
    if (op.dataLength >>> 0 > 0) digest(op.dataHash);
    digest(op.outputHash);
    if ((srcCount & 0xffff) > 0) digest(op.sourceHash);
    if ((tdictCount & 0xffff) > 0) digest(op.tdictHash);
    for (const e of [...op.src, ...op.dst, ...op.tdict]) {
      u64w(e.start);
      u32(e.count);
    }
  }
  if (m.trailing) parts.push(m.trailing);
  return Buffer.concat(parts);
}

export function encodeLooseHeader(h: LooseHeader & { manifestSize: number; signaturesSize: number; dataSize: bigint }): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  const v = new DataView(out.buffer);
  out.set((h.magic ?? MAGIC).subarray(0, 8), 0);
  v.setUint32(8, (h.version ?? FORMAT_VERSION) >>> 0, true);
  v.setUint32(12, h.manifestSize >>> 0, true);
  v.setUint32(16, h.signaturesSize >>> 0, true);
  v.setUint32(20, (h.flags ?? 0) >>> 0, true);
  v.setBigUint64(24, u64(h.dataSize), true);
  return out;
}

export interface Assembled {
  bytes: Buffer;
  headerBytes: Uint8Array;
  manifestBytes: Uint8Array;
  /** Offset of the data section. */
  dataStart: number;
}

/** Header + manifest + signature block (signed by `keys`, or `signatures` as given) + the blobs. */
export function assembleLoose(m: LooseManifest, h: LooseHeader, keys: readonly PrivateKey[], rawSignatures?: Uint8Array): Assembled {
  const manifestBytes = encodeLooseManifest(m);
  const data = Buffer.concat(m.ops.map((o) => o.blob));
  const sigSize = rawSignatures?.length ?? signaturesSize(keys.length);
  const headerBytes = encodeLooseHeader({
    ...h,
    manifestSize: h.manifestSize ?? manifestBytes.length,
    signaturesSize: h.signaturesSize ?? sigSize,
    dataSize: h.dataSize ?? BigInt(data.length),
  });
  const signatures = rawSignatures ?? encodeSignatures(signPayload(headerBytes, manifestBytes, keys));
  return {
    bytes: Buffer.concat([headerBytes, manifestBytes, signatures, data]),
    headerBytes,
    manifestBytes,
    dataStart: HEADER_SIZE + manifestBytes.length + signatures.length,
  };
}

/** A decoded manifest and the payload's data section, as loose structures to mutate. */
export function looseFromPayload(payload: Uint8Array): LooseManifest {
  const header = decodeHeader(payload);
  if ('need' in header) throw new Error('payload shorter than its header');
  const manifestBytes = payload.subarray(HEADER_SIZE, HEADER_SIZE + header.manifestSize);
  const m = decodeManifest(manifestBytes);
  const dataStart = HEADER_SIZE + header.manifestSize + header.signaturesSize;
  return {
    blockSize: m.blockSize,
    flags: m.sourceSize > 0 ? 1 : 0,
    targetSize: BigInt(m.targetSize),
    targetHash: new Uint8Array(m.targetHash),
    sourceSize: BigInt(m.sourceSize),
    sourceHash: new Uint8Array(m.sourceHash),
    version: new TextEncoder().encode(m.version),
    sourceVersion: new TextEncoder().encode(m.sourceVersion),
    ops: m.operations.map((o) => ({
      type: o.type,
      flags: 0,
      dataOffset: BigInt(o.dataOffset),
      dataLength: o.dataLength,
      dataHash: (o.dataHash ? new Uint8Array(o.dataHash) : undefined) ?? new Uint8Array(DIGEST_SIZE),
      outputHash: new Uint8Array(o.outputHash),
      sourceHash: (o.sourceHash ? new Uint8Array(o.sourceHash) : undefined) ?? new Uint8Array(DIGEST_SIZE),
      src: o.srcExtents.map((e) => ({ start: BigInt(e.startBlock), count: e.blockCount })),
      dst: o.dstExtents.map((e) => ({ start: BigInt(e.startBlock), count: e.blockCount })),
      tdict: (o.targetDictionary ?? []).map((e) => ({ start: BigInt(e.startBlock), count: e.blockCount })),
      tdictHash: (o.targetDictionaryHash ? new Uint8Array(o.targetDictionaryHash) : undefined) ?? new Uint8Array(DIGEST_SIZE),
      blob: new Uint8Array(payload.subarray(dataStart + o.dataOffset, dataStart + o.dataOffset + o.dataLength)),
    })),
  };
}

export function cloneLoose(m: LooseManifest): LooseManifest {
  return {
    ...m,
    targetHash: new Uint8Array(m.targetHash),
    sourceHash: new Uint8Array(m.sourceHash),
    version: new Uint8Array(m.version),
    sourceVersion: new Uint8Array(m.sourceVersion),
    ops: m.ops.map((o) => ({
      ...o,
      dataHash: new Uint8Array(o.dataHash),
      outputHash: new Uint8Array(o.outputHash),
      sourceHash: new Uint8Array(o.sourceHash),
      src: o.src.map((e) => ({ ...e })),
      dst: o.dst.map((e) => ({ ...e })),
      tdict: o.tdict.map((e) => ({ ...e })),
      tdictHash: new Uint8Array(o.tdictHash),
      blob: o.blob, // blobs are replaced, never changed in place
    })),
  };
}

/** Block-list hash per docs/FORMAT.md with node:crypto (an oracle independent of the WASM core). */
export function blockListHashRef(data: Uint8Array): Uint8Array {
  const list = createHash('sha256');
  for (let pos = 0; pos < data.length; pos += BLOCK_SIZE) list.update(createHash('sha256').update(data.subarray(pos, pos + BLOCK_SIZE)).digest());
  return new Uint8Array(list.digest());
}

/** True when the library's own parser and validator accept the head (so the applier may write). */
export function headValidates(a: Assembled): { ok: true; manifest: Manifest } | { ok: false } {
  try {
    const h = decodeHeader(a.headerBytes);
    if ('need' in h) return { ok: false };
    if (h.manifestSize !== a.manifestBytes.length) return { ok: false };
    const m = decodeManifest(a.manifestBytes);
    validateManifest(m, h.dataSize);
    return { ok: true, manifest: m };
  } catch {
    return { ok: false };
  }
}
