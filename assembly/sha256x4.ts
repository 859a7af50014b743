// Multi-buffer SHA-256 over v128 (FIPS 180-4): 4096-byte blocks hashed side by side, one block per
// 32-bit lane. Two kernels: eight blocks as two independent groups of four lanes (the bulk path), and
// four blocks (what is left over, 4 to 7 blocks).
//
// Why it is shaped this way (measured with V8 11.3 / Node 20, then with V8 13.6 / Node 24, on the
// project machine, an AMD Zen 4, where V8 emits the AVX 3-operand forms of the v128 instructions):
// - Message words are loaded 16 bytes per lane, byte-swapped, and transposed 4x4, so W[i] holds word
//   i of four blocks; the four blocks share every instruction of the rounds.
// - WASM SIMD has no rotate, so each is a shift right, a shift left and an xor. The Sigma functions
//   are three independent rotates xor-ed together: same instruction count as the nested shift/xor
//   chains that spared registers with V8 11.3, but shorter dependency chains, which V8 13.6 turns
//   into 5% more speed in the four-block kernel (equal in the eight-block one). The schedule's sigma
//   functions keep the chains: they are off the critical path, and equal either way.
// - Ch is one v128.bitselect. Maj is b ^ ((a ^ b) & (b ^ c)) with the previous round's a ^ b reused
//   as this round's b ^ c: 3 instructions, where bitselect lowers to 3 on x64 plus the xor it needs.
// - The schedule word W[i + 16] is computed inside round i's basic block, so its dependency chain
//   overlaps the rounds' chains (a separate schedule loop was latency-bound).
// - 8 rounds per loop iteration with the working variables renamed instead of moved.
// - The padding chunk of a 4096-byte message is the same for every block, so its K + W is a
//   precomputed table and those 64 rounds do no schedule work.
// - A round with its schedule word is ~56 vector instructions, 22 of them shifts. Zen 4 runs 4 such
//   instructions per cycle, shifts on 2 of its 4 pipes only, so however they are ordered a round
//   takes 14 cycles or more; what is left to win is how full the pipes are. By that count (at
//   3.6 GHz) the eight-block kernel keeps them about 80% full, the four-block one a little less:
//   - Each round stores its new a and e to SCHED_PIN, and nothing reads them back. TurboFan emits a
//     pure value just before its first use, so without these stores it lays out the e -> Sigma1 -> e
//     chain of several rounds as one long dependent run, with the rest of their work far behind, out
//     of reach of the CPU's reordering. A store stays in order with the other memory accesses, so
//     everything a round computes is emitted before the round's stores: the round stays together
//     and next to its schedule word (6% faster with eight blocks, 5% with four).
//   - Eight blocks as two groups of four lanes, round i of one group next to round i of the other:
//     two more independent chains to overlap (3% faster than the same code on one group, though
//     16 state variables do not fit in 16 xmm registers and V8 spills some).
//   - The eight-block rounds add K[i] and W[i] themselves and the schedule stores only W: storing
//     K + W too, as the four-block kernel does, was 3% slower there (one more store per round).

import { BLOCK_SIZE, SCHED_KW, SCHED_LANE_H, SCHED_LANE_H8, SCHED_LANE_WORK, SCHED_PIN, SCHED_W, SCHED_W8 } from './layout';
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

// rotr(x, n) in each lane, 0 < n < 32.
// @ts-ignore: decorator
@inline function rotr4(x: v128, n: i32): v128 {
  return v128.xor(i32x4.shr_u(x, n), i32x4.shl(x, 32 - n));
}

// Sigma0(x) = rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22)
// @ts-ignore: decorator
@inline function bigSigma0x4(x: v128): v128 {
  return v128.xor(v128.xor(rotr4(x, 2), rotr4(x, 13)), rotr4(x, 22));
}

