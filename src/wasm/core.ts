/**
 * The one typed wrapper around the WebAssembly core: all pointer arithmetic over the module's
 * fixed regions happens here. Everything is synchronous (pure computation).
 *
 * Buffer ownership: the module owns its memory; `window()` lends a view of the input window.
 * Every other method copies its input into the window in chunks (or uses it in place
 * if it already lies in the window) and copies results into the caller's `out` buffer. Arguments
 * other than `window()` views must not be views of the module's memory.
 */
import { checkBytes, checkOffset } from './arguments.js';
import { compileCore, instantiateCore, type CoreBuild } from './load.js';
import { BLOCK_SIZE, DIGEST_SIZE, readLayout, type CoreExports, type CoreLayout } from './layout.js';
import { CoreSha256, type Sha256, type Sha256Slot } from './sha256.js';

export { BLOCK_SIZE, DIGEST_SIZE } from './layout.js';
export type { CoreBuild } from './load.js';
export type { Sha256 } from './sha256.js';

const cores = new Map<CoreBuild, WasmCore>();

// Enough work for V8 to tier the hot functions up from Liftoff to TurboFan before real use; the
// window's content does not matter.
const WARMUP_ROUNDS = 8;
const WARMUP_BYTES = 256 * 1024 + 4097;
// Input copied through the window moves in pieces of this size (a multiple of BLOCK_SIZE): small
// enough that the copy is still in the L2 cache when the kernel reads it (4% faster per-block
// hashing than 4 MiB pieces), large enough that per-call overhead does not matter.
const COPY_CHUNK = 256 * 1024;

/** Number of BLOCK_SIZE pieces in `length` bytes (the last may be short). */
function pieces(length: number): number {
  return Math.ceil(length / BLOCK_SIZE);
}

/** The WebAssembly core: per-block SHA-256, streaming SHA-256, zero-block flags, digest compare. */
export class WasmCore {
  /** Which compiled variant this instance runs. */
  readonly build: CoreBuild;
  /** Bytes of the input window (a multiple of BLOCK_SIZE). */
  readonly windowSize: number;

  readonly #core: CoreExports;
  readonly #layout: CoreLayout;
  /** View of all module memory; valid for the instance's life because memory never grows. */
  readonly #memory: Uint8Array;
  readonly #window: Uint8Array;
  readonly #initialState: Uint8Array;
  /** SHA-256 of one all-zero block (see #hashBlocksAt). */
  readonly #zeroDigest: Uint8Array;
  /** The hasher whose state is currently in the module's state slot (saves copying it back in). */
  #slotOwner: object | null = null;
  /** What CoreSha256 may do with the state slot; closures so the slot stays private to this class. */
  readonly #slot: Sha256Slot;

  private constructor(build: CoreBuild) {
    const instance = instantiateCore(compileCore(build));
    const { core, layout } = readLayout(instance.exports);
    this.build = build;
    this.#core = core;
    this.#layout = layout;
    this.windowSize = layout.windowSize;
    this.#memory = new Uint8Array(core.memory.buffer);
    this.#window = this.#memory.subarray(layout.windowOffset, layout.windowOffset + layout.windowSize);
    core.sha256Init(layout.stateOffset);
    this.#initialState = this.#memory.slice(layout.stateOffset, layout.stateOffset + layout.stateSize);
    this.#window.fill(0, 0, BLOCK_SIZE);
    core.hashBlocks(layout.windowOffset, BLOCK_SIZE, layout.digestOffset);
    this.#zeroDigest = this.#memory.slice(layout.digestOffset, layout.digestOffset + DIGEST_SIZE);
    this.#slot = {
      initialState: this.#initialState,
      update: (owner, state, data) => {
        this.#loadState(owner, state);
        const { stateOffset } = this.#layout;
        this.#forEachChunk(data, (ptr, length) => {
          this.#core.sha256Update(stateOffset, ptr, length);
          return true;
        });
        state.set(this.#memory.subarray(stateOffset, stateOffset + state.length));
      },
      final: (owner, state, out, offset) => {
        this.#loadState(owner, state);
        const { stateOffset, digestOffset } = this.#layout;
        this.#core.sha256Final(stateOffset, digestOffset);
        this.#slotOwner = null; // the slot now holds a finished state
        out.set(this.#memory.subarray(digestOffset, digestOffset + DIGEST_SIZE), offset);
      },
      release: (owner) => {
        if (this.#slotOwner === owner) this.#slotOwner = null;
      },
    };
    this.#warmUp();
  }

  /**
   * The core of `build` (default 'release') for this thread: compiled, instantiated, ABI-checked
   * and warmed up on first use, then cached.
   * @throws TypeError for an unknown build; Error if build/<build>.wasm is missing or of another ABI.
   */
  static load(build: CoreBuild = 'release'): WasmCore {
    let core = cores.get(build);
    if (core === undefined) {
      compileCore(build); // validates `build` before it becomes a cache key
      core = new WasmCore(build);
      cores.set(build, core);
    }
    return core;
  }

