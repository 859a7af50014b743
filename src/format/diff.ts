/**
 * The data blob of a SOURCE_DIFF operation (docs/FORMAT.md, "SOURCE_DIFF"): a 28-byte header, then
 * the control, difference and extra streams, each stored or brotli-compressed. The generator
 * builds it and the applier takes it apart; both go through this file.
 */
import { FastPatchError } from '../errors.js';
import { LIMITS } from './constants.js';

export const DIFF_BLOB_VERSION = 1;
export const DIFF_HEADER_SIZE = 28;
/** Low 4 bits of a stream's codec byte: how it is compressed. */
export const Codec = { STORED: 0, BROTLI: 1 } as const;
/** High 4 bits of a stream's codec byte: a reversible filter undone after decompression. */
export const Filter = { NONE: 0, X86: 1 } as const;
const STREAM_NAMES = ['control', 'difference', 'extra'] as const;

/** One stream of a diff blob: its codec and filter, its length once decoded and its bytes as stored. */
export interface DiffStream {
  codec: number;
  filter: number;
  rawLength: number;
  data: Uint8Array;
}

/** Serializes the three streams (control, difference, extra) behind a header. */
export function encodeDiffBlob(streams: readonly [DiffStream, DiffStream, DiffStream]): Uint8Array {
  const size = DIFF_HEADER_SIZE + streams.reduce((n, s) => n + s.data.length, 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint8(0, DIFF_BLOB_VERSION);
  let at = DIFF_HEADER_SIZE;
  streams.forEach((s, i) => {
    v.setUint8(1 + i, (s.filter << 4) | s.codec);
    v.setUint32(4 + 4 * i, s.rawLength, true);
    v.setUint32(16 + 4 * i, s.data.length, true);
    out.set(s.data, at);
    at += s.data.length;
  });
  return out;
}

/**
 * Splits a diff blob into its streams, checking every field against the blob's length and the
 * operation's output length before anything is decoded. Throws FastPatchError('CORRUPT_PAYLOAD').
 */
export function decodeDiffBlob(blob: Uint8Array, outputLength: number, what: string): [DiffStream, DiffStream, DiffStream] {
  const corrupt = (m: string) => new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${m}`);
  if (blob.length < DIFF_HEADER_SIZE) throw corrupt(`diff data of ${blob.length} bytes is shorter than its header`);
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (v.getUint8(0) !== DIFF_BLOB_VERSION) throw corrupt(`diff data version ${v.getUint8(0)} is not supported`);
  let at = DIFF_HEADER_SIZE;
  const streams = STREAM_NAMES.map((name, i): DiffStream => {
    const codec = v.getUint8(1 + i) & 0x0f;
    const filter = v.getUint8(1 + i) >> 4;
    const rawLength = v.getUint32(4 + 4 * i, true);
    const length = v.getUint32(16 + 4 * i, true);
    if (codec !== Codec.STORED && codec !== Codec.BROTLI) throw corrupt(`${name} stream has unknown codec ${codec}`);
    if (filter !== Filter.NONE && filter !== Filter.X86) throw corrupt(`${name} stream has unknown filter ${filter}`);
    if (codec === Codec.STORED && length !== rawLength) throw corrupt(`stored ${name} stream of ${length} bytes announces ${rawLength}`);
    if (rawLength > LIMITS.MAX_OP_OUTPUT) throw corrupt(`${name} stream of ${rawLength} bytes exceeds ${LIMITS.MAX_OP_OUTPUT}`);
    if (length > blob.length - at) throw corrupt(`${name} stream runs past the end of the data`);
    const data = blob.subarray(at, at + length);
    at += length;
    return { codec, filter, rawLength, data };
  }) as [DiffStream, DiffStream, DiffStream];
  if (at !== blob.length) throw corrupt(`${blob.length - at} bytes after the last stream`);
  if (streams[1].rawLength + streams[2].rawLength !== outputLength) {
    throw corrupt(`difference and extra streams hold ${streams[1].rawLength + streams[2].rawLength} bytes for ${outputLength} of output`);
  }
  return streams;
}

/**
 * The control stream: per entry, LEB128 varints of the difference length, the extra length and the
 * zigzag-coded distance from where the previous entry's source bytes ended to where this one's
 * start. `entries` are (diffLen, extraLen, srcPos) triples; `remap` moves srcPos if given.
 */
export function encodeControl(entries: Uint32Array, remap: (srcPos: number) => number = (p) => p): Uint8Array {
  const out: number[] = [];
  const varint = (x: number) => {
    while (x >= 0x80) {
      out.push((x & 0x7f) | 0x80);
      x = Math.floor(x / 128);
    }
    out.push(x);
  };
  let expected = 0;
  for (let i = 0; i < entries.length; i += 3) {
    const diffLen = entries[i]!;
    const at = diffLen > 0 ? remap(entries[i + 2]!) : expected;
    varint(diffLen);
    varint(entries[i + 1]!);
    const delta = at - expected;
    varint(delta >= 0 ? delta * 2 : -delta * 2 - 1);
    expected = at + diffLen;
  }
  return Uint8Array.from(out);
}