// Sigma1(x) = rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25)
// @ts-ignore: decorator
@inline function bigSigma1x4(x: v128): v128 {
  return v128.xor(v128.xor(rotr4(x, 6), rotr4(x, 11)), rotr4(x, 25));
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

// Stores a group's new a and e where nothing reads them: the store is ordered with the other memory
// accesses, so TurboFan computes the round's values before it (see the file comment).
// @ts-ignore: decorator
@inline function pin(group: usize, a: v128, e: v128): void {
  v128.store(SCHED_PIN + 32 * group, a);
  v128.store(SCHED_PIN + 32 * group, e, 16);
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

// Adds the working variables a..h into the eight v128 chaining values at `s`.
// @ts-ignore: decorator
@inline function addLaneStates(s: usize, a: v128, b: v128, c: v128, d: v128, e: v128, f: v128, g: v128, h: v128): void {
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
    t = t1(h, v128.load(w, KW_AFTER_W), e, f, g); d = i32x4.add(d, t); ab = v128.xor(a, b); h = i32x4.add(t, t2(a, b, ab, bc)); pin(0, h, d);
    w14 = scheduleWord(w, 0, w14);
    t = t1(g, v128.load(w, KW_AFTER_W + 16), d, e, f); c = i32x4.add(c, t); bc = v128.xor(h, a); g = i32x4.add(t, t2(h, a, bc, ab)); pin(0, g, c);
    w15 = scheduleWord(w, 16, w15);
    t = t1(f, v128.load(w, KW_AFTER_W + 32), c, d, e); b = i32x4.add(b, t); ab = v128.xor(g, h); f = i32x4.add(t, t2(g, h, ab, bc)); pin(0, f, b);
    w14 = scheduleWord(w, 32, w14);
    t = t1(e, v128.load(w, KW_AFTER_W + 48), b, c, d); a = i32x4.add(a, t); bc = v128.xor(f, g); e = i32x4.add(t, t2(f, g, bc, ab)); pin(0, e, a);
    w15 = scheduleWord(w, 48, w15);
    t = t1(d, v128.load(w, KW_AFTER_W + 64), a, b, c); h = i32x4.add(h, t); ab = v128.xor(e, f); d = i32x4.add(t, t2(e, f, ab, bc)); pin(0, d, h);
    w14 = scheduleWord(w, 64, w14);
    t = t1(c, v128.load(w, KW_AFTER_W + 80), h, a, b); g = i32x4.add(g, t); bc = v128.xor(d, e); c = i32x4.add(t, t2(d, e, bc, ab)); pin(0, c, g);
    w15 = scheduleWord(w, 80, w15);
    t = t1(b, v128.load(w, KW_AFTER_W + 96), g, h, a); f = i32x4.add(f, t); ab = v128.xor(c, d); b = i32x4.add(t, t2(c, d, ab, bc)); pin(0, b, f);
    w14 = scheduleWord(w, 96, w14);
    t = t1(a, v128.load(w, KW_AFTER_W + 112), f, g, h); e = i32x4.add(e, t); bc = v128.xor(b, c); a = i32x4.add(t, t2(b, c, bc, ab)); pin(0, a, e);
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
    t = t1(h, v128.load(kw, 0), e, f, g); d = i32x4.add(d, t); ab = v128.xor(a, b); h = i32x4.add(t, t2(a, b, ab, bc)); pin(0, h, d);
    t = t1(g, v128.load(kw, 16), d, e, f); c = i32x4.add(c, t); bc = v128.xor(h, a); g = i32x4.add(t, t2(h, a, bc, ab)); pin(0, g, c);
    t = t1(f, v128.load(kw, 32), c, d, e); b = i32x4.add(b, t); ab = v128.xor(g, h); f = i32x4.add(t, t2(g, h, ab, bc)); pin(0, f, b);
    t = t1(e, v128.load(kw, 48), b, c, d); a = i32x4.add(a, t); bc = v128.xor(f, g); e = i32x4.add(t, t2(f, g, bc, ab)); pin(0, e, a);
    t = t1(d, v128.load(kw, 64), a, b, c); h = i32x4.add(h, t); ab = v128.xor(e, f); d = i32x4.add(t, t2(e, f, ab, bc)); pin(0, d, h);
    t = t1(c, v128.load(kw, 80), h, a, b); g = i32x4.add(g, t); bc = v128.xor(d, e); c = i32x4.add(t, t2(d, e, bc, ab)); pin(0, c, g);
    t = t1(b, v128.load(kw, 96), g, h, a); f = i32x4.add(f, t); ab = v128.xor(c, d); b = i32x4.add(t, t2(c, d, ab, bc)); pin(0, b, f);
    t = t1(a, v128.load(kw, 112), f, g, h); e = i32x4.add(e, t); bc = v128.xor(b, c); a = i32x4.add(t, t2(b, c, bc, ab)); pin(0, a, e);
    kw += 8 * 16;
  }
  addLaneStates(SCHED_LANE_H, a, b, c, d, e, f, g, h);
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

// ---- Eight blocks: group 0 = blocks 0-3, group 1 = blocks 4-7, each group four lanes ----

// K[i] + W[i] for a round, K[i] at `k` and W[i] at `w`.
// @ts-ignore: decorator
@inline function kPlusW(k: usize, w: usize): v128 {
  return i32x4.add(v128.load(k), v128.load(w));
}

// Schedule word W[i + 16] = sigma1(W[i + 14]) + W[i + 9] + sigma0(W[i + 1]) + W[i], where `w` is the
// address of W[i]; stores it at W[i + 16].
// @ts-ignore: decorator
@inline function storeScheduleWord(w: usize): void {
  const wi = i32x4.add(
    i32x4.add(smallSigma1x4(v128.load(w, 14 * 16)), v128.load(w, 9 * 16)),
    i32x4.add(smallSigma0x4(v128.load(w, 16)), v128.load(w)),
  );
  v128.store(w, wi, 16 * 16);
}

/**
 * Compresses chunk [p, p + 64) of each of the eight blocks at p + 4096k into the two groups' lane
 * states at SCHED_LANE_H8. Called once per chunk (see compressFour for why a separate function).
 * Round lines read: T1 into t, d += T1, a ^ b for Maj, T1 + T2 into h's variable, pin; names rotate
 * by one each round as in compressFour, the two groups alternate.
 */
function compressEight(p: usize): void {
  const w0 = SCHED_W8, w1 = SCHED_W8 + 1024; // W[0..63] of each group
  for (let q: usize = 0; q < 4; q++) {
    storeTransposed(
      bswap4(v128.load(p + 16 * q)),
      bswap4(v128.load(p + 16 * q + BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 2 * BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 3 * BLOCK_SIZE)),
      w0 + 64 * q, 16,
    );
    storeTransposed(
      bswap4(v128.load(p + 16 * q + 4 * BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 5 * BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 6 * BLOCK_SIZE)),
      bswap4(v128.load(p + 16 * q + 7 * BLOCK_SIZE)),
      w1 + 64 * q, 16,
    );
  }
  const s = SCHED_LANE_H8;
  let a0 = v128.load(s, 0), b0 = v128.load(s, 16), c0 = v128.load(s, 32), d0 = v128.load(s, 48);
  let e0 = v128.load(s, 64), f0 = v128.load(s, 80), g0 = v128.load(s, 96), h0 = v128.load(s, 112);
  let a1 = v128.load(s, 128), b1 = v128.load(s, 144), c1 = v128.load(s, 160), d1 = v128.load(s, 176);
  let e1 = v128.load(s, 192), f1 = v128.load(s, 208), g1 = v128.load(s, 224), h1 = v128.load(s, 240);
  let t: v128, ab0: v128, ab1: v128;
  let bc0 = v128.xor(b0, c0), bc1 = v128.xor(b1, c1);
  let k = KX4, w = SCHED_W8;
  // Rounds 0..47, each also computing W[i + 16] of its group.
  for (let i = 0; i < 6; i++) {
    t = t1(h0, kPlusW(k, w), e0, f0, g0); d0 = i32x4.add(d0, t); ab0 = v128.xor(a0, b0); h0 = i32x4.add(t, t2(a0, b0, ab0, bc0)); pin(0, h0, d0);
    storeScheduleWord(w);
    t = t1(h1, kPlusW(k, w + 1024), e1, f1, g1); d1 = i32x4.add(d1, t); ab1 = v128.xor(a1, b1); h1 = i32x4.add(t, t2(a1, b1, ab1, bc1)); pin(1, h1, d1);
    storeScheduleWord(w + 1024);
    t = t1(g0, kPlusW(k + 16, w + 16), d0, e0, f0); c0 = i32x4.add(c0, t); bc0 = v128.xor(h0, a0); g0 = i32x4.add(t, t2(h0, a0, bc0, ab0)); pin(0, g0, c0);
    storeScheduleWord(w + 16);
    t = t1(g1, kPlusW(k + 16, w + 1040), d1, e1, f1); c1 = i32x4.add(c1, t); bc1 = v128.xor(h1, a1); g1 = i32x4.add(t, t2(h1, a1, bc1, ab1)); pin(1, g1, c1);
    storeScheduleWord(w + 1040);
    t = t1(f0, kPlusW(k + 32, w + 32), c0, d0, e0); b0 = i32x4.add(b0, t); ab0 = v128.xor(g0, h0); f0 = i32x4.add(t, t2(g0, h0, ab0, bc0)); pin(0, f0, b0);
    storeScheduleWord(w + 32);
    t = t1(f1, kPlusW(k + 32, w + 1056), c1, d1, e1); b1 = i32x4.add(b1, t); ab1 = v128.xor(g1, h1); f1 = i32x4.add(t, t2(g1, h1, ab1, bc1)); pin(1, f1, b1);
    storeScheduleWord(w + 1056);
    t = t1(e0, kPlusW(k + 48, w + 48), b0, c0, d0); a0 = i32x4.add(a0, t); bc0 = v128.xor(f0, g0); e0 = i32x4.add(t, t2(f0, g0, bc0, ab0)); pin(0, e0, a0);
    storeScheduleWord(w + 48);
    t = t1(e1, kPlusW(k + 48, w + 1072), b1, c1, d1); a1 = i32x4.add(a1, t); bc1 = v128.xor(f1, g1); e1 = i32x4.add(t, t2(f1, g1, bc1, ab1)); pin(1, e1, a1);
    storeScheduleWord(w + 1072);
    t = t1(d0, kPlusW(k + 64, w + 64), a0, b0, c0); h0 = i32x4.add(h0, t); ab0 = v128.xor(e0, f0); d0 = i32x4.add(t, t2(e0, f0, ab0, bc0)); pin(0, d0, h0);
    storeScheduleWord(w + 64);
    t = t1(d1, kPlusW(k + 64, w + 1088), a1, b1, c1); h1 = i32x4.add(h1, t); ab1 = v128.xor(e1, f1); d1 = i32x4.add(t, t2(e1, f1, ab1, bc1)); pin(1, d1, h1);
    storeScheduleWord(w + 1088);
    t = t1(c0, kPlusW(k + 80, w + 80), h0, a0, b0); g0 = i32x4.add(g0, t); bc0 = v128.xor(d0, e0); c0 = i32x4.add(t, t2(d0, e0, bc0, ab0)); pin(0, c0, g0);
    storeScheduleWord(w + 80);
    t = t1(c1, kPlusW(k + 80, w + 1104), h1, a1, b1); g1 = i32x4.add(g1, t); bc1 = v128.xor(d1, e1); c1 = i32x4.add(t, t2(d1, e1, bc1, ab1)); pin(1, c1, g1);
    storeScheduleWord(w + 1104);
    t = t1(b0, kPlusW(k + 96, w + 96), g0, h0, a0); f0 = i32x4.add(f0, t); ab0 = v128.xor(c0, d0); b0 = i32x4.add(t, t2(c0, d0, ab0, bc0)); pin(0, b0, f0);
    storeScheduleWord(w + 96);
    t = t1(b1, kPlusW(k + 96, w + 1120), g1, h1, a1); f1 = i32x4.add(f1, t); ab1 = v128.xor(c1, d1); b1 = i32x4.add(t, t2(c1, d1, ab1, bc1)); pin(1, b1, f1);
    storeScheduleWord(w + 1120);
    t = t1(a0, kPlusW(k + 112, w + 112), f0, g0, h0); e0 = i32x4.add(e0, t); bc0 = v128.xor(b0, c0); a0 = i32x4.add(t, t2(b0, c0, bc0, ab0)); pin(0, a0, e0);
    storeScheduleWord(w + 112);
    t = t1(a1, kPlusW(k + 112, w + 1136), f1, g1, h1); e1 = i32x4.add(e1, t); bc1 = v128.xor(b1, c1); a1 = i32x4.add(t, t2(b1, c1, bc1, ab1)); pin(1, a1, e1);
    storeScheduleWord(w + 1136);
    k += 8 * 16;
    w += 8 * 16;
  }
  // Rounds 48..63: the schedule is complete.
  for (let i = 0; i < 2; i++) {
    t = t1(h0, kPlusW(k, w), e0, f0, g0); d0 = i32x4.add(d0, t); ab0 = v128.xor(a0, b0); h0 = i32x4.add(t, t2(a0, b0, ab0, bc0)); pin(0, h0, d0);
    t = t1(h1, kPlusW(k, w + 1024), e1, f1, g1); d1 = i32x4.add(d1, t); ab1 = v128.xor(a1, b1); h1 = i32x4.add(t, t2(a1, b1, ab1, bc1)); pin(1, h1, d1);
    t = t1(g0, kPlusW(k + 16, w + 16), d0, e0, f0); c0 = i32x4.add(c0, t); bc0 = v128.xor(h0, a0); g0 = i32x4.add(t, t2(h0, a0, bc0, ab0)); pin(0, g0, c0);
    t = t1(g1, kPlusW(k + 16, w + 1040), d1, e1, f1); c1 = i32x4.add(c1, t); bc1 = v128.xor(h1, a1); g1 = i32x4.add(t, t2(h1, a1, bc1, ab1)); pin(1, g1, c1);
    t = t1(f0, kPlusW(k + 32, w + 32), c0, d0, e0); b0 = i32x4.add(b0, t); ab0 = v128.xor(g0, h0); f0 = i32x4.add(t, t2(g0, h0, ab0, bc0)); pin(0, f0, b0);
    t = t1(f1, kPlusW(k + 32, w + 1056), c1, d1, e1); b1 = i32x4.add(b1, t); ab1 = v128.xor(g1, h1); f1 = i32x4.add(t, t2(g1, h1, ab1, bc1)); pin(1, f1, b1);
    t = t1(e0, kPlusW(k + 48, w + 48), b0, c0, d0); a0 = i32x4.add(a0, t); bc0 = v128.xor(f0, g0); e0 = i32x4.add(t, t2(f0, g0, bc0, ab0)); pin(0, e0, a0);
    t = t1(e1, kPlusW(k + 48, w + 1072), b1, c1, d1); a1 = i32x4.add(a1, t); bc1 = v128.xor(f1, g1); e1 = i32x4.add(t, t2(f1, g1, bc1, ab1)); pin(1, e1, a1);
    t = t1(d0, kPlusW(k + 64, w + 64), a0, b0, c0); h0 = i32x4.add(h0, t); ab0 = v128.xor(e0, f0); d0 = i32x4.add(t, t2(e0, f0, ab0, bc0)); pin(0, d0, h0);
    t = t1(d1, kPlusW(k + 64, w + 1088), a1, b1, c1); h1 = i32x4.add(h1, t); ab1 = v128.xor(e1, f1); d1 = i32x4.add(t, t2(e1, f1, ab1, bc1)); pin(1, d1, h1);
    t = t1(c0, kPlusW(k + 80, w + 80), h0, a0, b0); g0 = i32x4.add(g0, t); bc0 = v128.xor(d0, e0); c0 = i32x4.add(t, t2(d0, e0, bc0, ab0)); pin(0, c0, g0);
    t = t1(c1, kPlusW(k + 80, w + 1104), h1, a1, b1); g1 = i32x4.add(g1, t); bc1 = v128.xor(d1, e1); c1 = i32x4.add(t, t2(d1, e1, bc1, ab1)); pin(1, c1, g1);
    t = t1(b0, kPlusW(k + 96, w + 96), g0, h0, a0); f0 = i32x4.add(f0, t); ab0 = v128.xor(c0, d0); b0 = i32x4.add(t, t2(c0, d0, ab0, bc0)); pin(0, b0, f0);
    t = t1(b1, kPlusW(k + 96, w + 1120), g1, h1, a1); f1 = i32x4.add(f1, t); ab1 = v128.xor(c1, d1); b1 = i32x4.add(t, t2(c1, d1, ab1, bc1)); pin(1, b1, f1);
    t = t1(a0, kPlusW(k + 112, w + 112), f0, g0, h0); e0 = i32x4.add(e0, t); bc0 = v128.xor(b0, c0); a0 = i32x4.add(t, t2(b0, c0, bc0, ab0)); pin(0, a0, e0);
    t = t1(a1, kPlusW(k + 112, w + 1136), f1, g1, h1); e1 = i32x4.add(e1, t); bc1 = v128.xor(b1, c1); a1 = i32x4.add(t, t2(b1, c1, bc1, ab1)); pin(1, a1, e1);
    k += 8 * 16;
    w += 8 * 16;
  }
  addLaneStates(s, a0, b0, c0, d0, e0, f0, g0, h0);
  addLaneStates(s + 128, a1, b1, c1, d1, e1, f1, g1, h1);
}

/** The 64 rounds of the padding chunk on both groups' lane states at SCHED_LANE_H8 (K + W from PAD_KWX4). */
function padEight(): void {
  const s = SCHED_LANE_H8;
  let a0 = v128.load(s, 0), b0 = v128.load(s, 16), c0 = v128.load(s, 32), d0 = v128.load(s, 48);
  let e0 = v128.load(s, 64), f0 = v128.load(s, 80), g0 = v128.load(s, 96), h0 = v128.load(s, 112);
  let a1 = v128.load(s, 128), b1 = v128.load(s, 144), c1 = v128.load(s, 160), d1 = v128.load(s, 176);
  let e1 = v128.load(s, 192), f1 = v128.load(s, 208), g1 = v128.load(s, 224), h1 = v128.load(s, 240);
  let t: v128, kw: v128, ab0: v128, ab1: v128;
  let bc0 = v128.xor(b0, c0), bc1 = v128.xor(b1, c1);
  let k = PAD_KWX4;
  for (let i = 0; i < 8; i++) {
    kw = v128.load(k, 0);
    t = t1(h0, kw, e0, f0, g0); d0 = i32x4.add(d0, t); ab0 = v128.xor(a0, b0); h0 = i32x4.add(t, t2(a0, b0, ab0, bc0)); pin(0, h0, d0);
    t = t1(h1, kw, e1, f1, g1); d1 = i32x4.add(d1, t); ab1 = v128.xor(a1, b1); h1 = i32x4.add(t, t2(a1, b1, ab1, bc1)); pin(1, h1, d1);
    kw = v128.load(k, 16);
    t = t1(g0, kw, d0, e0, f0); c0 = i32x4.add(c0, t); bc0 = v128.xor(h0, a0); g0 = i32x4.add(t, t2(h0, a0, bc0, ab0)); pin(0, g0, c0);
    t = t1(g1, kw, d1, e1, f1); c1 = i32x4.add(c1, t); bc1 = v128.xor(h1, a1); g1 = i32x4.add(t, t2(h1, a1, bc1, ab1)); pin(1, g1, c1);
    kw = v128.load(k, 32);
    t = t1(f0, kw, c0, d0, e0); b0 = i32x4.add(b0, t); ab0 = v128.xor(g0, h0); f0 = i32x4.add(t, t2(g0, h0, ab0, bc0)); pin(0, f0, b0);
    t = t1(f1, kw, c1, d1, e1); b1 = i32x4.add(b1, t); ab1 = v128.xor(g1, h1); f1 = i32x4.add(t, t2(g1, h1, ab1, bc1)); pin(1, f1, b1);
    kw = v128.load(k, 48);
    t = t1(e0, kw, b0, c0, d0); a0 = i32x4.add(a0, t); bc0 = v128.xor(f0, g0); e0 = i32x4.add(t, t2(f0, g0, bc0, ab0)); pin(0, e0, a0);
    t = t1(e1, kw, b1, c1, d1); a1 = i32x4.add(a1, t); bc1 = v128.xor(f1, g1); e1 = i32x4.add(t, t2(f1, g1, bc1, ab1)); pin(1, e1, a1);
    kw = v128.load(k, 64);
    t = t1(d0, kw, a0, b0, c0); h0 = i32x4.add(h0, t); ab0 = v128.xor(e0, f0); d0 = i32x4.add(t, t2(e0, f0, ab0, bc0)); pin(0, d0, h0);
    t = t1(d1, kw, a1, b1, c1); h1 = i32x4.add(h1, t); ab1 = v128.xor(e1, f1); d1 = i32x4.add(t, t2(e1, f1, ab1, bc1)); pin(1, d1, h1);
    kw = v128.load(k, 80);
    t = t1(c0, kw, h0, a0, b0); g0 = i32x4.add(g0, t); bc0 = v128.xor(d0, e0); c0 = i32x4.add(t, t2(d0, e0, bc0, ab0)); pin(0, c0, g0);
    t = t1(c1, kw, h1, a1, b1); g1 = i32x4.add(g1, t); bc1 = v128.xor(d1, e1); c1 = i32x4.add(t, t2(d1, e1, bc1, ab1)); pin(1, c1, g1);
    kw = v128.load(k, 96);
    t = t1(b0, kw, g0, h0, a0); f0 = i32x4.add(f0, t); ab0 = v128.xor(c0, d0); b0 = i32x4.add(t, t2(c0, d0, ab0, bc0)); pin(0, b0, f0);
    t = t1(b1, kw, g1, h1, a1); f1 = i32x4.add(f1, t); ab1 = v128.xor(c1, d1); b1 = i32x4.add(t, t2(c1, d1, ab1, bc1)); pin(1, b1, f1);
    kw = v128.load(k, 112);
    t = t1(a0, kw, f0, g0, h0); e0 = i32x4.add(e0, t); bc0 = v128.xor(b0, c0); a0 = i32x4.add(t, t2(b0, c0, bc0, ab0)); pin(0, a0, e0);
    t = t1(a1, kw, f1, g1, h1); e1 = i32x4.add(e1, t); bc1 = v128.xor(b1, c1); a1 = i32x4.add(t, t2(b1, c1, bc1, ab1)); pin(1, a1, e1);
    k += 8 * 16;
  }
  addLaneStates(s, a0, b0, c0, d0, e0, f0, g0, h0);
  addLaneStates(s + 128, a1, b1, c1, d1, e1, f1, g1, h1);
}

/**
 * SHA-256 of the eight consecutive 4096-byte blocks at `ptr`; the digest of block k (32 bytes,
 * big-endian) goes to out + 32k. Uses the schedule scratch region.
 */
export function hashEightBlocks(ptr: usize, out: usize): void {
  const s = SCHED_LANE_H8;
  for (let j: usize = 0; j < 16; j++) v128.store(s + 16 * j, i32x4.splat(load<u32>(IV + 4 * (j & 7))));
  for (let c: usize = 0; c < BLOCK_SIZE; c += 64) compressEight(ptr + c);
  padEight();
  for (let g: usize = 0; g < 2; g++) {
    const h = s + 128 * g;
    const o = out + 128 * g;
    storeTransposed(bswap4(v128.load(h, 0)), bswap4(v128.load(h, 16)), bswap4(v128.load(h, 32)), bswap4(v128.load(h, 48)), o, 32);
    storeTransposed(bswap4(v128.load(h, 64)), bswap4(v128.load(h, 80)), bswap4(v128.load(h, 96)), bswap4(v128.load(h, 112)), o + 16, 32);
  }
}
