// SHA-256 (FIPS 180-4): a scalar streaming hasher over a state slot, and per-block hashing of
// consecutive 4096-byte pieces, eight (or four) full blocks at a time through the v128 path in
// sha256x4.ts.

import { BLOCK_SIZE, DIGEST_SIZE, SCHED_STATE, STATE_COUNT, STATE_H, STATE_PENDING } from './layout';
import { bigSigma0, bigSigma1, ch, IV, K, maj, padScheduleKW, smallSigma0, smallSigma1 } from './sha256common';
import { hashEightBlocks, hashFourBlocks } from './sha256x4';

/**
 * Compresses one 64-byte chunk at `chunk` into the chaining value H[0..7] (u32, native order) at `h`.
 * Kept a separate function called once per chunk, never inlined into a long loop: V8 only switches
 * a function to optimized code on its next call, so a per-chunk call reaches TurboFan quickly.
 * The schedule lives in 16 rolling locals (no memory round-trips), 16 rounds per loop iteration
 * with the working variables renamed instead of moved.
 */
export function compressChunk(h: usize, chunk: usize): void {
  let a = load<u32>(h, 0), b = load<u32>(h, 4), c = load<u32>(h, 8), d = load<u32>(h, 12);
  let e = load<u32>(h, 16), f = load<u32>(h, 20), g = load<u32>(h, 24), hh = load<u32>(h, 28);
  let w0 = bswap<u32>(load<u32>(chunk, 0)), w1 = bswap<u32>(load<u32>(chunk, 4));
  let w2 = bswap<u32>(load<u32>(chunk, 8)), w3 = bswap<u32>(load<u32>(chunk, 12));
  let w4 = bswap<u32>(load<u32>(chunk, 16)), w5 = bswap<u32>(load<u32>(chunk, 20));
  let w6 = bswap<u32>(load<u32>(chunk, 24)), w7 = bswap<u32>(load<u32>(chunk, 28));
  let w8 = bswap<u32>(load<u32>(chunk, 32)), w9 = bswap<u32>(load<u32>(chunk, 36));
  let w10 = bswap<u32>(load<u32>(chunk, 40)), w11 = bswap<u32>(load<u32>(chunk, 44));
  let w12 = bswap<u32>(load<u32>(chunk, 48)), w13 = bswap<u32>(load<u32>(chunk, 52));
  let w14 = bswap<u32>(load<u32>(chunk, 56)), w15 = bswap<u32>(load<u32>(chunk, 60));
  let t: u32;
  let k = K;
  for (let i = 0; i < 4; i++) {
    if (i > 0) {
      // Next 16 schedule words W[16i..16i+15], each replacing the word 16 positions back.
      w0 += smallSigma1(w14) + w9 + smallSigma0(w1);
      w1 += smallSigma1(w15) + w10 + smallSigma0(w2);
      w2 += smallSigma1(w0) + w11 + smallSigma0(w3);
      w3 += smallSigma1(w1) + w12 + smallSigma0(w4);
      w4 += smallSigma1(w2) + w13 + smallSigma0(w5);
      w5 += smallSigma1(w3) + w14 + smallSigma0(w6);
      w6 += smallSigma1(w4) + w15 + smallSigma0(w7);
      w7 += smallSigma1(w5) + w0 + smallSigma0(w8);
      w8 += smallSigma1(w6) + w1 + smallSigma0(w9);
      w9 += smallSigma1(w7) + w2 + smallSigma0(w10);
      w10 += smallSigma1(w8) + w3 + smallSigma0(w11);
      w11 += smallSigma1(w9) + w4 + smallSigma0(w12);
      w12 += smallSigma1(w10) + w5 + smallSigma0(w13);
      w13 += smallSigma1(w11) + w6 + smallSigma0(w14);
      w14 += smallSigma1(w12) + w7 + smallSigma0(w15);
      w15 += smallSigma1(w13) + w8 + smallSigma0(w0);
    }
    // Round r names (a..h) rotated right by r; T1 goes into d's slot, T1 + T2 into h's.
    t = hh + bigSigma1(e) + ch(e, f, g) + load<u32>(k, 0) + w0; d += t; hh = t + bigSigma0(a) + maj(a, b, c);
    t = g + bigSigma1(d) + ch(d, e, f) + load<u32>(k, 4) + w1; c += t; g = t + bigSigma0(hh) + maj(hh, a, b);
    t = f + bigSigma1(c) + ch(c, d, e) + load<u32>(k, 8) + w2; b += t; f = t + bigSigma0(g) + maj(g, hh, a);
    t = e + bigSigma1(b) + ch(b, c, d) + load<u32>(k, 12) + w3; a += t; e = t + bigSigma0(f) + maj(f, g, hh);
    t = d + bigSigma1(a) + ch(a, b, c) + load<u32>(k, 16) + w4; hh += t; d = t + bigSigma0(e) + maj(e, f, g);
    t = c + bigSigma1(hh) + ch(hh, a, b) + load<u32>(k, 20) + w5; g += t; c = t + bigSigma0(d) + maj(d, e, f);
    t = b + bigSigma1(g) + ch(g, hh, a) + load<u32>(k, 24) + w6; f += t; b = t + bigSigma0(c) + maj(c, d, e);
    t = a + bigSigma1(f) + ch(f, g, hh) + load<u32>(k, 28) + w7; e += t; a = t + bigSigma0(b) + maj(b, c, d);
    t = hh + bigSigma1(e) + ch(e, f, g) + load<u32>(k, 32) + w8; d += t; hh = t + bigSigma0(a) + maj(a, b, c);
    t = g + bigSigma1(d) + ch(d, e, f) + load<u32>(k, 36) + w9; c += t; g = t + bigSigma0(hh) + maj(hh, a, b);
    t = f + bigSigma1(c) + ch(c, d, e) + load<u32>(k, 40) + w10; b += t; f = t + bigSigma0(g) + maj(g, hh, a);
    t = e + bigSigma1(b) + ch(b, c, d) + load<u32>(k, 44) + w11; a += t; e = t + bigSigma0(f) + maj(f, g, hh);
    t = d + bigSigma1(a) + ch(a, b, c) + load<u32>(k, 48) + w12; hh += t; d = t + bigSigma0(e) + maj(e, f, g);
    t = c + bigSigma1(hh) + ch(hh, a, b) + load<u32>(k, 52) + w13; g += t; c = t + bigSigma0(d) + maj(d, e, f);
    t = b + bigSigma1(g) + ch(g, hh, a) + load<u32>(k, 56) + w14; f += t; b = t + bigSigma0(c) + maj(c, d, e);
    t = a + bigSigma1(f) + ch(f, g, hh) + load<u32>(k, 60) + w15; e += t; a = t + bigSigma0(b) + maj(b, c, d);
    k += 64;
  }
  store<u32>(h, load<u32>(h, 0) + a, 0);
  store<u32>(h, load<u32>(h, 4) + b, 4);
  store<u32>(h, load<u32>(h, 8) + c, 8);
  store<u32>(h, load<u32>(h, 12) + d, 12);
  store<u32>(h, load<u32>(h, 16) + e, 16);
  store<u32>(h, load<u32>(h, 20) + f, 20);
  store<u32>(h, load<u32>(h, 24) + g, 24);
  store<u32>(h, load<u32>(h, 28) + hh, 28);
}

