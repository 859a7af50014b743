// The fingerprint index's anchors (assembly/delta/anchors.ts) against a plain JS reference of
// their definition: the positions where the 32-bit gear hash of the bytes so far has its top 9
// bits zero, from the 32nd byte on. The WASM loop hashes eight bytes per step; every anchor it
// indexes must be exactly one of these, at every length and alignment.
import { describe, expect, it } from 'vitest';
import { DeltaCore } from '../../dist/src/wasm/delta.js';
import { BUILDS, seededBytes } from './helpers.js';

const WINDOW = 32;

/** The gear table of initDelta: 256 values of a splitmix64 sequence, high halves. */
function gearTable(): Uint32Array {
  const mask = (1n << 64n) - 1n;
  const table = new Uint32Array(256);
  let x = 0x9e3779b97f4a7c15n;
  for (let i = 0; i < 256; i++) {
    x = (x + 0x9e3779b97f4a7c15n) & mask;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
    z ^= z >> 31n;
    table[i] = Number(z >> 32n);
  }
  return table;
}

/** Offsets of the windows (their first byte) that end at an anchor, by the definition. */
function anchorsRef(data: Uint8Array, gear: Uint32Array): number[] {
  const out: number[] = [];
  let h = 0;
  for (let i = 0; i < data.length; i++) {
    h = ((h << 1) + gear[data[i]!]!) >>> 0;
    if (h >>> 23 === 0 && i + 1 >= WINDOW) out.push(i + 1 - WINDOW);
  }
  return out;
}

/** Offsets of the windows the WASM index finds in `data` after indexing `data` itself. */
function anchorsWasm(delta: DeltaCore, data: Uint8Array): number[] {
  const slots = 1 << 16;
  const keys = delta.alloc(slots * 4);
  const positions = delta.alloc(slots * 8);
  delta.bytes().fill(0, keys, keys + slots * 12);
  const at = delta.put(data);
  delta.exports.anchorIndexAdd(at, data.length, 0, keys, positions, slots - 1, 0, slots / 2);
  // Repeated content adds a key once but hits it at every occurrence.
  const maxHits = Math.ceil(data.length / WINDOW) + 16;
  const out = delta.alloc(maxHits * 16);
  const hits = delta.exports.anchorIndexHits(at, data.length, keys, positions, slots - 1, out, maxHits);
  const view = new DataView(delta.bytes().buffer, out, hits * 16);
  return Array.from({ length: hits }, (_, h) => view.getUint32(h * 16, true));
}

describe.each(BUILDS)('anchors (%s build)', (build) => {
  const delta = new DeltaCore(build);
  const gear = gearTable();

  it.each([0, 1, 7, 31, 32, 33, 4096, 65536 + 5, 1 << 20])('%i bytes: the same anchors as the definition', (length) => {
    const mark = delta.mark();
    try {
      const data = seededBytes(length, length + 11);
      const expected = anchorsRef(data, gear);
      if (length >= 65536) expect(expected.length).toBeGreaterThan(length / 1024); // the test sees anchors
      expect(anchorsWasm(delta, data)).toEqual(expected);
    } finally {
      delta.reset(mark);
    }
  });

  it('low-entropy data (runs, a repeated short pattern) gives the same anchors', () => {
    const mark = delta.mark();
    try {
      const data = new Uint8Array(300_003);
      for (let i = 0; i < data.length; i++) data[i] = i < 100_000 ? 0 : i < 200_000 ? (i % 7) * 37 : (i * 2654435761) >>> 27;
      expect(anchorsWasm(delta, data)).toEqual(anchorsRef(data, gear));
    } finally {
      delta.reset(mark);
    }
  });
});
