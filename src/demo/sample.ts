/**
 * Deterministic sample images for the demo, tests and benchmarks: no root, no network, no tools.
 *
 * They imitate what makes a root filesystem compress the way it does: a metadata area, text files
 * (words from a small vocabulary), executable-like data (structured, partly repetitive), already
 * compressed files (random bytes), scattered zero blocks and long free (zero) stretches. A release
 * `variant` rewrites some files in place, so two variants differ the way two releases do.
 */

/** mulberry32: a small, fast seeded PRNG, so images are identical on every machine. */
export class Prng {
  /** Protected: the test and fuzz generators derive their own start states from a seed. */
  protected state: number;
  constructor(seed: number) {
    this.state = (seed * 0x9e3779b1) >>> 0;
  }
  next32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return this.next32() % n;
  }
  /** Fills `out` with random bytes (fast path: 4 bytes per draw). */
  fill(out: Uint8Array): void {
    const whole = out.length & ~3;
    const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < whole; i += 4) v.setUint32(i, this.next32(), true);
    for (let i = whole; i < out.length; i++) out[i] = this.next32() & 0xff;
  }
}

const WORDS = (
  'the system boot kernel module service config network device partition update image release ' +
  'version package library binary daemon socket mount root user group file path value option ' +
  'enable disable default error warning info debug start stop restart status target unit slot'
).split(' ');

function fillText(out: Uint8Array, rng: Prng): void {
  let i = 0;
  while (i < out.length) {
    const word = rng.below(12) === 0 ? `\n${WORDS[rng.below(WORDS.length)]}=` : `${WORDS[rng.below(WORDS.length)]} `;
    for (let k = 0; k < word.length && i < out.length; k++) out[i++] = word.charCodeAt(k);
  }
}

/** Executable-like: instruction-ish records with small varying operands, repeats and tables. */
function fillBinary(out: Uint8Array, rng: Prng): void {
  let i = 0;
  while (i < out.length) {
    const kind = rng.below(4);
    const n = Math.min(out.length - i, 16 + rng.below(240));
    if (kind === 0) {
      for (let k = 0; k < n; k++) out[i + k] = (0x48 + ((k * 7) & 0x0f)) & 0xff;
    } else if (kind === 1) {
      for (let k = 0; k < n; k += 4) {
        const v = rng.below(4096);
        out[i + k] = 0xe8;
        if (k + 1 < n) out[i + k + 1] = v & 0xff;
        if (k + 2 < n) out[i + k + 2] = v >> 8;
      }
    } else if (kind === 2) {
      for (let k = 0; k < n; k++) out[i + k] = rng.below(3) === 0 ? rng.below(256) : 0;
    } else {
      out.fill(0x90, i, i + n);
    }
    i += n;
  }
}

export interface SampleOptions {
  /** Image size in bytes; need not be a multiple of 4096. */
  size: number;
  /** Release number: higher variants rewrite more files. */
  variant: number;
  seed?: number;
}

/**
 * Builds a sample image in memory. Layout: 1 MiB metadata area, then files laid out in order with
 * a zero block here and there, then free space (zero) for the last ~30%.
 */
export function sampleImage(opts: SampleOptions): Uint8Array {
  const { size, variant } = opts;
  const seed = opts.seed ?? 1;
  const image = new Uint8Array(size);
  const layout = new Prng(seed);
  const meta = Math.min(size, 1 << 20);
  fillBinary(image.subarray(0, meta), new Prng(seed * 7 + variant));
  const used = Math.floor(size * 0.7);
  let pos = meta;
  let file = 0;
  while (pos < used) {
    const length = Math.min(used - pos, 4096 * (1 + layout.below(200)));
    const kind = layout.below(10);
    // Each file's content seed depends on the variant only for the files this release changed.
    const changed = variant > 0 && layout.below(100) < 10 * variant;
    const rng = new Prng(seed * 1_000_003 + file * 31 + (changed ? variant : 0));
    const region = image.subarray(pos, pos + length);
    if (kind < 5) fillText(region, rng);
    else if (kind < 8) fillBinary(region, rng);
    else if (kind < 9) rng.fill(region);
    // kind 9: a sparse file; stays zero.
    pos += length + (layout.below(4) === 0 ? 4096 : 0);
    file++;
  }
  return image;
}