/**
 * Compresses the padding chunk of a message of exactly 4096 bytes into H at `h`. That chunk is the
 * same for every block (0x80, zeros, bit length 32768), so its schedule plus K is precomputed
 * (padScheduleKW) and the 64 rounds need no schedule work at all.
 */
function compressBlockPadding(h: usize): void {
  let a = load<u32>(h, 0), b = load<u32>(h, 4), c = load<u32>(h, 8), d = load<u32>(h, 12);
  let e = load<u32>(h, 16), f = load<u32>(h, 20), g = load<u32>(h, 24), hh = load<u32>(h, 28);
  let t: u32;
  let kw = padScheduleKW;
  for (let i = 0; i < 8; i++) {
    t = hh + bigSigma1(e) + ch(e, f, g) + load<u32>(kw, 0); d += t; hh = t + bigSigma0(a) + maj(a, b, c);
    t = g + bigSigma1(d) + ch(d, e, f) + load<u32>(kw, 4); c += t; g = t + bigSigma0(hh) + maj(hh, a, b);
    t = f + bigSigma1(c) + ch(c, d, e) + load<u32>(kw, 8); b += t; f = t + bigSigma0(g) + maj(g, hh, a);
    t = e + bigSigma1(b) + ch(b, c, d) + load<u32>(kw, 12); a += t; e = t + bigSigma0(f) + maj(f, g, hh);
    t = d + bigSigma1(a) + ch(a, b, c) + load<u32>(kw, 16); hh += t; d = t + bigSigma0(e) + maj(e, f, g);
    t = c + bigSigma1(hh) + ch(hh, a, b) + load<u32>(kw, 20); g += t; c = t + bigSigma0(d) + maj(d, e, f);
    t = b + bigSigma1(g) + ch(g, hh, a) + load<u32>(kw, 24); f += t; b = t + bigSigma0(c) + maj(c, d, e);
    t = a + bigSigma1(f) + ch(f, g, hh) + load<u32>(kw, 28); e += t; a = t + bigSigma0(b) + maj(b, c, d);
    kw += 32;
  }
  store<u32>(h, load<u32>(h, 0) + a, 0);
  store<u32>(h, load<u32>(h, 4) + b, 4);
  store<u32>(h, load<u32>(h, 8) + c, 8);
  store<u32>(h, load<u32>(h, 12) + d, 12);
  store<u32>(h, load<u32>(h, 16) + e, 16);
  store<u32>(h, load<u32>(h, 20) + f, 20);
  store<u32>(h, load<u32>(h, 24) + g, 24);
  store<u32>(h, load<u32>(h, 28) + hh, 28);
}

