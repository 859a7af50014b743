/**
 * Mutators. Raw mutations change the bytes of a signed payload (so they must end at the signature
 * check, or at a data hash); structural mutations change a loose manifest, its blobs or the header
 * before the payload is signed, so the parser, validator, decoders and patch kernel see them.
 */
import { BLOCK_SIZE, DIGEST_SIZE, OpType } from '../../src/format/constants.js';
import { blockListHashRef, cloneLoose, type LooseHeader, type LooseManifest, type LooseOp } from './payload.js';
import type { Rng } from './rng.js';

// ---------------------------------------------------------------------------------------------
// Raw

/** Mutates a copy of `base`; `headEnd` is where the data section starts (mutations favour the head). */
export function mutateRaw(rng: Rng, base: Uint8Array, headEnd: number): { bytes: Buffer; what: string } {
  let bytes = Buffer.from(base);
  const steps: string[] = [];
  const n = rng.chance(0.7) ? 1 : rng.between(2, 4);
  const pos = (len: number) => (rng.chance(0.65) ? rng.below(Math.min(headEnd, len)) : rng.below(len));
  for (let i = 0; i < n; i++) {
    if (bytes.length === 0) bytes = Buffer.from(rng.bytes(rng.between(1, 64)));
    const kind = rng.below(10);
    if (kind <= 2) {
      const at = pos(bytes.length);
      const bit = rng.below(8);
      bytes[at] = bytes[at]! ^ (1 << bit);
      steps.push(`flip ${at}.${bit}`);
    } else if (kind === 3) {
      const at = pos(bytes.length);
      bytes[at] = rng.pick([0, 0xff, 0x80, 0x7f, rng.below(256)]);
      steps.push(`set ${at}`);
    } else if (kind === 4) {
      // A length-like field: header fields at 12/16/24, or anywhere in the manifest.
      const at = rng.chance(0.5) ? rng.pick([8, 12, 16, 20, 24, 28]) : pos(bytes.length);
      const width = rng.pick([2, 4, 8]);
      const v = rng.pick([0n, 1n, 0x7fffffffn, 0xffffffffn, 1n << 32n, 1n << 53n, (1n << 64n) - 1n, BigInt(bytes.length)]);
      for (let b = 0; b < width && at + b < bytes.length; b++) bytes[at + b] = Number((v >> BigInt(8 * b)) & 0xffn);
      steps.push(`u${width * 8}@${at}=${v}`);
    } else if (kind === 5) {
      const cut = rng.chance(0.5) ? rng.pick([0, 1, 8, 31, 32, 33, headEnd - 1, headEnd, headEnd + 1]) : rng.below(bytes.length);
      bytes = bytes.subarray(0, Math.max(0, Math.min(cut, bytes.length - 1)));
      steps.push(`truncate ${bytes.length}`);
    } else if (kind === 6) {
      const extra = rng.chance(0.5) ? new Uint8Array(rng.between(1, 5000)) : rng.bytes(rng.between(1, 5000));
      bytes = Buffer.concat([bytes, extra]);
      steps.push(`extend ${extra.length}`);
    } else if (kind === 7) {
      const at = pos(bytes.length);
      const len = rng.between(1, 300);
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + len)]);
      steps.push(`delete ${at}+${len}`);
    } else if (kind === 8) {
      const at = pos(bytes.length);
      const ins = rng.chance(0.5) ? bytes.subarray(rng.below(bytes.length), rng.below(bytes.length) + rng.between(1, 300)) : rng.bytes(rng.between(1, 300));
      bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(ins), bytes.subarray(at)]);
      steps.push(`insert ${at}+${ins.length}`);
    } else {
      const a = pos(bytes.length), b = rng.below(bytes.length), len = Math.min(rng.between(1, 200), bytes.length - Math.max(a, b));
      if (len > 0) {
        const ta = Buffer.from(bytes.subarray(a, a + len));
        bytes.copy(bytes, a, b, b + len);
        ta.copy(bytes, b);
      }
      steps.push(`swap ${a}<->${b}+${len}`);
    }
  }
  return { bytes, what: steps.join(', ') };
}

