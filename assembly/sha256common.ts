// SHA-256 constants and round functions shared by the scalar and the 4-lane path (FIPS 180-4).

/** Round constants K[0..63] (FIPS 180-4 section 4.2.2): address of 64 u32 in static data. */
export const K: usize = memory.data<u32>([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], 16);

/** Initial hash value H(0) (FIPS 180-4 section 5.3.3): address of 8 u32 in static data. */
export const IV: usize = memory.data<u32>([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
], 16);

// The scalar round functions (FIPS 180-4 section 4.1.2); rotr<u32> is one i32.rotr instruction.
/** Sigma0(x) = rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22). */
// @ts-ignore: decorator
@inline export function bigSigma0(x: u32): u32 { return rotr<u32>(x, 2) ^ rotr<u32>(x, 13) ^ rotr<u32>(x, 22); }
/** Sigma1(x) = rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25). */
// @ts-ignore: decorator
@inline export function bigSigma1(x: u32): u32 { return rotr<u32>(x, 6) ^ rotr<u32>(x, 11) ^ rotr<u32>(x, 25); }
/** sigma0(x) = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3). */
// @ts-ignore: decorator
@inline export function smallSigma0(x: u32): u32 { return rotr<u32>(x, 7) ^ rotr<u32>(x, 18) ^ (x >>> 3); }
/** sigma1(x) = rotr(x, 17) ^ rotr(x, 19) ^ (x >>> 10). */
// @ts-ignore: decorator
@inline export function smallSigma1(x: u32): u32 { return rotr<u32>(x, 17) ^ rotr<u32>(x, 19) ^ (x >>> 10); }
/** Ch(e, f, g) = (e & f) ^ (~e & g), in its 3-operation form. */
// @ts-ignore: decorator
@inline export function ch(e: u32, f: u32, g: u32): u32 { return g ^ (e & (f ^ g)); }
/** Maj(a, b, c) = (a & b) ^ (a & c) ^ (b & c), in a 4-operation form. */
// @ts-ignore: decorator
@inline export function maj(a: u32, b: u32, c: u32): u32 { return (a & b) | (c & (a | b)); }

/**
 * K[i] + W[i] for the padding chunk of a message of exactly 4096 bytes: W[0] = 0x80000000,
 * W[1..14] = 0, W[15] = 32768 (the bit length). That chunk is the same for every 4096-byte block,
 * so both paths run its 64 rounds from this table and skip the schedule. 256 bytes, filled once
 * when the module starts.
 */
export const padScheduleKW: usize = memory.data(256, 16);

function initPadSchedule(): void {
  const w = memory.data(256, 16); // W[0..63] of the padding chunk, only needed here
  store<u32>(w, 0x80000000, 0);
  for (let i: usize = 1; i < 15; i++) store<u32>(w + 4 * i, 0);
  store<u32>(w, 4096 * 8, 60);
  for (let i: usize = 16; i < 64; i++) {
    const wi = smallSigma1(load<u32>(w + 4 * (i - 2))) + load<u32>(w + 4 * (i - 7))
      + smallSigma0(load<u32>(w + 4 * (i - 15))) + load<u32>(w + 4 * (i - 16));
    store<u32>(w + 4 * i, wi);
  }
  for (let i: usize = 0; i < 64; i++) {
    store<u32>(padScheduleKW + 4 * i, load<u32>(K + 4 * i) + load<u32>(w + 4 * i));
  }
}
initPadSchedule();