  #warmUp(): void {
    const { windowOffset, digestOffset, flagsOffset, stateOffset } = this.#layout;
    const core = this.#core;
    for (let i = 0; i < WARMUP_ROUNDS; i++) {
      core.hashBlocks(windowOffset, WARMUP_BYTES, digestOffset);
      core.sha256Init(stateOffset);
      core.sha256Update(stateOffset, windowOffset + 1, 64 * 1024);
      core.sha256Final(stateOffset, digestOffset);
      core.zeroBlockFlags(windowOffset, WARMUP_BYTES, flagsOffset);
      core.firstDigestMismatch(windowOffset, windowOffset, 1024);
    }
  }

  /**
   * View of the input window (`windowSize` bytes). Reading data straight into it and then calling
   * hashWindowBlocksInto (or passing a subarray of it to any method) avoids a copy. The view stays
   * valid because the module never grows its memory; its content is overwritten by every method
   * that copies input through the window.
   */
  window(): Uint8Array {
    return this.#window;
  }

  /**
   * Per-block SHA-256 of window[0, length): one 32-byte digest per 4096-byte piece (the last may
   * be short) into out[outOffset...]. Returns the number of digests, ceil(length / 4096).
   * @throws TypeError/RangeError if length is not an integer in [0, windowSize], or out is not a
   *   Uint8Array with room for the digests at outOffset.
   */
  hashWindowBlocksInto(length: number, out: Uint8Array, outOffset?: number): number {
    const len = checkOffset(length, 'length');
    if (len > this.windowSize) throw new RangeError(`length must be at most windowSize (${this.windowSize}), got ${len}`);
    checkBytes(out, 'out');
    const offset = this.#checkRoom(out, checkOffset(outOffset, 'outOffset'), pieces(len) * DIGEST_SIZE);
    return this.#hashBlocksAt(this.#layout.windowOffset, len, out, offset);
  }

  /**
   * Per-block SHA-256 of `data` (any Uint8Array, including a Buffer with a byteOffset): one
   * 32-byte digest per 4096-byte piece (the last may be short) into out[outOffset...], which needs
   * ceil(data.length / 4096) * 32 bytes. Data is copied through the window in chunks (used in
   * place if it is a view of the window). Returns the number of digests.
   * @throws TypeError if data or out is not a Uint8Array; RangeError if out is too small.
   */
  blockDigestsInto(data: Uint8Array, out: Uint8Array, outOffset?: number): number {
    checkBytes(data, 'data');
    checkBytes(out, 'out');
    let offset = this.#checkRoom(out, checkOffset(outOffset, 'outOffset'), pieces(data.length) * DIGEST_SIZE);
    let count = 0;
    this.#forEachChunk(data, (ptr, length) => {
      const n = this.#hashBlocksAt(ptr, length, out, offset);
      offset += n * DIGEST_SIZE;
      count += n;
      return true;
    });
    return count;
  }

  /**
   * One byte per 4096-byte piece of `data` (the last may be short) into out[0...]: 1 if the piece
   * is all zero bytes, else 0. Returns the number of zero pieces.
   * @throws TypeError if data or out is not a Uint8Array; RangeError if out is shorter than
   *   ceil(data.length / 4096).
   */
  zeroBlockFlagsInto(data: Uint8Array, out: Uint8Array): number {
    checkBytes(data, 'data');
    checkBytes(out, 'out');
    this.#checkRoom(out, 0, pieces(data.length));
    const { flagsOffset } = this.#layout;
    let offset = 0;
    let zeros = 0;
    this.#forEachChunk(data, (ptr, length) => {
      zeros += this.#core.zeroBlockFlags(ptr, length, flagsOffset);
      const n = pieces(length);
      out.set(this.#memory.subarray(flagsOffset, flagsOffset + n), offset);
      offset += n;
      return true;
    });
    return zeros;
  }

  /**
   * True if every byte of `data` is zero (also for empty data). Stops at the first chunk that is not.
   * @throws TypeError if data is not a Uint8Array.
   */
  isZero(data: Uint8Array): boolean {
    checkBytes(data, 'data');
    const { flagsOffset } = this.#layout;
    let zero = true;
    this.#forEachChunk(data, (ptr, length) => {
      zero = this.#core.zeroBlockFlags(ptr, length, flagsOffset) === pieces(length);
      return zero;
    });
    return zero;
  }

  /**
   * Index of the first 32-byte digest that differs between the digest lists `a` and `b`, or -1
   * if they are equal.
   * @throws TypeError if a or b is not a Uint8Array; RangeError if their lengths differ or are not
   *   a multiple of 32.
   */
  firstDigestMismatch(a: Uint8Array, b: Uint8Array): number {
    checkBytes(a, 'a');
    checkBytes(b, 'b');
    if (a.length !== b.length) throw new RangeError(`a and b must have the same length, got ${a.length} and ${b.length}`);
    if (a.length % DIGEST_SIZE !== 0) throw new RangeError(`a.length must be a multiple of ${DIGEST_SIZE}, got ${a.length}`);
    // Each list gets half the window per round.
    const { windowOffset } = this.#layout;
    const half = Math.floor(this.windowSize / 2 / DIGEST_SIZE) * DIGEST_SIZE;
    for (let pos = 0; pos < a.length; pos += half) {
      const end = Math.min(pos + half, a.length);
      this.#memory.set(a.subarray(pos, end), windowOffset);
      this.#memory.set(b.subarray(pos, end), windowOffset + half);
      const index = this.#core.firstDigestMismatch(windowOffset, windowOffset + half, (end - pos) / DIGEST_SIZE);
      if (index >= 0) return pos / DIGEST_SIZE + index;
    }
    return -1;
  }

  /** A new streaming SHA-256 over this core (state kept in JS; any number may exist at once). */
  sha256(): Sha256 {
    return new CoreSha256(this.#slot);
  }

  /** Loads `state` into the module's state slot unless it is already there. */
  #loadState(owner: object, state: Uint8Array): void {
    if (this.#slotOwner !== owner) {
      this.#memory.set(state, this.#layout.stateOffset);
      this.#slotOwner = owner;
    }
  }

  /** Checks out[offset, offset + needed) exists and returns offset. */
  #checkRoom(out: Uint8Array, offset: number, needed: number): number {
    if (offset + needed > out.length) {
      throw new RangeError(`out is too small: needs ${needed} bytes at offset ${offset}, has ${Math.max(0, out.length - offset)}`);
    }
    return offset;
  }

  /** Hashes [ptr, ptr + length) of module memory per block and copies the digests to out[offset...]. */
  #hashBlocksAt(ptr: number, length: number, out: Uint8Array, offset: number): number {
    const { digestOffset, flagsOffset } = this.#layout;
    const n = pieces(length);
    // All-zero whole blocks all have the same digest: images are mostly zeros past their data (a
    // sparse 8 GiB image is read at ~5 GiB/s but hashed at ~0.7 GiB/s), so zero blocks take the
    // known digest and only the runs of other blocks are hashed. The zero check stops at a block's
    // first non-zero 64 bytes, so data costs almost nothing extra. Results are unchanged.
    const zeros = length >= BLOCK_SIZE ? this.#core.zeroBlockFlags(ptr, length, flagsOffset) : 0;
    if (zeros === 0) {
      this.#core.hashBlocks(ptr, length, digestOffset);
      out.set(this.#memory.subarray(digestOffset, digestOffset + n * DIGEST_SIZE), offset);
      return n;
    }
    const flags = this.#memory.subarray(flagsOffset, flagsOffset + n);
    // A short last piece is hashed as it is (its digest is not the zero block's).
    const zeroAt = (b: number) => flags[b] === 1 && (b + 1) * BLOCK_SIZE <= length;
    for (let b = 0; b < n; ) {
      let end = b + 1;
      const zero = zeroAt(b);
      while (end < n && zeroAt(end) === zero) end++;
      if (zero) {
        for (let i = b; i < end; i++) out.set(this.#zeroDigest, offset + i * DIGEST_SIZE);
      } else {
        const bytes = Math.min(length, end * BLOCK_SIZE) - b * BLOCK_SIZE;
        this.#core.hashBlocks(ptr + b * BLOCK_SIZE, bytes, digestOffset);
        out.set(this.#memory.subarray(digestOffset, digestOffset + (end - b) * DIGEST_SIZE), offset + b * DIGEST_SIZE);
      }
      b = end;
    }
    return n;
  }

  /**
   * Calls visit(ptr, length) for consecutive chunks of `data` copied to the start of the window
   * (or once, in place and without a copy, if data already lies inside the window). Chunks are
   * multiples of BLOCK_SIZE except the last. Stops when visit returns false.
   */
  #forEachChunk(data: Uint8Array, visit: (ptr: number, length: number) => boolean): void {
    const { windowOffset } = this.#layout;
    if (data.buffer === this.#memory.buffer && data.byteOffset >= windowOffset
      && data.byteOffset + data.length <= windowOffset + this.windowSize) {
      if (data.length > 0) visit(data.byteOffset, data.length);
      return;
    }
    const chunk = Math.min(COPY_CHUNK, this.windowSize);
    for (let pos = 0; pos < data.length; pos += chunk) {
      const end = Math.min(pos + chunk, data.length);
      this.#memory.set(data.subarray(pos, end), windowOffset);
      if (!visit(windowOffset, end - pos)) return;
    }
  }
}