/** Writes H[0..7] at `h` to `out` as the 32-byte big-endian digest. */
// @ts-ignore: decorator
@inline function storeDigest(h: usize, out: usize): void {
  for (let i: usize = 0; i < 32; i += 4) store<u32>(out + i, bswap<u32>(load<u32>(h + i)));
}

/** Resets the state slot at `state` (layout in layout.ts) to the empty message. */
export function sha256Init(state: usize): void {
  memory.copy(state + STATE_H, IV, 32);
  store<u64>(state + STATE_COUNT, 0);
}

/**
 * Absorbs `len` bytes at `ptr` into the state slot at `state`. Any split of a message into
 * update calls gives the same digest. `ptr` may be anywhere in memory except inside the slot.
 */
export function sha256Update(state: usize, ptr: usize, len: usize): void {
  if (len == 0) return;
  const count = load<u64>(state + STATE_COUNT);
  store<u64>(state + STATE_COUNT, count + <u64>len);
  const pendingBuf = state + STATE_PENDING;
  let pending = <usize>(count & 63);
  if (pending != 0) {
    const take = min<usize>(64 - pending, len);
    memory.copy(pendingBuf + pending, ptr, take);
    pending += take;
    ptr += take;
    len -= take;
    if (pending < 64) return;
    compressChunk(state + STATE_H, pendingBuf);
  }
  while (len >= 64) {
    compressChunk(state + STATE_H, ptr);
    ptr += 64;
    len -= 64;
  }
  if (len != 0) memory.copy(pendingBuf, ptr, len);
}

/**
 * Pads and finishes the message in the state slot at `state` and writes its 32-byte digest to
 * `out`. The slot is left finished (call sha256Init before reusing it).
 */
export function sha256Final(state: usize, out: usize): void {
  const count = load<u64>(state + STATE_COUNT);
  const buf = state + STATE_PENDING;
  let pending = <usize>(count & 63);
  store<u8>(buf + pending, 0x80);
  pending++;
  if (pending > 56) {
    memory.fill(buf + pending, 0, 64 - pending);
    compressChunk(state + STATE_H, buf);
    pending = 0;
  }
  memory.fill(buf + pending, 0, 56 - pending);
  store<u64>(buf + 56, bswap<u64>(count << 3));
  compressChunk(state + STATE_H, buf);
  storeDigest(state + STATE_H, out);
}

/** SHA-256 of one piece of at most BLOCK_SIZE bytes, through the scalar path, digest to `out`. */
function hashPieceScalar(ptr: usize, len: usize, out: usize): void {
  const state = SCHED_STATE;
  if (len == BLOCK_SIZE) {
    // A full block: 64 chunks, then the fixed padding chunk with its precomputed schedule.
    memory.copy(state + STATE_H, IV, 32);
    for (let i: usize = 0; i < BLOCK_SIZE; i += 64) compressChunk(state + STATE_H, ptr + i);
    compressBlockPadding(state + STATE_H);
    storeDigest(state + STATE_H, out);
    return;
  }
  sha256Init(state);
  sha256Update(state, ptr, len);
  sha256Final(state, out);
}

/**
 * SHA-256 of each consecutive BLOCK_SIZE-byte piece of [ptr, ptr + len) (the last piece may be
 * short); the 32-byte big-endian digests go consecutively to `out`. Returns the number of pieces,
 * ceil(len / 4096) (0 for len 0). `out` must not overlap the input or the schedule scratch.
 */
export function hashBlocks(ptr: usize, len: usize, out: usize): i32 {
  let count = 0;
  // Eight full blocks at a time through the multi-buffer v128 path (two groups of four lanes), then
  // four if that many are left.
  while (len >= 8 * BLOCK_SIZE) {
    hashEightBlocks(ptr, out);
    ptr += 8 * BLOCK_SIZE;
    len -= 8 * BLOCK_SIZE;
    out += 8 * DIGEST_SIZE;
    count += 8;
  }
  if (len >= 4 * BLOCK_SIZE) {
    hashFourBlocks(ptr, out);
    ptr += 4 * BLOCK_SIZE;
    len -= 4 * BLOCK_SIZE;
    out += 4 * DIGEST_SIZE;
    count += 4;
  }
  // Up to three full blocks and a short last piece through the scalar path.
  while (len != 0) {
    const n = min<usize>(len, BLOCK_SIZE);
    hashPieceScalar(ptr, n, out);
    ptr += n;
    len -= n;
    out += DIGEST_SIZE;
    count++;
  }
  return count;
}
