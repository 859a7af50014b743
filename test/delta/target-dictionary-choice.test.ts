// The generator's target dictionaries (format 2): new data that repeats an earlier part of the new
// image far away (more than 16 MiB before it, as a package's files land in an image updated in
// place) is encoded against those earlier blocks, found by content through the target's
// fingerprint index, and the payload applies byte for byte, also through verify.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format, readPayloadChunks } from '../../dist/src/index.js';
import { blocksOf, buildDelta, opName } from '../helpers/delta.js';
import { BLOCK, makeKeyPair, randomBytes, removeDir, sameBytes, tempDir, textBytes } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
beforeAll(async () => {
  dir = await tempDir('target-dictionary-choice');
});
afterAll(async () => {
  await removeDir(dir);
});

const MiB = 1024 * 1024;
/** Where the new data first appears, and where its near-copy does (20 MiB later). */
const FIRST = 100;
const AGAIN = 5200;
const NEW_BLOCKS = 256;

describe('target dictionaries chosen by content', () => {
  it('a far repeat of new data costs a fraction of the data, and applies byte for byte', async () => {
    const source = textBytes(24 * MiB, 8101);
    const fresh = randomBytes(NEW_BLOCKS * BLOCK, 8102); // incompressible: only a dictionary helps
    const nearCopy = Uint8Array.from(fresh);
    for (let i = 777; i < nearCopy.length; i += 9000) nearCopy[i]! ^= 0x5a;
    const target = Uint8Array.from(source);
    target.set(fresh, FIRST * BLOCK);
    target.set(nearCopy, AGAIN * BLOCK);

    const d = await buildDelta(dir, 'far-repeat', source, target, { keys: [signer.key] });
    // The operation that writes the near-copy takes the first copy's blocks as its dictionary.
    const writer = d.manifest.operations.find((op) => op.dstExtents[0]!.startBlock <= AGAIN && AGAIN < op.dstExtents[0]!.startBlock + op.dstExtents[0]!.blockCount);
    expect(writer && opName(writer)).toBe('SOURCE_ZSTD');
    const named = blocksOf(writer!.targetDictionary ?? []);
    expect(named.filter((b) => b >= FIRST && b < FIRST + NEW_BLOCKS).length).toBeGreaterThan(NEW_BLOCKS * 0.9);
    expect(named.every((b) => b < writer!.dstExtents[0]!.startBlock)).toBe(true);
    // The new data is paid for once: without the dictionary the near-copy alone would cost 1 MiB.
    expect(d.payload.length).toBeLessThan(fresh.length * 1.25);

    const out = join(dir, 'far-repeat.out.img');
    await fsp.writeFile(out, source);
    await applyPayload(readPayloadChunks(d.payloadPath), { trustedKeys: [signer.pub], source: d.sourcePath, target: out });
    expect(sameBytes(await fsp.readFile(out), target)).toBe(true);
    const verified = await applyPayload(readPayloadChunks(d.payloadPath), { trustedKeys: [signer.pub], source: d.sourcePath });
    expect(verified.bytesWritten).toBe(0);
  });

  it('format 1 names no target blocks (devices on fastpatch 0.1 cannot read them)', async () => {
    const source = textBytes(2 * MiB, 8103);
    const target = Uint8Array.from(source);
    target.set(randomBytes(64 * BLOCK, 8104), 10 * BLOCK);
    target.set(randomBytes(64 * BLOCK, 8104), 300 * BLOCK);
    const d = await buildDelta(dir, 'v1', source, target, { keys: [signer.key], formatVersion: 1 });
    expect(d.manifest.operations.some((op) => (op.targetDictionary?.length ?? 0) > 0 || op.type === format.OpType.SOURCE_ZSTD)).toBe(false);
  });
});
