// Multi-buffer SHA-256 over v128 (FIPS 180-4): four 4096-byte blocks hashed at once, lane k = block k.
//
// Why it is shaped this way (all measured with V8 11.3 / Node 20 on the project machine):
// - Message words are loaded 16 bytes per lane, byte-swapped, and transposed 4x4, so W[i] holds word
//   i of all four blocks; the four blocks share every instruction of the rounds.
// - WASM SIMD has no rotate. The Sigma functions are written as two shift/xor chains,
//   ((x >>> p ^ x) >>> q ^ x) >>> r for the right shifts and likewise for the left, instead of three
//   independent rotates: the same instruction count, but two temporaries instead of six, which
//   spares V8's register allocator most of its spills (about 5% faster than shr_u/shl/or rotates).
// - Ch is one v128.bitselect. Maj is b ^ ((a ^ b) & (b ^ c)) with the previous round's a ^ b reused
//   as this round's b ^ c: 3 instructions, where bitselect lowers to 3 on x64 plus the xor it needs.
// - The schedule word W[i + 16] is computed inside round i's basic block, so its dependency chain
//   overlaps the rounds' chains; W[i + 14] comes from a register, not from the store two words
//   earlier (a store-to-load round trip per word made a separate schedule loop latency-bound).
// - 8 rounds per loop iteration with the working variables renamed instead of moved.
// - The padding chunk of a 4096-byte message is the same for every block, so its K + W is a
//   precomputed table and those 64 rounds do no schedule work.

import { BLOCK_SIZE, SCHED_KW, SCHED_LANE_H, SCHED_LANE_WORK, SCHED_W } from './layout';
import { IV, K, padScheduleKW } from './sha256common';

// Distance from W[i] to K[i] + W[i] in the schedule scratch, so one pointer walks both.
// @ts-ignore: decorator
@inline const KW_AFTER_W: usize = SCHED_KW - SCHED_W;

// K[i] and the padding chunk's K[i] + W[i], each splatted to all four lanes (1 KiB each), filled
// when the module starts.
const KX4: usize = memory.data(1024, 16);
const PAD_KWX4: usize = memory.data(1024, 16);
for (let i: usize = 0; i < 64; i++) {
  v128.store(KX4 + 16 * i, i32x4.splat(load<u32>(K + 4 * i)));
  v128.store(PAD_KWX4 + 16 * i, i32x4.splat(load<u32>(padScheduleKW + 4 * i)));
}

// Sigma0(x) = rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22)
//           = ((x >>> 9 ^ x) >>> 11 ^ x) >>> 2  ^  ((x << 11 ^ x) << 9 ^ x) << 10
// @ts-ignore: decorator
@inline function bigSigma0x4(x: v128): v128 {
  const r = i32x4.shr_u(v128.xor(i32x4.shr_u(v128.xor(i32x4.shr_u(x, 9), x), 11), x), 2);
  const l = i32x4.shl(v128.xor(i32x4.shl(v128.xor(i32x4.shl(x, 11), x), 9), x), 10);
  return v128.xor(r, l);
}

// Sigma1(x) = rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25)
//           = ((x >>> 14 ^ x) >>> 5 ^ x) >>> 6  ^  ((x << 5 ^ x) << 14 ^ x) << 7
// @ts-ignore: decorator
@inline function bigSigma1x4(x: v128): v128 {
  const r = i32x4.shr_u(v128.xor(i32x4.shr_u(v128.xor(i32x4.shr_u(x, 14), x), 5), x), 6);
  const l = i32x4.shl(v128.xor(i32x4.shl(v128.xor(i32x4.shl(x, 5), x), 14), x), 7);
  return v128.xor(r, l);
}

