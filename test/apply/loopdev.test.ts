// Applying onto real block devices (loop devices, root only): the image lands at the start of the
// device, the rest of the device keeps its bytes, and `fastpatch hash` agrees with the manifest.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, formatPublicKey, generateFullPayload, inspectPayload, readPayloadChunks } from '../../dist/src/index.js';
import { runCli } from '../helpers/cli.js';
import {
  MiB,
  blockListHashRef,
  buildPayload,
  firstDifference,
  makeKeyPair,
  mixedImage,
  randomBytes,
  readHead,
  removeDir,
  rootOrWarn,
  tempDir,
  withLoopDevice,
  writePatternFile,
  type BuiltPayload,
} from '../helpers/payloads.js';

const signer = makeKeyPair();
const canRun = rootOrWarn('loop device tests');

interface DeviceCase {
  name: string;
  imageSize: number;
  deviceSize: number;
  sectorSize?: number;
  via: 'library' | 'cli';
}

const CASES: DeviceCase[] = [
  { name: '8 MiB image on a 12 MiB device (512-byte sectors)', imageSize: 8 * MiB, deviceSize: 12 * MiB, via: 'library' },
  { name: '8 MiB + 1234 byte image on a 12 MiB device with 4096-byte sectors', imageSize: 8 * MiB + 1234, deviceSize: 12 * MiB, sectorSize: 4096, via: 'library' },
  { name: '8 MiB + 1234 byte image on a 9 MiB device, via the CLI', imageSize: 8 * MiB + 1234, deviceSize: 9 * MiB, via: 'cli' },
  { name: 'image exactly the device size (8 MiB, 4096-byte sectors), via the CLI', imageSize: 8 * MiB, deviceSize: 8 * MiB, sectorSize: 4096, via: 'cli' },
];

describe.runIf(canRun)('loop devices (root)', () => {
  let dir: string;
  let pubPath: string;
  const payloads = new Map<number, BuiltPayload>();

  beforeAll(async () => {
    dir = await tempDir('loopdev');
    pubPath = join(dir, 'signer.pub');
    await fsp.writeFile(pubPath, formatPublicKey(signer.key));
    for (const size of new Set(CASES.map((c) => c.imageSize))) {
      // Mostly incompressible, so the payload is several MiB too, with zero runs and text around it.
      const image = mixedImage(size, 50 + (size % 97));
      image.set(randomBytes(6 * MiB, 51), MiB);
      payloads.set(size, await buildPayload(dir, `image-${size}`, image, { keys: [signer.key] }));
    }
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it.each(CASES)('$name', async ({ name, imageSize, deviceSize, sectorSize, via }) => {
    const built = payloads.get(imageSize)!;
    expect(built.payload.length, 'payload should be several MiB').toBeGreaterThan(6 * MiB);
    expect(built.result.operations['ZERO']?.count, 'ZERO operations must overwrite the pattern too').toBeGreaterThan(0);
    const backing = join(dir, `${name.replace(/\W+/g, '_')}.backing`);
    const before = await writePatternFile(backing, deviceSize, 0x6b);
    await withLoopDevice(backing, sectorSize ? { sectorSize } : {}, async (device) => {
      if (via === 'library') {
        const result = await applyPayload(readPayloadChunks(built.payloadPath), { trustedKeys: [signer.pub], target: device });
        expect(result).toMatchObject({ targetSize: imageSize, targetHash: built.result.targetHash, bytesWritten: imageSize });
      } else {
        const run = await runCli(['apply', built.payloadPath, '--target', device, '--pubkey', pubPath, '--json']);
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        expect(JSON.parse(run.stdout)).toMatchObject({ target: device, targetSize: imageSize, targetHash: built.result.targetHash });
      }

      const onDevice = await readHead(device, deviceSize);
      expect(onDevice.length).toBe(deviceSize);
      expect(firstDifference(onDevice.subarray(0, imageSize), built.image)).toBe(-1);
      expect(firstDifference(onDevice.subarray(imageSize), before.subarray(imageSize))).toBe(-1);

      const info = await inspectPayload(readPayloadChunks(built.payloadPath));
      const hashed = await runCli(['hash', device, '--size', String(imageSize), '--json']);
      expect(hashed.code, hashed.stderr).toBe(0);
      expect(JSON.parse(hashed.stdout)).toEqual({ image: device, size: imageSize, hash: info.targetHash });
      const human = await runCli(['hash', device, '--size', String(imageSize)]);
      expect(human.stdout.trim()).toBe(`blocklist-sha256:${info.targetHash}  ${device} (${imageSize} bytes; the hash a manifest records, not the file's SHA-256)`);
      // Without --size the whole device is hashed: its size comes from sysfs.
      const whole = await runCli(['hash', device, '--json']);
      expect(JSON.parse(whole.stdout)).toMatchObject({ size: deviceSize, hash: blockListHashRef(onDevice) });
    });
    // The backing file holds what the device showed.
    const after = await fsp.readFile(backing);
    expect(firstDifference(after.subarray(0, imageSize), built.image)).toBe(-1);
    await fsp.rm(backing, { force: true });
  });

  it('generates a payload from a loop device and applies it onto another', async () => {
    const image = mixedImage(4 * MiB, 60);
    const source = join(dir, 'source.backing');
    await fsp.writeFile(source, image);
    const targetBacking = join(dir, 'target.backing');
    const before = await writePatternFile(targetBacking, 6 * MiB, 0x21);
    await withLoopDevice(source, {}, async (sourceDevice) => {
      const out = join(dir, 'from-device.fpay');
      const gen = await generateFullPayload({ target: sourceDevice, keys: [signer.key], version: '2.0.0', out });
      expect(gen.targetSize).toBe(image.length);
      expect(gen.targetHash).toBe(blockListHashRef(image));
      await withLoopDevice(targetBacking, { sectorSize: 4096 }, async (targetDevice) => {
        await applyPayload(readPayloadChunks(out), { trustedKeys: [signer.pub], target: targetDevice });
        const onDevice = await readHead(targetDevice, 6 * MiB);
        expect(firstDifference(onDevice.subarray(0, image.length), image)).toBe(-1);
        expect(firstDifference(onDevice.subarray(image.length), before.subarray(image.length))).toBe(-1);
      });
    });
  });
});
