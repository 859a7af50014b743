/**
 * Streaming SHA-256 over the WebAssembly core. The state of each hasher lives in JS, so any number
 * may exist at once; the core (core.ts) lends its one state slot in the module's memory through a
 * Sha256Slot, and skips copying a state back in while the same hasher keeps using the slot.
 */
import { checkBytes, checkOffset } from './arguments.js';
import { DIGEST_SIZE } from './layout.js';

/** A streaming SHA-256 whose state lives in JS, so any number may exist at once. */
export interface Sha256 {
  /**
   * Absorbs `data` (any length, any byteOffset). Returns this.
   * @throws TypeError if data is not a Uint8Array; Error after digest() until reset().
   */
  update(data: Uint8Array): this;
  /**
   * Finishes the hash and writes the 32-byte digest to out[offset, offset + 32).
   * @throws TypeError/RangeError if out is not a Uint8Array with 32 bytes at offset; Error if
   *   already finished (call reset() to start over).
   */
  digestInto(out: Uint8Array, offset?: number): void;
  /** Finishes the hash and returns the 32-byte digest in a new array. @throws Error if already finished. */
  digest(): Uint8Array;
  /** Starts over with the empty message (also after digest()). Returns this. */
  reset(): this;
}

/** Access to a core's SHA-256 state slot, handed to each CoreSha256. */
export interface Sha256Slot {
  /** State of the empty message (read-only; copy it). */
  readonly initialState: Uint8Array;
  /** Absorbs data into `state` (saved back into it). */
  update(owner: object, state: Uint8Array, data: Uint8Array): void;
  /** Finishes `state` and writes the digest to out[offset, offset + 32). */
  final(owner: object, state: Uint8Array, out: Uint8Array, offset: number): void;
  /** Forgets that the slot holds `owner`'s state (after `owner` changed its state itself). */
  release(owner: object): void;
}

/** Streaming SHA-256 keeping its 104-byte state in JS between calls. */
export class CoreSha256 implements Sha256 {
  readonly #slot: Sha256Slot;
  readonly #state: Uint8Array;
  #finished = false;

  constructor(slot: Sha256Slot) {
    this.#slot = slot;
    this.#state = slot.initialState.slice();
  }

  update(data: Uint8Array): this {
    checkBytes(data, 'data');
    if (this.#finished) throw new Error('Sha256.update() after digest(); call reset() first');
    if (data.length > 0) this.#slot.update(this, this.#state, data);
    return this;
  }

  digestInto(out: Uint8Array, offset?: number): void {
    checkBytes(out, 'out');
    const at = checkOffset(offset, 'offset');
    if (at + DIGEST_SIZE > out.length) {
      throw new RangeError(`out needs ${DIGEST_SIZE} bytes at offset ${at}, has ${Math.max(0, out.length - at)}`);
    }
    if (this.#finished) throw new Error('Sha256.digest() called twice; call reset() first');
    this.#finished = true;
    this.#slot.final(this, this.#state, out, at);
  }

  digest(): Uint8Array {
    const out = new Uint8Array(DIGEST_SIZE);
    this.digestInto(out);
    return out;
  }

  reset(): this {
    this.#slot.release(this);
    this.#state.set(this.#slot.initialState);
    this.#finished = false;
    return this;
  }
}