// sigma0(x) = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)
//           = ((x >>> 11 ^ x) >>> 4 ^ x) >>> 3  ^  (x << 11 ^ x) << 14
// @ts-ignore: decorator
@inline function smallSigma0x4(x: v128): v128 {
  const r = i32x4.shr_u(v128.xor(i32x4.shr_u(v128.xor(i32x4.shr_u(x, 11), x), 4), x), 3);
  const l = i32x4.shl(v128.xor(i32x4.shl(x, 11), x), 14);
  return v128.xor(r, l);
}

// sigma1(x) = rotr(x, 17) ^ rotr(x, 19) ^ (x >>> 10)
//           = ((x >>> 2 ^ x) >>> 7 ^ x) >>> 10  ^  (x << 2 ^ x) << 13
// @ts-ignore: decorator
@inline function smallSigma1x4(x: v128): v128 {
  const r = i32x4.shr_u(v128.xor(i32x4.shr_u(v128.xor(i32x4.shr_u(x, 2), x), 7), x), 10);
  const l = i32x4.shl(v128.xor(i32x4.shl(x, 2), x), 13);
  return v128.xor(r, l);
}

// Ch(e, f, g): f where e is set, else g.
// @ts-ignore: decorator
@inline function ch4(e: v128, f: v128, g: v128): v128 {
  return v128.bitselect(f, g, e);
}

// T1 = h + (K[i] + W[i]) + Ch(e, f, g) + Sigma1(e), summed so that Sigma1, the longest chain from
// e, is added last.
// @ts-ignore: decorator
@inline function t1(h: v128, kw: v128, e: v128, f: v128, g: v128): v128 {
  return i32x4.add(i32x4.add(i32x4.add(h, kw), ch4(e, f, g)), bigSigma1x4(e));
}

// T2 = Sigma0(a) + Maj(a, b, c), with Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c)) given a ^ b and b ^ c.
// @ts-ignore: decorator
@inline function t2(a: v128, b: v128, aXorB: v128, bXorC: v128): v128 {
  return i32x4.add(bigSigma0x4(a), v128.xor(b, v128.and(aXorB, bXorC)));
}

// Schedule word W[i + 16] = sigma1(W[i + 14]) + W[i + 9] + sigma0(W[i + 1]) + W[i], where `w + off`
// is the address of W[i] and W[i + 14] is passed in a register. Stores W[i + 16] and
// K[i + 16] + W[i + 16], and returns W[i + 16]. All offsets are positive constants, which V8 folds
// into the addressing mode (WASM offsets cannot be negative).
// @ts-ignore: decorator
@inline function scheduleWord(w: usize, off: usize, w14: v128): v128 {
  const wi = i32x4.add(
    i32x4.add(smallSigma1x4(w14), v128.load(w + off, 9 * 16)),
    i32x4.add(smallSigma0x4(v128.load(w + off, 16)), v128.load(w + off)),
  );
  v128.store(w + off, wi, 16 * 16);
  v128.store(w + off, i32x4.add(wi, v128.load(w + off - SCHED_W + KX4, 16 * 16)), KW_AFTER_W + 16 * 16);
  return wi;
}

// Reverses the bytes of each 32-bit lane (message words are big-endian). A constant swizzle is one
// pshufb in V8; the equivalent i8x16.shuffle is lowered to six instructions.
// @ts-ignore: decorator
@inline function bswap4(x: v128): v128 {
  return i8x16.swizzle(x, i8x16(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12));
}

// Stores the transpose of the 4x4 matrix of u32 with rows r0..r3: column j goes to dst + j * stride.
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
 * Compresses chunk [p, p + 64) of each of the four blocks at p, p + 4096, p + 8192, p + 12288 into
 * the lane states at SCHED_LANE_H. A separate function called once per chunk: V8 only switches a
 * function to optimized code on its next call, so short calls reach TurboFan quickly.
 */
