// Multi-buffer SHA-256 over v128: four 4096-byte blocks hashed at once, lane k = block k.
// WASM SIMD has no rotate, so each rotation is shr_u/shl/or; Ch and Maj are one bitselect each.

import { BLOCK_SIZE, SCHED_KW, SCHED_LANE_H, SCHED_W } from './layout';
import { IV, K, padScheduleKW } from './sha256common';

// K[i] splatted to all four lanes, 1 KiB, filled when the module starts.
const KX4: usize = memory.data(1024, 16);
for (let i: usize = 0; i < 64; i++) v128.store(KX4 + 16 * i, i32x4.splat(load<u32>(K + 4 * i)));

// @ts-ignore: decorator
@inline function rotr4(x: v128, n: i32): v128 {
  return v128.or(i32x4.shr_u(x, n), i32x4.shl(x, 32 - n));
}
// @ts-ignore: decorator
@inline function bigSigma0x4(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 2), rotr4(x, 13)), rotr4(x, 22)); }
// @ts-ignore: decorator
@inline function bigSigma1x4(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 6), rotr4(x, 11)), rotr4(x, 25)); }
// @ts-ignore: decorator
@inline function smallSigma0x4(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 7), rotr4(x, 18)), i32x4.shr_u(x, 3)); }
// @ts-ignore: decorator
@inline function smallSigma1x4(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 17), rotr4(x, 19)), i32x4.shr_u(x, 10)); }
// Ch(e, f, g): f where e is set, else g.
// @ts-ignore: decorator
@inline function chx4(e: v128, f: v128, g: v128): v128 { return v128.bitselect(f, g, e); }
// Maj(a, b, c): where a and c agree that is the majority, elsewhere b decides.
// @ts-ignore: decorator
@inline function majx4(a: v128, b: v128, c: v128): v128 { return v128.bitselect(b, c, v128.xor(a, c)); }
// @ts-ignore: decorator
@inline function add3(a: v128, b: v128, c: v128): v128 { return i32x4.add(i32x4.add(a, b), c); }
// @ts-ignore: decorator
@inline function add4(a: v128, b: v128, c: v128, d: v128): v128 { return i32x4.add(i32x4.add(a, b), i32x4.add(c, d)); }

/** Reverses the bytes of each 32-bit lane (big-endian message words). */
// @ts-ignore: decorator
@inline function bswap4(x: v128): v128 {
  return i8x16.shuffle(x, x, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
}

/** Stores the transpose of the 4x4 u32 matrix with rows r0..r3: column j goes to dst + j * stride. */
// @ts-ignore: decorator
@inline function storeTransposed(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, stride: usize): void {
  const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, i64x2.shuffle(t0, t2, 0, 2));
  v128.store(dst + stride, i64x2.shuffle(t0, t2, 1, 3));
  v128.store(dst + 2 * stride, i64x2.shuffle(t1, t3, 0, 2));
  v128.store(dst + 3 * stride, i64x2.shuffle(t1, t3, 1, 3));
}

/**
 * Compresses chunk [p, p + 64) of each of the four blocks at p, p + 4096, p + 8192, p + 12288
 * into the lane states at SCHED_LANE_H. A separate function called per chunk so V8 tiers it up.
 */
function compressFour(p: usize): void {
  // Message words: lane k's 16 words come from block k; byte-swap, then transpose so that
  // W[i] holds word i of all four blocks.
  for (let q: usize = 0; q < 4; q++) {
    storeTransposed(
      bswap4(v128.load(p + 16 * q)),
      bswap4(v128.load(p + 16 * q + BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 2 * BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 3 * BLOCK_SIZE)),
      SCHED_W + 64 * q, 16,
    );
  }
  for (let i: usize = 0; i < 16; i++) {
    v128.store(SCHED_KW + 16 * i, i32x4.add(v128.load(SCHED_W + 16 * i), v128.load(KX4 + 16 * i)));
  }
  for (let i: usize = 16; i < 64; i++) {
    const w = SCHED_W + 16 * i;
    const wi = i32x4.add(
      i32x4.add(smallSigma1x4(v128.load(w - 32)), v128.load(w - 112)),
      i32x4.add(smallSigma0x4(v128.load(w - 240)), v128.load(w - 256)),
    );
    v128.store(w, wi);
    v128.store(SCHED_KW + 16 * i, i32x4.add(wi, v128.load(KX4 + 16 * i)));
  }
  runRounds(SCHED_KW, 16);
}

