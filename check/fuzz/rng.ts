import { Prng } from '../../src/demo/sample.js';

/** The demo's mulberry32, seeded per case so any case reproduces from (seed, case number) alone. */
export class Rng extends Prng {
  constructor(seed: number) {
    super(0);
    this.state = seed >>> 0;
  }
  /** Integer in [0, n) (0 for n <= 0: mutators ask for ranges that may be empty). */
  override below(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next32() / 2 ** 32) * n);
  }
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next32() & 0xff;
    return out;
  }
}

/** The seed of case `n` of a run seeded with `seed` (splitmix-style mixing). */
export function caseSeed(seed: number, n: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(n + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}
