/**
 * The delta module (build/delta-<build>.wasm): the source block index, the source fingerprint
 * index, the diff encoder and the SOURCE_DIFF apply kernel. Its memory grows with the images, so
 * unlike WasmCore an instance is not cached per thread: each job creates its own (the module is
 * compiled once per thread) and drops it when done, which returns the memory.
 *
 * Memory is laid out here, not in AssemblyScript: alloc() hands out regions above the module's
 * heap start, growing memory as needed. Views of memory die when it grows, so every method takes a
 * fresh one (#bytes) after its allocations.
 */
import { compileCore, instantiateCore, type CoreBuild } from './load.js';
import type { WasmMemory } from './webassembly.js';

const DELTA_ABI_VERSION = 1;
/** Shortest exact match the diff encoder switches to (see assembly/delta/encode.ts). */
export const DEFAULT_MIN_MATCH = 8;
const PAGE = 65536;

interface DeltaExports {
  memory: WasmMemory & { grow(pages: number): number };
  deltaAbiVersion(): number;
  deltaHeapStart(): number;
  initDelta(): void;
  anchorIndexAdd(data: number, len: number, base: number, keys: number, positions: number, mask: number, count: number, limit: number): number;
  anchorIndexHits(data: number, len: number, keys: number, positions: number, mask: number, out: number, maxHits: number): number;
  blockIndexAdd(digests: number, first: number, count: number, skip: number, table: number, mask: number): void;
  blockIndexMatch(sourceDigests: number, sourceBlocks: number, table: number, mask: number, targetDigests: number, first: number, count: number, zero: number, out: number, previous: number): number;
  diffEncode(s: number, sLen: number, t: number, tLen: number, table: number, bits: number, ctrl: number, maxEntries: number, diff: number, extra: number, result: number, minMatch: number): number;
  patchApply(src: number, srcLen: number, ctrl: number, ctrlLen: number, diff: number, diffLen: number, extra: number, extraLen: number, out: number, outLen: number): number;
  x86Encode(ptr: number, len: number): void;
  x86Decode(ptr: number, len: number): void;
}

/** Messages for patchApply's negative codes (assembly/delta/patch.ts). */
export const PATCH_ERRORS: Record<number, string> = {
  [-1]: 'control stream is malformed',
  [-2]: 'an entry reads outside the operation\'s source',
  [-3]: 'entries produce more than the operation\'s output',
  [-4]: 'entries take more difference or extra bytes than the streams hold',
  [-5]: 'streams hold bytes that no entry uses',
};

/** What diffEncode found: control triples (diffLen, extraLen, srcPos) and the two byte streams. */
export interface DiffEncoding {
  entries: Uint32Array;
  diff: Uint8Array;
  extra: Uint8Array;
}

export class DeltaCore {
  readonly #x: DeltaExports;
  readonly #heapStart: number;
  #top: number;

  constructor(readonly build: CoreBuild = 'release') {
    const instance = instantiateCore(compileCore(build, 'delta'));
    const x = instance.exports as unknown as DeltaExports;
    if (typeof x.deltaAbiVersion !== 'function' || x.deltaAbiVersion() !== DELTA_ABI_VERSION) {
      throw new Error(`build/delta-${build}.wasm has another ABI than this code (${DELTA_ABI_VERSION}); run npm run build:wasm`);
    }
    x.initDelta();
    this.#x = x;
    this.#heapStart = x.deltaHeapStart();
    this.#top = this.#heapStart;
  }

  /**
   * Reserves `bytes` (16-byte aligned) and returns its offset. Regions live until reset(to).
   * This and the other pointer members below are for src/wasm/ only (indexes.ts), and the kernel
   * tests; they are left out of the published types.
   * @internal
   */
  alloc(bytes: number): number {
    const at = this.#top;
    const end = at + Math.ceil(bytes / 16) * 16;
    const have = this.#x.memory.buffer.byteLength;
    if (end > have) {
      if (end > 4 * 1024 ** 3 - PAGE) throw new RangeError(`delta module memory would exceed 4 GiB (${end} bytes)`);
      this.#x.memory.grow(Math.ceil((end - have) / PAGE));
    }
    this.#top = end;
    return at;
  }