// ---------------------------------------------------------------------------------------------
// Structural

const U64_SPECIAL = [0n, 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
const U32_SPECIAL = [0, 1, 2, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1];

export interface StructMutation {
  m: LooseManifest;
  h: LooseHeader;
  /** Re-lay the data offsets back to back and the header's data size from the blobs. */
  relayout: boolean;
  /** Sign with the untrusted key. */
  untrusted: boolean;
  /** Use this signature block instead of a signature. */
  rawSignatures?: Uint8Array;
  what: string[];
}

function pickOp(rng: Rng, m: LooseManifest, filter?: (o: LooseOp) => boolean): LooseOp | undefined {
  const ops = filter ? m.ops.filter(filter) : m.ops;
  return ops.length > 0 ? rng.pick(ops) : undefined;
}

function flipHash(rng: Rng, h: Uint8Array): Uint8Array {
  const out = new Uint8Array(h);
  out[rng.below(DIGEST_SIZE)]! ^= 1 << rng.below(8);
  return out;
}

function smallOrSpecialU64(rng: Rng, near: number): bigint {
  return rng.chance(0.5) ? rng.pick(U64_SPECIAL) : BigInt(Math.max(0, near + rng.between(-2, 2)));
}

/** Sets the blob of `op` and its data length and hash to match (the blob passes its hash check). */
function setBlob(op: LooseOp, blob: Uint8Array): void {
  op.blob = blob;
  op.dataLength = blob.length;
  op.dataHash = blob.length > 0 ? blockListHashRef(blob) : new Uint8Array(DIGEST_SIZE);
}

/** LEB128 of an unsigned bigint (up to 10 bytes for 64 bits, longer if asked). */
function varint(x: bigint, out: number[]): void {
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

/** A diff blob with a mutated header field, control stream or streams (data hash fixed so it reaches the kernel). */
function mutateDiffBlob(rng: Rng, op: LooseOp, outputLength: number, what: string[]): void {
  const blob = Buffer.from(op.blob);
  if (blob.length < 28) return;
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const lengths = [0, 1, 2].map((i) => v.getUint32(16 + 4 * i, true));
  const kind = rng.below(6);
  if (kind === 0) {
    const at = rng.pick([0, 1, 2, 3]);
    blob[at] = rng.pick([0, 2, 0x11, 0x21, 0x02, 0xff, rng.below(256)]);
    what.push(`diff header byte ${at}=${blob[at]}`);
    setBlob(op, blob);
  } else if (kind === 1) {
    const at = 4 + 4 * rng.below(6);
    const x = rng.pick([...U32_SPECIAL, outputLength, outputLength + 1, outputLength - 1, v.getUint32(at, true) + 1, v.getUint32(at, true) - 1]);
    v.setUint32(at, x >>> 0, true);
    what.push(`diff header u32@${at}=${x >>> 0}`);
    setBlob(op, blob);
  } else if (kind <= 4) {
    // A stored control stream of hostile entries; difference and extra streams kept, so the
    // header checks pass and the WASM patch kernel reads the entries.
    const entries: number[] = [];
    const count = rng.between(1, 6);
    const special = () => rng.pick([0n, 1n, BigInt(outputLength), BigInt(outputLength + 1), 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(rng.below(outputLength + 2))]);
    for (let i = 0; i < count; i++) {
      varint(special(), entries);
      varint(special(), entries);
      const delta = special();
      // zigzag: odd values are negative distances
      varint(rng.chance(0.5) ? delta * 2n + 1n : delta * 2n, entries);
    }
    if (rng.chance(0.15)) entries.push(0x80); // truncated varint
    if (rng.chance(0.1)) for (let i = 0; i < 12; i++) entries.push(0xff); // over-long varint
    const control = Uint8Array.from(entries);
    const streams = blob.subarray(28 + lengths[0]!);
    const out = Buffer.alloc(28 + control.length + streams.length);
    blob.copy(out, 0, 0, 28);
    const ov = new DataView(out.buffer, out.byteOffset, out.byteLength);
    out[1] = 0; // stored, no filter
    ov.setUint32(4, control.length, true);
    ov.setUint32(16, control.length, true);
    out.set(control, 28);
    out.set(streams, 28 + control.length);
    what.push(`diff control ${count} hostile entries (${control.length} bytes)`);
    setBlob(op, out);
  } else {
    const cut = rng.below(blob.length);
    what.push(`diff blob cut to ${cut}`);
    setBlob(op, blob.subarray(0, cut));
  }
}

/**
 * One to three structural mutations of a copy of `base` (a full or delta manifest); `targetBlocks`
 * and `sourceBlocks` are the base image sizes in blocks.
 */
export function mutateStruct(rng: Rng, base: LooseManifest, targetBlocks: number, sourceBlocks: number): StructMutation {
  const m = cloneLoose(base);
  const h: LooseHeader = {};
  const s: StructMutation = { m, h, relayout: true, untrusted: false, what: [] };
  const what = s.what;
  const n = rng.chance(0.6) ? 1 : rng.between(2, 3);
  for (let i = 0; i < n; i++) {
    const kind = rng.below(25);
    const op = pickOp(rng, m);
    if (!op && kind >= 2) continue;
    switch (kind) {
      case 0: m.opCount = rng.pick([0, 1, m.ops.length - 1, m.ops.length + 1, 1 << 18, (1 << 18) + 1, 0xffffffff, rng.below(1000)]); what.push(`opCount=${m.opCount}`); break;
      case 1: {
        const f = rng.below(6);
        if (f === 0) { m.blockSize = rng.pick([0, 512, 4095, 8192, 0xffffffff]); what.push(`blockSize=${m.blockSize}`); }
        else if (f === 1) { m.flags = rng.pick([0, 1, 2, 0x80000000]); what.push(`flags=${m.flags}`); }
        else if (f === 2) { m.targetSize = smallOrSpecialU64(rng, Number(m.targetSize)); what.push(`targetSize=${m.targetSize}`); }
        else if (f === 3) { m.sourceSize = smallOrSpecialU64(rng, Number(m.sourceSize)); m.flags = m.sourceSize > 0n ? 1 : 0; what.push(`sourceSize=${m.sourceSize}`); }
        else if (f === 4) { m.targetHash = flipHash(rng, m.targetHash); what.push('targetHash flipped'); }
        else if (m.sourceSize !== 0n && rng.chance(0.5)) {
          m.sourceVersion = rng.pick([new Uint8Array(0), new TextEncoder().encode('1.0 rc'), Uint8Array.of(0xff, 0xfe), new Uint8Array(65).fill(0x31), new TextEncoder().encode('-x')]);
          if (rng.chance(0.3)) m.sourceVersionLength = rng.pick([0, 255, m.sourceVersion.length + 1]);
          what.push(`source version ${m.sourceVersion.length} bytes (declared ${m.sourceVersionLength ?? m.sourceVersion.length})`);
        } else {
          m.version = rng.pick([new Uint8Array(0), new TextEncoder().encode('1.0 rc'), Uint8Array.of(0xff, 0xfe), new Uint8Array(65).fill(0x31), new TextEncoder().encode('-x')]);
          if (rng.chance(0.3)) m.versionLength = rng.pick([0, 255, m.version.length + 1]);
          what.push(`version ${m.version.length} bytes (declared ${m.versionLength ?? m.version.length})`);
        }
        break;
      }
      case 2: case 3: {
        const list = op!.src.length > 0 && rng.chance(0.4) ? op!.src : op!.dst;
        const e = list.length > 0 ? rng.pick(list) : undefined;
        if (!e) break;
        e.start = rng.chance(0.6) ? rng.pick(U64_SPECIAL) : BigInt(rng.pick([targetBlocks - 1, targetBlocks, targetBlocks + 1, sourceBlocks, sourceBlocks + 1, rng.below(targetBlocks)]));
        what.push(`extent start=${e.start}`);
        break;
      }
      case 4: case 5: {
        const list = op!.src.length > 0 && rng.chance(0.4) ? op!.src : op!.dst;
        const e = list.length > 0 ? rng.pick(list) : undefined;
        if (!e) break;
        e.count = rng.pick([...U32_SPECIAL, targetBlocks, targetBlocks + 1, e.count + 1, e.count - 1]) >>> 0;
        what.push(`extent count=${e.count}`);
        break;
      }
      case 6: op!.srcCount = rng.pick([0, 1, 0xffff, op!.src.length + 1, Math.max(0, op!.src.length - 1)]); what.push(`srcCount=${op!.srcCount}`); break;
      case 7: op!.dstCount = rng.pick([0, 1, 0xffff, op!.dst.length + 1, Math.max(0, op!.dst.length - 1)]); what.push(`dstCount=${op!.dstCount}`); break;
      case 8: {
        // Overlapping destination extents: repeat one, or split one into two that overlap.
        const e = rng.pick(op!.dst);
        if (rng.chance(0.5)) op!.dst.push({ ...e });
        else if (e.count > 1) op!.dst.splice(op!.dst.indexOf(e) + 1, 0, { start: e.start + 1n, count: 1 });
        what.push('overlapping destination extents');
        break;
      }
      case 9: {
        // A duplicated operation (same extents, data and hashes) right after the original, or at the end.
        const at = rng.chance(0.5) ? m.ops.indexOf(op!) + 1 : m.ops.length;
        m.ops.splice(at, 0, { ...op!, src: op!.src.map((e) => ({ ...e })), dst: op!.dst.map((e) => ({ ...e })) });
        what.push(`duplicated op ${m.ops.indexOf(op!)} at ${at}`);
        break;
      }
      case 10: m.ops.splice(m.ops.indexOf(op!), 1); what.push('removed an op'); break;
      case 11: {
        const other = rng.pick(m.ops);
        const a = m.ops.indexOf(op!), b = m.ops.indexOf(other);
        m.ops[a] = other; m.ops[b] = op!;
        what.push(`swapped ops ${a},${b}`);
        break;
      }
      case 12: {
        // Source extents outside the source, or on an operation that reads no source.
        const e = { start: rng.chance(0.5) ? BigInt(sourceBlocks + rng.below(3)) : rng.pick(U64_SPECIAL), count: rng.pick([1, 2, 0xffffffff, sourceBlocks]) };
        if (op!.src.length > 0 && rng.chance(0.6)) op!.src[rng.below(op!.src.length)] = e;
        else op!.src.push(e);
        what.push(`source extent ${e.start}+${e.count}`);
        break;
      }
      case 13: op!.dataOffset = rng.pick([...U64_SPECIAL, op!.dataOffset + 1n, op!.dataOffset - 1n]); s.relayout = false; what.push(`dataOffset=${op!.dataOffset}`); break;
      case 14: {
        op!.dataLength = rng.pick([...U32_SPECIAL, op!.dataLength + 1, op!.dataLength - 1]) >>> 0;
        if (rng.chance(0.5) && op!.dataLength <= 4 * 1024 * 1024) op!.blob = padTo(op!.blob, op!.dataLength);
        what.push(`dataLength=${op!.dataLength}`);
        break;
      }
      case 15: {
        const f = rng.below(3);
        if (f === 0) op!.dataHash = flipHash(rng, op!.dataHash);
        else if (f === 1) op!.outputHash = flipHash(rng, op!.outputHash);
        else op!.sourceHash = flipHash(rng, op!.sourceHash);
        what.push(`${['data', 'output', 'source'][f]}Hash flipped`);
        break;
      }
      case 16: op!.type = rng.pick([5, 6, 127, 128, 255, 0, 1, 2, 3, 4]); what.push(`type=${op!.type}`); break;
      case 17: {
        if (rng.chance(0.5)) op!.flags = rng.between(1, 255); else op!.reserved = rng.between(1, 0xffff);
        what.push('reserved fields set');
        break;
      }
      case 24: {
        // A target dictionary (format 2): on any operation, reaching its own or later blocks,
        // empty, huge, past 2^32, or with a wrong hash.
        const first = Number(op!.dst[0]?.start ?? 0n);
        const f = rng.below(5);
        if (f === 0) op!.tdict = [{ start: BigInt(Math.max(0, first - 1)), count: rng.pick([1, 2, 4097]) }];
        else if (f === 1) op!.tdict = [{ start: BigInt(rng.below(targetBlocks + 2)), count: rng.pick([0, 1, 0xffffffff]) }];
        else if (f === 2) op!.tdict = [{ start: rng.pick([0xffffffffn, 1n << 52n, 0xffffffffffffffffn]), count: 1 }];
        else if (f === 3) op!.tdict = Array.from({ length: rng.between(2, 40) }, () => ({ start: BigInt(rng.below(Math.max(1, first))), count: 1 }));
        else op!.tdictHash = flipHash(rng, op!.tdictHash);
        if (rng.chance(0.2)) op!.reserved = rng.pick([0, op!.tdict.length + 1, 0xffff]);
        what.push(`target dictionary ${op!.tdict.map((e) => `${e.start}+${e.count}`).join(',')} (declared ${op!.reserved ?? op!.tdict.length})`);
        break;
      }
      case 18: {
        const f = rng.below(4);
        if (f === 0) h.dataSize = rng.pick([...U64_SPECIAL, BigInt(m.ops.reduce((a, o) => a + o.blob.length, 0) + rng.pick([-1, 1, 4096]))]);
        else if (f === 1) h.flags = rng.pick([1, 0x80000000]);
        else if (f === 2) h.version = rng.pick([0, 2, 0xffffffff]);
        else h.signaturesSize = rng.pick([0, 3, 4, 76, 77, 4 + 72 * 16, 4 + 72 * 17, 0xffffffff]);
        s.relayout = false;
        what.push(`header field ${['dataSize', 'flags', 'version', 'signaturesSize'][f]}=${h.dataSize ?? h.flags ?? h.version ?? h.signaturesSize}`);
        break;
      }
      case 19: {
        // Blob replaced by garbage whose hash matches: reaches inflate / the diff decoder.
        const len = rng.pick([0, 1, 2, 5, 100, op!.blob.length, op!.blob.length + 1]);
        const blob = rng.chance(0.5) ? rng.bytes(len) : padTo(op!.blob.subarray(0, Math.max(0, op!.blob.length - rng.between(1, 64))), len);
        setBlob(op!, blob);
        what.push(`blob replaced (${len} bytes, hash fixed)`);
        break;
      }
      case 20: {
        const diffOp = pickOp(rng, m, (o) => o.type === OpType.SOURCE_DIFF && o.blob.length >= 28);
        if (!diffOp) break;
        const outputLength = diffOp.dst.reduce((a, e) => a + e.count, 0) * BLOCK_SIZE;
        mutateDiffBlob(rng, diffOp, Math.min(outputLength, Number(m.targetSize)), what);
        break;
      }
      case 21: {
        // Split every destination extent into one-block extents: harmless when consistent.
        op!.dst = op!.dst.flatMap((e) => (e.count <= 64 ? Array.from({ length: e.count }, (_, k) => ({ start: e.start + BigInt(k), count: 1 })) : [e]));
        what.push('destination extents split');
        break;
      }
      case 22: m.trailing = rng.bytes(rng.between(1, 40)); what.push('trailing manifest bytes'); break;
      default: {
        const f = rng.below(3);
        if (f === 0) s.untrusted = true;
        else if (f === 1) s.rawSignatures = Uint8Array.of(1, 0, 0, 0, ...rng.bytes(72));
        else s.rawSignatures = Uint8Array.of(2, 0, 0, 0, ...rng.bytes(72)); // counts 2, holds 1
        what.push(['untrusted key', 'garbage signature', 'signature count 2 of 1'][f]!);
      }
    }
  }
  if (s.relayout) {
    let at = 0n;
    for (const o of m.ops) {
      o.dataOffset = at;
      at += BigInt(o.dataLength >>> 0);
    }
  }
  return s;
}

function padTo(blob: Uint8Array, len: number): Uint8Array {
  if (blob.length >= len) return blob.subarray(0, len);
  const out = new Uint8Array(len);
  out.set(blob);
  return out;
}