function compressFour(p: usize): void {
  // W[0..15]: lane k's words come from block k.
  for (let q: usize = 0; q < 4; q++) {
    storeTransposed(
      bswap4(v128.load(p + 16 * q)),
      bswap4(v128.load(p + 16 * q + BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 2 * BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 3 * BLOCK_SIZE)),
      SCHED_W + 64 * q, 16,
    );
  }
  for (let i: usize = 0; i < 16 * 16; i += 16) {
    v128.store(SCHED_KW + i, i32x4.add(v128.load(SCHED_W + i), v128.load(KX4 + i)));
  }

  // Rounds 0..47, each also computing W[i + 16].
  const s = SCHED_LANE_H;
  let a = v128.load(s, 0), b = v128.load(s, 16), c = v128.load(s, 32), d = v128.load(s, 48);
  let e = v128.load(s, 64), f = v128.load(s, 80), g = v128.load(s, 96), h = v128.load(s, 112);
  let t: v128, ab: v128;
  let bc = v128.xor(b, c);
  let w = SCHED_W;
  let w14 = v128.load(SCHED_W, 14 * 16), w15 = v128.load(SCHED_W, 15 * 16);
  for (let i = 0; i < 6; i++) {
    t = t1(h, v128.load(w, KW_AFTER_W), e, f, g); d = i32x4.add(d, t); ab = v128.xor(a, b); h = i32x4.add(t, t2(a, b, ab, bc));
    w14 = scheduleWord(w, 0, w14);
    t = t1(g, v128.load(w, KW_AFTER_W + 16), d, e, f); c = i32x4.add(c, t); bc = v128.xor(h, a); g = i32x4.add(t, t2(h, a, bc, ab));
    w15 = scheduleWord(w, 16, w15);
    t = t1(f, v128.load(w, KW_AFTER_W + 32), c, d, e); b = i32x4.add(b, t); ab = v128.xor(g, h); f = i32x4.add(t, t2(g, h, ab, bc));
    w14 = scheduleWord(w, 32, w14);
    t = t1(e, v128.load(w, KW_AFTER_W + 48), b, c, d); a = i32x4.add(a, t); bc = v128.xor(f, g); e = i32x4.add(t, t2(f, g, bc, ab));
    w15 = scheduleWord(w, 48, w15);
    t = t1(d, v128.load(w, KW_AFTER_W + 64), a, b, c); h = i32x4.add(h, t); ab = v128.xor(e, f); d = i32x4.add(t, t2(e, f, ab, bc));
    w14 = scheduleWord(w, 64, w14);
    t = t1(c, v128.load(w, KW_AFTER_W + 80), h, a, b); g = i32x4.add(g, t); bc = v128.xor(d, e); c = i32x4.add(t, t2(d, e, bc, ab));
    w15 = scheduleWord(w, 80, w15);
    t = t1(b, v128.load(w, KW_AFTER_W + 96), g, h, a); f = i32x4.add(f, t); ab = v128.xor(c, d); b = i32x4.add(t, t2(c, d, ab, bc));
    w14 = scheduleWord(w, 96, w14);
    t = t1(a, v128.load(w, KW_AFTER_W + 112), f, g, h); e = i32x4.add(e, t); bc = v128.xor(b, c); a = i32x4.add(t, t2(b, c, bc, ab));
    w15 = scheduleWord(w, 112, w15);
    w += 8 * 16;
  }
  const work = SCHED_LANE_WORK;
  v128.store(work, a, 0); v128.store(work, b, 16); v128.store(work, c, 32); v128.store(work, d, 48);
  v128.store(work, e, 64); v128.store(work, f, 80); v128.store(work, g, 96); v128.store(work, h, 112);
  finishRounds(SCHED_KW + 48 * 16, 2);
}

/**
 * Runs `iterations` x 8 rounds on the working variables at SCHED_LANE_WORK, consuming K + W from
 * `kw` (one v128 per round), then adds them into the lane states at SCHED_LANE_H.
 */