  /**
   * Grows the module's memory, once, so that `bytes` more than it holds now fit without growing
   * again: what a caller that knows its largest need calls at setup, so that memory is sized then
   * and never mid-run. Grown pages cost no resident memory until they are written.
   */
  reserve(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`reserve: ${bytes} is not a byte count`);
    const end = this.#top + Math.ceil(bytes / 16) * 16;
    const have = this.#x.memory.buffer.byteLength;
    if (end <= have) return;
    if (end > 4 * 1024 ** 3 - PAGE) throw new RangeError(`delta module memory would exceed 4 GiB (${end} bytes)`);
    this.#x.memory.grow(Math.ceil((end - have) / PAGE));
  }

  /** What diffEncode needs of module memory for a source and a target of these lengths. */
  static diffEncodeBytes(sourceLength: number, targetLength: number): number {
    const bits = Math.max(10, Math.ceil(Math.log2(Math.max(1, sourceLength / 16))));
    const maxEntries = (targetLength >> 2) + 16;
    const regions = [sourceLength, targetLength, 16 << bits, maxEntries * 12, targetLength, targetLength, 8];
    return regions.reduce((n, r) => n + Math.ceil(r / 16) * 16, 0);
  }

  /** Current allocation mark, for reset(). @internal */
  mark(): number {
    return this.#top;
  }

  /** Frees every region allocated after `mark` (memory itself never shrinks). @internal */
  reset(mark: number = this.#heapStart): void {
    this.#top = mark;
  }

  /** A fresh view of all memory: valid until the next alloc. @internal */
  bytes(): Uint8Array {
    return new Uint8Array(this.#x.memory.buffer);
  }

  /** The module's raw exports. @internal */
  get exports(): DeltaExports {
    return this.#x;
  }

  /** Copies `data` into a new region and returns its offset. @internal */
  put(data: Uint8Array): number {
    const at = this.alloc(data.length);
    this.bytes().set(data, at);
    return at;
  }

  /**
   * Encodes `target` against `source` (docs/FORMAT.md, "SOURCE_DIFF"); undefined if the encoding
   * needs more control entries than a quarter of the target's bytes (then it is not worth it).
   */
  diffEncode(source: Uint8Array, target: Uint8Array, minMatch = DEFAULT_MIN_MATCH): DiffEncoding | undefined {
    const start = this.mark();
    try {
      const s = this.put(source);
      const t = this.put(target);
      // About one index entry per bucket: 16 << bits bytes hold 4 ways of (source / 4) entries.
      const bits = Math.max(10, Math.ceil(Math.log2(Math.max(1, source.length / 16))));
      const table = this.alloc(16 << bits);
      const maxEntries = (target.length >> 2) + 16;
      const ctrl = this.alloc(maxEntries * 12);
      const diff = this.alloc(target.length);
      const extra = this.alloc(target.length);
      const result = this.alloc(8);
      const n = this.#x.diffEncode(s, source.length, t, target.length, table, bits, ctrl, maxEntries, diff, extra, result, minMatch);
      if (n < 0) return undefined;
      const mem = this.bytes();
      const totals = new Uint32Array(mem.buffer, result, 2);
      return {
        entries: new Uint32Array(mem.buffer.slice(ctrl, ctrl + n * 12)),
        diff: mem.slice(diff, diff + totals[0]!),
        extra: mem.slice(extra, extra + totals[1]!),
      };
    } finally {
      this.reset(start);
    }
  }

  /** A copy of `data` with the x86 branch filter applied (encode) or undone (decode). */
  x86Filter(data: Uint8Array, direction: 'encode' | 'decode'): Uint8Array {
    const start = this.mark();
    try {
      const at = this.put(data);
      if (direction === 'encode') this.#x.x86Encode(at, data.length);
      else this.#x.x86Decode(at, data.length);
      return this.bytes().slice(at, at + data.length);
    } finally {
      this.reset(start);
    }
  }

  /**
   * patchApply with each stream written straight into module memory, one at a time, and its x86
   * filter undone there in place: `fill(i, into)` writes stream i (control, difference, extra;
   * `lengths[i]` bytes) into `into`, a view of module memory valid only during the call. Nothing
   * else is copied: the module holds source + streams + output once (at most 4 × 16 MiB for an
   * operation at every limit), and the caller's JS memory holds at most one decompressed stream.
   * Returns the output in `into` or a negative code (PATCH_ERRORS).
   */
  patchStreams(source: Uint8Array, lengths: readonly [number, number, number], x86: readonly [boolean, boolean, boolean], fill: (i: number, into: Uint8Array) => void, into: Uint8Array): Uint8Array | number {
    const start = this.mark();
    try {
      const s = this.put(source);
      const regions = lengths.map((n) => this.alloc(n));
      const out = this.alloc(into.length);
      for (let i = 0; i < 3; i++) {
        const at = regions[i]!;
        const n = lengths[i]!;
        fill(i, this.bytes().subarray(at, at + n));
        if (x86[i] && n > 0) this.#x.x86Decode(at, n);
      }
      const [c, d, e] = regions as [number, number, number];
      const code = this.#x.patchApply(s, source.length, c, lengths[0], d, lengths[1], e, lengths[2], out, into.length);
      if (code !== 0) return code;
      into.set(this.bytes().subarray(out, out + into.length));
      return into;
    } finally {
      this.reset(start);
    }
  }

  /** Bytes of memory the module holds now (it never shrinks: drop the instance to return it). */
  get memoryBytes(): number {
    return this.#x.memory.buffer.byteLength;
  }

  /**
   * Rebuilds `outLen` bytes from `source` and the decompressed streams. Returns the output (in
   * `into` when given, which must hold exactly outLen bytes), or a negative code (PATCH_ERRORS)
   * if the streams are inconsistent.
   */
  patchApply(source: Uint8Array, ctrl: Uint8Array, diff: Uint8Array, extra: Uint8Array, outLen: number, into?: Uint8Array): Uint8Array | number {
    if (into !== undefined && into.length !== outLen) throw new RangeError(`into holds ${into.length} bytes, not ${outLen}`);
    const start = this.mark();
    try {
      const s = this.put(source);
      const c = this.put(ctrl);
      const d = this.put(diff);
      const e = this.put(extra);
      const out = this.alloc(outLen);
      const code = this.#x.patchApply(s, source.length, c, ctrl.length, d, diff.length, e, extra.length, out, outLen);
      if (code !== 0) return code;
      if (!into) return this.bytes().slice(out, out + outLen);
      into.set(this.bytes().subarray(out, out + outLen));
      return into;
    } finally {
      this.reset(start);
    }
  }
}
