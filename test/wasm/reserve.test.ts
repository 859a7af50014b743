// The delta module's memory is sized at setup (DeltaCore.reserve): a diff worker reserves what the
// largest job needs, the generator what its indexes' passes need, and neither grows mid-run.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../../dist/src/format/constants.js';
import { DIFF_OP_BLOCKS } from '../../dist/src/generate/delta-plan.js';
import { SourceIndex } from '../../dist/src/generate/source-index.js';
import { openImageForRead } from '../../dist/src/io/device.js';
import { WasmCore } from '../../dist/src/wasm/core.js';
import { DeltaCore } from '../../dist/src/wasm/delta.js';
import { randomBytes, removeDir, tempDir, textBytes } from '../helpers/payloads.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('reserve');
});
afterAll(async () => {
  await removeDir(dir);
});

describe('delta module memory sized at setup', () => {
  const source = textBytes(2 * 1024 * 1024, 901);
  const target = Uint8Array.from(source.subarray(0, 512 * 1024));
  target.set(randomBytes(4096, 902), 8192);

  it('without a reservation diffEncode grows the memory (so the next check can fail)', () => {
    const delta = new DeltaCore();
    const before = delta.memoryBytes;
    expect(delta.diffEncode(source, target)).toBeDefined();
    expect(delta.memoryBytes).toBeGreaterThan(before);
  });

  it('after reserve(diffEncodeBytes(...)) a diffEncode of those lengths grows nothing', () => {
    const delta = new DeltaCore();
    delta.reserve(DeltaCore.diffEncodeBytes(source.length, target.length));
    const reserved = delta.memoryBytes;
    expect(delta.diffEncode(source, target)).toBeDefined();
    expect(delta.x86Filter(target, 'encode').length).toBe(target.length);
    expect(delta.memoryBytes).toBe(reserved);
  });

  it('refuses a reservation that is not a byte count', () => {
    const delta = new DeltaCore();
    expect(() => delta.reserve(-1)).toThrow(RangeError);
    expect(() => delta.reserve(1.5)).toThrow(RangeError);
  });

  it('the source index: building it and looking up a full diff range grow nothing past its setup', async () => {
    const path = join(dir, 'old.img');
    await fsp.writeFile(path, textBytes(6 * 1024 * 1024 + 1234, 903));
    const image = await openImageForRead(path);
    try {
      const core = WasmCore.load();
      const delta = new DeltaCore();
      const index = await SourceIndex.build(delta, core, image);
      const built = delta.memoryBytes;
      expect(built, 'indexing the windows grew the memory past its setup').toBe(index.setupBytes);
      const range = textBytes(DIFF_OP_BLOCKS * BLOCK_SIZE, 904);
      const votes = index.anchorIndex.votes(range, index.blocks);
      expect(votes.size).toBeGreaterThan(0);
      expect(delta.memoryBytes).toBe(built);
    } finally {
      await image.handle.close();
    }
  });
});
