/**
 * The payload format's block-list hash over the WebAssembly core (docs/FORMAT.md): streaming, and
 * in one call.
 */
import { checkBytes, describe } from './arguments.js';
import { WasmCore } from './core.js';
import { BLOCK_SIZE, DIGEST_SIZE } from './layout.js';
import type { Sha256 } from './sha256.js';

/**
 * The "block-list hash" of the payload format: SHA-256 over the concatenated SHA-256 digests of
 * each 4096-byte piece of the data (the last piece may be short; empty data gives the SHA-256 of
 * nothing). Streaming: feed the data with update() in pieces that are multiples of 4096 bytes,
 * except the last call before digest(); or feed already computed per-block digests with
 * updateDigests(). Both kinds of call may be mixed in order.
 */
export class BlockListHasher {
  readonly #core: WasmCore;
  readonly #outer: Sha256;
  /** Per-block digests of one window-sized chunk, reused across calls. */
  #digests: Uint8Array | null = null;
  #blocks = 0;
  /** Set once a short piece was absorbed: nothing may follow it. */
  #sawShortPiece = false;
  #finished = false;

  /** @throws TypeError if core is not a WasmCore. */
  constructor(core: WasmCore) {
    if (!(core instanceof WasmCore)) throw new TypeError(`core must be a WasmCore, got ${describe(core)}`);
    this.#core = core;
    this.#outer = core.sha256();
  }

  /** Number of 4096-byte pieces (blocks) absorbed so far, the short last one included. */
  get blocks(): number {
    return this.#blocks;
  }

  /**
   * Absorbs data (any byteOffset): its per-block digests join the list. Returns this.
   * @throws TypeError if data is not a Uint8Array; RangeError if an earlier call ended in a short
   *   piece (its length was not a multiple of 4096); Error after digest().
   */
  update(data: Uint8Array): this {
    checkBytes(data, 'data');
    this.#checkOpen('update');
    const chunk = this.#core.windowSize;
    const digests = (this.#digests ??= new Uint8Array((chunk / BLOCK_SIZE) * DIGEST_SIZE));
    for (let pos = 0; pos < data.length; pos += chunk) {
      const n = this.#core.blockDigestsInto(data.subarray(pos, Math.min(pos + chunk, data.length)), digests);
      this.#outer.update(digests.subarray(0, n * DIGEST_SIZE));
      this.#blocks += n;
    }
    if (data.length % BLOCK_SIZE !== 0) this.#sawShortPiece = true;
    return this;
  }

  /**
   * Absorbs already computed per-block digests (32 bytes each, in block order). Returns this.
   * @throws TypeError if digests is not a Uint8Array; RangeError if its length is not a multiple
   *   of 32 or an earlier update() ended in a short piece; Error after digest().
   */
  updateDigests(digests: Uint8Array): this {
    checkBytes(digests, 'digests');
    if (digests.length % DIGEST_SIZE !== 0) {
      throw new RangeError(`digests.length must be a multiple of ${DIGEST_SIZE}, got ${digests.length}`);
    }
    this.#checkOpen('updateDigests');
    this.#outer.update(digests);
    this.#blocks += digests.length / DIGEST_SIZE;
    return this;
  }

  /** Finishes and returns the 32-byte block-list hash. @throws Error if called twice. */
  digest(): Uint8Array {
    if (this.#finished) throw new Error('BlockListHasher.digest() called twice');
    this.#finished = true;
    return this.#outer.digest();
  }

  #checkOpen(method: string): void {
    if (this.#finished) throw new Error(`BlockListHasher.${method}() after digest()`);
    if (this.#sawShortPiece) {
      throw new RangeError(`BlockListHasher.${method}(): an earlier update() ended in a piece shorter than ${BLOCK_SIZE} bytes; only the last piece may be short`);
    }
  }
}

/**
 * Block-list hash of `data` in one call (see BlockListHasher). Returns a new 32-byte array.
 * @throws TypeError if core is not a WasmCore or data not a Uint8Array.
 */
export function blockListHash(core: WasmCore, data: Uint8Array): Uint8Array {
  return new BlockListHasher(core).update(data).digest();
}
