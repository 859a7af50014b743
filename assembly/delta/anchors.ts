// The source fingerprint index: content-defined anchors of a rolling hash, so that the same bytes
// are sampled wherever they sit in the source or the target, whatever their offset.
//
// Rolling hash: gear (h = (h << 1) + GEAR[byte]) on 32 bits, so h depends on the last 32 bytes
// only. An anchor is a position whose h has its top ANCHOR_BITS bits zero: 1 position in 512 on
// average, about 8 per 4 KiB block. Its key is a stronger hash of the 32-byte window ending there
// (the gear value's low bits depend on few bytes), and the index maps key -> source position.

import { GEAR_OFFSET } from './layout';

/** Bytes of the window that an anchor's key covers (and the rolling hash's memory). */
export const WINDOW: usize = 32;
/** 1 anchor per 2^9 = 512 positions on average. */
const ANCHOR_SHIFT: u32 = 32 - 9;

/** Fills the gear table from a fixed splitmix64 sequence (the same on every machine). */
export function initDelta(): void {
  let x: u64 = 0x9e3779b97f4a7c15;
  for (let i: usize = 0; i < 256; i++) {
    x += 0x9e3779b97f4a7c15;
    let z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    z ^= z >> 31;
    store<u32>(GEAR_OFFSET + (i << 2), <u32>(z >> 32));
  }
}

@inline function gear(b: u32): u32 {
  return load<u32>(GEAR_OFFSET + (<usize>b << 2));
}

/** Gear hash state carried between skipToAnchor's calls (AssemblyScript returns one value). */
let rolling: u32 = 0;

/**
 * From position `i` with the hash `rolling` of the bytes before it, hashes on to the first
 * position p >= i where an anchor may end (the hash of bytes ..p has its top bits zero) and
 * returns p, with `rolling` updated through byte p; returns `len` when none is left. Eight bytes
 * per step while none of them is one (one load, the minimum of the eight hashes): the byte-wise
 * loop ran at ~400 MB/s and was a third of a 64 MiB delta's time before the first diff job.
 */
@inline function skipToAnchor(data: usize, len: usize, i: usize): usize {
  let h = rolling;
  while (i + 8 <= len) {
    const w = load<u64>(data + i);
    const h1 = (h << 1) + gear(<u32>(w & 0xff));
    const h2 = (h1 << 1) + gear(<u32>((w >> 8) & 0xff));
    const h3 = (h2 << 1) + gear(<u32>((w >> 16) & 0xff));
    const h4 = (h3 << 1) + gear(<u32>((w >> 24) & 0xff));
    const h5 = (h4 << 1) + gear(<u32>((w >> 32) & 0xff));
    const h6 = (h5 << 1) + gear(<u32>((w >> 40) & 0xff));
    const h7 = (h6 << 1) + gear(<u32>((w >> 48) & 0xff));
    const h8 = (h7 << 1) + gear(<u32>(w >> 56));
    const m = min(min(min(h1, h2), min(h3, h4)), min(min(h5, h6), min(h7, h8)));
    if (m >> ANCHOR_SHIFT == 0) break;
    h = h8;
    i += 8;
  }
  for (; i < len; i++) {
    h = (h << 1) + gear(load<u8>(data + i));
    if (h >> ANCHOR_SHIFT == 0) break;
  }
  rolling = h;
  return i;
}

/** Key of the WINDOW bytes ending at `end` (exclusive): never 0, which marks an empty slot. */
@inline function windowKey(end: usize): u32 {
  const p = end - WINDOW;
  let h: u64 = load<u64>(p) * 0x9e3779b97f4a7c15;
  h = (h ^ (h >> 29) ^ load<u64>(p, 8)) * 0xbf58476d1ce4e5b9;
  h = (h ^ (h >> 32) ^ load<u64>(p, 16)) * 0x94d049bb133111eb;
  h = (h ^ (h >> 29) ^ load<u64>(p, 24)) * 0x9e3779b97f4a7c15;
  const k = <u32>(h >> 32);
  return k == 0 ? 1 : k;
}

/**
 * Adds the anchors of [data, data + len), which starts at byte `baseF` of the source, to the table:
 * `keys` (u32 per slot, 0 = empty) and `positions` (u64 per slot), `mask` + 1 slots. A key already
 * present keeps its first position (repeated content needs one). Stops adding once `count` reaches
 * `limit`, so the table never fills. Returns the new count.
 */
export function anchorIndexAdd(data: usize, len: usize, baseF: f64, keys: usize, positions: usize, mask: u32, count: u32, limit: u32): u32 {
  // The position arrives as f64 (exact below 2^53) so that JS passes a plain number.
  const base = <u64>baseF;
  rolling = 0;
  for (let i: usize = skipToAnchor(data, len, 0); i < len; i = skipToAnchor(data, len, i + 1)) {
    if (i + 1 < WINDOW) continue;
    if (count >= limit) return count;
    const key = windowKey(data + i + 1);
    let slot = key & mask;
    while (true) {
      const k = load<u32>(keys + (<usize>slot << 2));
      if (k == 0) {
        store<u32>(keys + (<usize>slot << 2), key);
        store<u64>(positions + (<usize>slot << 3), base + <u64>(i + 1 - WINDOW));
        count++;
        break;
      }
      if (k == key) break;
      slot = (slot + 1) & mask;
    }
  }
  return count;
}

/**
 * Looks up every anchor of [data, data + len) (a piece of the target) and writes one hit per anchor
 * found in the index: (u32 offset in the piece, u32 pad, u64 source position) of the window's
 * first byte, 16 bytes each, at most `maxHits`. Returns the number of hits.
 */
export function anchorIndexHits(data: usize, len: usize, keys: usize, positions: usize, mask: u32, out: usize, maxHits: u32): u32 {
  let hits: u32 = 0;
  rolling = 0;
  for (let i: usize = skipToAnchor(data, len, 0); i < len; i = skipToAnchor(data, len, i + 1)) {
    if (i + 1 < WINDOW) continue;
    const key = windowKey(data + i + 1);
    let slot = key & mask;
    while (true) {
      const k = load<u32>(keys + (<usize>slot << 2));
      if (k == 0) break;
      if (k == key) {
        if (hits >= maxHits) return hits;
        const rec = out + (<usize>hits << 4);
        store<u32>(rec, <u32>(i + 1 - WINDOW));
        store<u32>(rec, 0, 4);
        store<u64>(rec, load<u64>(positions + (<usize>slot << 3)), 8);
        hits++;
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  return hits;
}