function finishRounds(kw: usize, iterations: i32): void {
  const work = SCHED_LANE_WORK;
  let a = v128.load(work, 0), b = v128.load(work, 16), c = v128.load(work, 32), d = v128.load(work, 48);
  let e = v128.load(work, 64), f = v128.load(work, 80), g = v128.load(work, 96), h = v128.load(work, 112);
  let t: v128, ab: v128;
  let bc = v128.xor(b, c);
  for (let i = 0; i < iterations; i++) {
    t = t1(h, v128.load(kw, 0), e, f, g); d = i32x4.add(d, t); ab = v128.xor(a, b); h = i32x4.add(t, t2(a, b, ab, bc));
    t = t1(g, v128.load(kw, 16), d, e, f); c = i32x4.add(c, t); bc = v128.xor(h, a); g = i32x4.add(t, t2(h, a, bc, ab));
    t = t1(f, v128.load(kw, 32), c, d, e); b = i32x4.add(b, t); ab = v128.xor(g, h); f = i32x4.add(t, t2(g, h, ab, bc));
    t = t1(e, v128.load(kw, 48), b, c, d); a = i32x4.add(a, t); bc = v128.xor(f, g); e = i32x4.add(t, t2(f, g, bc, ab));
    t = t1(d, v128.load(kw, 64), a, b, c); h = i32x4.add(h, t); ab = v128.xor(e, f); d = i32x4.add(t, t2(e, f, ab, bc));
    t = t1(c, v128.load(kw, 80), h, a, b); g = i32x4.add(g, t); bc = v128.xor(d, e); c = i32x4.add(t, t2(d, e, bc, ab));
    t = t1(b, v128.load(kw, 96), g, h, a); f = i32x4.add(f, t); ab = v128.xor(c, d); b = i32x4.add(t, t2(c, d, ab, bc));
    t = t1(a, v128.load(kw, 112), f, g, h); e = i32x4.add(e, t); bc = v128.xor(b, c); a = i32x4.add(t, t2(b, c, bc, ab));
    kw += 8 * 16;
  }
  const s = SCHED_LANE_H;
  v128.store(s, i32x4.add(v128.load(s, 0), a), 0);
  v128.store(s, i32x4.add(v128.load(s, 16), b), 16);
  v128.store(s, i32x4.add(v128.load(s, 32), c), 32);
  v128.store(s, i32x4.add(v128.load(s, 48), d), 48);
  v128.store(s, i32x4.add(v128.load(s, 64), e), 64);
  v128.store(s, i32x4.add(v128.load(s, 80), f), 80);
  v128.store(s, i32x4.add(v128.load(s, 96), g), 96);
  v128.store(s, i32x4.add(v128.load(s, 112), h), 112);
}

/**
 * SHA-256 of the four consecutive 4096-byte blocks at `ptr`; the digest of block k (32 bytes,
 * big-endian) goes to out + 32k. Uses the schedule scratch region.
 */
export function hashFourBlocks(ptr: usize, out: usize): void {
  const s = SCHED_LANE_H;
  for (let j: usize = 0; j < 8; j++) v128.store(s + 16 * j, i32x4.splat(load<u32>(IV + 4 * j)));
  for (let c: usize = 0; c < BLOCK_SIZE; c += 64) compressFour(ptr + c);
  // The padding chunk: 64 rounds straight from the precomputed K + W.
  memory.copy(SCHED_LANE_WORK, s, 128);
  finishRounds(PAD_KWX4, 8);
  // Lane states back to per-block digests: transpose H0..H3 and H4..H7, byte-swapped.
  storeTransposed(bswap4(v128.load(s, 0)), bswap4(v128.load(s, 16)), bswap4(v128.load(s, 32)), bswap4(v128.load(s, 48)), out, 32);
  storeTransposed(bswap4(v128.load(s, 64)), bswap4(v128.load(s, 80)), bswap4(v128.load(s, 96)), bswap4(v128.load(s, 112)), out + 16, 32);
}
