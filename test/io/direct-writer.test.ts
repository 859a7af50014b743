// Writes past the page cache (O_DIRECT) onto real loop devices (root only): what lands on the device
// is exactly what was written, aligned writes go direct and the rest through the page cache, a
// target that is a file or starts off a 4 KiB boundary gets no direct writer, and an apply whose
// operations read earlier target blocks back (target dictionaries) reads what the direct writes
// put there.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectWriter, SLOT_BYTES, SLOTS } from '../../dist/src/io/direct-writer.js';
import { imageRange, openExistingTarget } from '../../dist/src/io/device.js';
import { applyPayload, readPayloadChunks } from '../../dist/src/index.js';
import { buildDelta } from '../helpers/delta.js';
import { BLOCK, MiB, firstDifference, makeKeyPair, randomBytes, readHead, removeDir, rootOrWarn, tempDir, textBytes, withLoopDevice, writePatternFile } from '../helpers/payloads.js';

const canRun = rootOrWarn('direct write tests');
let dir: string;
beforeAll(async () => {
  dir = await tempDir('direct-writer');
});
afterAll(async () => {
  await removeDir(dir);
});

async function opened(path: string) {
  const image = await openExistingTarget(path);
  if (!image) throw new Error(`${path} did not open`);
  return image;
}

describe('DirectWriter', () => {
  it('gives no writer for a regular file: files keep the page cache', async () => {
    const file = join(dir, 'plain.img');
    await fsp.writeFile(file, new Uint8Array(64 * BLOCK));
    const image = await opened(file);
    try {
      expect(await DirectWriter.open(image)).toBeUndefined();
    } finally {
      await image.handle.close();
    }
  });

  describe.runIf(canRun)('on loop devices (root)', () => {
    it.each([512, 4096])('writes aligned data direct and a short tail through the cache (%i-byte sectors)', async (sectorSize) => {
      const backing = join(dir, `aligned-${sectorSize}.backing`);
      const size = 24 * MiB;
      const before = await writePatternFile(backing, size, 0x3c);
      const expected = Uint8Array.from(before);
      await withLoopDevice(backing, { sectorSize }, async (device) => {
        const image = await opened(device);
        const writer = await DirectWriter.open(image);
        try {
          expect(writer).toBeDefined();
          // More than all slots hold, in concurrent writes of sizes that are not slot multiples.
          const big = randomBytes(SLOTS * SLOT_BYTES + 3 * BLOCK, 61);
          const small = randomBytes(5 * BLOCK, 62);
          const tail = randomBytes(1234, 63);
          const at = { big: BLOCK, small: 20 * MiB, tail: 22 * MiB };
          await Promise.all([writer!.write(big, at.big), writer!.write(small, at.small), writer!.write(tail, at.tail)]);
          expect(writer!.written).toEqual({ direct: big.length + small.length, buffered: tail.length });
          await writer!.close();
          await image.handle.sync();
          expected.set(big, at.big);
          expected.set(small, at.small);
          expected.set(tail, at.tail);
          expect(firstDifference(await readHead(device, size), expected)).toBe(-1);
        } finally {
          await writer?.close();
          await image.handle.close();
        }
      });
      // And the file under the device holds it too.
      expect(firstDifference(await fsp.readFile(backing), expected)).toBe(-1);
      await fsp.rm(backing, { force: true });
    });

    it('gives no writer for a range of a device that starts off a 4 KiB boundary', async () => {
      const backing = join(dir, 'range.backing');
      await writePatternFile(backing, 4 * MiB, 0x11);
      await withLoopDevice(backing, {}, async (device) => {
        const image = await opened(device);
        try {
          expect(await DirectWriter.open(imageRange(image, 512, MiB))).toBeUndefined();
          const aligned = await DirectWriter.open(imageRange(image, 8192, MiB));
          expect(aligned).toBeDefined();
          const data = randomBytes(2 * BLOCK, 64);
          await aligned!.write(data, BLOCK);
          await aligned!.close();
          expect(firstDifference((await readHead(device, 8192 + 3 * BLOCK)).subarray(8192 + BLOCK), data)).toBe(-1);
        } finally {
          await image.handle.close();
        }
      });
      await fsp.rm(backing, { force: true });
    });

    it('an apply that reads earlier target blocks back reads what the direct writes put there', async () => {
      const signer = makeKeyPair();
      const source = textBytes(24 * MiB, 8201);
      const fresh = randomBytes(256 * BLOCK, 8202);
      const nearCopy = Uint8Array.from(fresh);
      for (let i = 555; i < nearCopy.length; i += 7000) nearCopy[i]! ^= 0x33;
      const target = Uint8Array.from(source);
      target.set(fresh, 100 * BLOCK);
      target.set(nearCopy, 5200 * BLOCK);
      const d = await buildDelta(dir, 'readback', source, target, { keys: [signer.key] });
      expect(d.manifest.operations.some((op) => (op.targetDictionary?.length ?? 0) > 0), 'the delta must read target blocks back').toBe(true);
      const backing = join(dir, 'readback.backing');
      await fsp.writeFile(backing, source);
      await withLoopDevice(backing, {}, async (device) => {
        // The device's page cache holds the old bytes first: direct writes must not leave them stale.
        expect(firstDifference(await readHead(device, target.length), source)).toBe(-1);
        const result = await applyPayload(readPayloadChunks(d.payloadPath), { trustedKeys: [signer.pub], source: d.sourcePath, target: device });
        expect(result.bytesWritten).toBe(target.length);
        expect(firstDifference(await readHead(device, target.length), target)).toBe(-1);
      });
      execFileSync('cmp', ['-s', backing, d.targetPath]);
      await fsp.rm(backing, { force: true });
    });
  });
});