/** Compresses the shared padding chunk of a 4096-byte message into all four lane states. */
function compressFourPadding(): void {
  runRounds(padScheduleKW, 4);
}

/**
 * 64 rounds over the lane states at SCHED_LANE_H, consuming K[i] + W[i] from `kw` (a v128 per
 * round when stride is 16, or a u32 broadcast to all lanes when stride is 4). 8 rounds per loop
 * iteration with the working variables renamed instead of moved.
 */
// @ts-ignore: decorator
@inline function runRounds(kw: usize, stride: usize): void {
  const s = SCHED_LANE_H;
  let a = v128.load(s, 0), b = v128.load(s, 16), c = v128.load(s, 32), d = v128.load(s, 48);
  let e = v128.load(s, 64), f = v128.load(s, 80), g = v128.load(s, 96), h = v128.load(s, 112);
  let t: v128;
  for (let i = 0; i < 8; i++) {
    t = add4(h, bigSigma1x4(e), chx4(e, f, g), loadKW(kw, 0, stride)); d = i32x4.add(d, t); h = add3(t, bigSigma0x4(a), majx4(a, b, c));
    t = add4(g, bigSigma1x4(d), chx4(d, e, f), loadKW(kw, 1, stride)); c = i32x4.add(c, t); g = add3(t, bigSigma0x4(h), majx4(h, a, b));
    t = add4(f, bigSigma1x4(c), chx4(c, d, e), loadKW(kw, 2, stride)); b = i32x4.add(b, t); f = add3(t, bigSigma0x4(g), majx4(g, h, a));
    t = add4(e, bigSigma1x4(b), chx4(b, c, d), loadKW(kw, 3, stride)); a = i32x4.add(a, t); e = add3(t, bigSigma0x4(f), majx4(f, g, h));
    t = add4(d, bigSigma1x4(a), chx4(a, b, c), loadKW(kw, 4, stride)); h = i32x4.add(h, t); d = add3(t, bigSigma0x4(e), majx4(e, f, g));
    t = add4(c, bigSigma1x4(h), chx4(h, a, b), loadKW(kw, 5, stride)); g = i32x4.add(g, t); c = add3(t, bigSigma0x4(d), majx4(d, e, f));
    t = add4(b, bigSigma1x4(g), chx4(g, h, a), loadKW(kw, 6, stride)); f = i32x4.add(f, t); b = add3(t, bigSigma0x4(c), majx4(c, d, e));
    t = add4(a, bigSigma1x4(f), chx4(f, g, h), loadKW(kw, 7, stride)); e = i32x4.add(e, t); a = add3(t, bigSigma0x4(b), majx4(b, c, d));
    kw += 8 * stride;
  }
  v128.store(s, i32x4.add(v128.load(s, 0), a), 0);
  v128.store(s, i32x4.add(v128.load(s, 16), b), 16);
  v128.store(s, i32x4.add(v128.load(s, 32), c), 32);
  v128.store(s, i32x4.add(v128.load(s, 48), d), 48);
  v128.store(s, i32x4.add(v128.load(s, 64), e), 64);
  v128.store(s, i32x4.add(v128.load(s, 80), f), 80);
  v128.store(s, i32x4.add(v128.load(s, 96), g), 96);
  v128.store(s, i32x4.add(v128.load(s, 112), h), 112);
}

// @ts-ignore: decorator
@inline function loadKW(kw: usize, round: usize, stride: usize): v128 {
  return stride == 16 ? v128.load(kw + 16 * round) : v128.load32_splat(kw + 4 * round);
}

/**
 * SHA-256 of the four consecutive 4096-byte blocks at `ptr`; digest of block k (32 bytes,
 * big-endian) to out + 32k.
 */
export function hashFourBlocks(ptr: usize, out: usize): void {
  const s = SCHED_LANE_H;
  for (let j: usize = 0; j < 8; j++) v128.store(s + 16 * j, i32x4.splat(load<u32>(IV + 4 * j)));
  for (let c: usize = 0; c < BLOCK_SIZE; c += 64) compressFour(ptr + c);
  compressFourPadding();
  // Lane states back to per-block digests: transpose H0..H3 and H4..H7, byte-swapped.
  storeTransposed(bswap4(v128.load(s, 0)), bswap4(v128.load(s, 16)), bswap4(v128.load(s, 32)), bswap4(v128.load(s, 48)), out, 32);
  storeTransposed(bswap4(v128.load(s, 64)), bswap4(v128.load(s, 80)), bswap4(v128.load(s, 96)), bswap4(v128.load(s, 112)), out + 16, 32);
}
