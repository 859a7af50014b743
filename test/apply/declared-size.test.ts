// Issue 11, class 6: a signed payload of a few ZERO operations may declare any image size up to
// 2^53 bytes. Checking its image hash costs one digest per 4 KiB block (days for 2^53), and a new
// target file was created at that size. The declared size must be refused against something real
// (the target's size, the free space for a new file, --max-image-size without a target) before any
// work that grows with it: these tests would run for days, or leave a huge sparse file, without it.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format, formatPublicKey, type ApplyOptions } from '../../dist/src/index.js';
import { BLOCK, MiB, assemblePayload, blockListHashRef, chunksOf, expectFastPatchError, makeKeyPair, patternBytes, rejectionOf, removeDir, tempDir } from '../helpers/payloads.js';
import { runCli } from '../helpers/cli.js';

const signer = makeKeyPair();
const GiB = 1024 * MiB;
/** The largest size the format allows (LIMITS.MAX_IMAGE_SIZE), and others the attack may pick. */
const HUGE = [Number.MAX_SAFE_INTEGER - BLOCK, 2 ** 53 - 2 * BLOCK, 2 ** 50 + 123, 2 ** 44, 65 * GiB];
const MAX_EXTENT_BLOCKS = 2 ** 32 - 1;
let dir: string;

beforeAll(async () => {
  dir = await tempDir('declared-size');
});
afterAll(() => removeDir(dir));

/**
 * A signed payload of ZERO operations only (no data) declaring a `size`-byte image: the attack's
 * shape. Hashes are those of zeros when `honest` (small sizes only), else arbitrary.
 */
function zeroPayload(size: number, honest = false): Buffer {
  const blocks = Math.ceil(size / BLOCK);
  const ops: format.Operation[] = [];
  const any = new Uint8Array(32).fill(7);
  for (let start = 0; start < blocks; ) {
    const dstExtents: format.Extent[] = [];
    for (let i = 0; i < 1000 && start < blocks; i++) {
      const count = Math.min(MAX_EXTENT_BLOCKS, blocks - start);
      dstExtents.push({ startBlock: start, blockCount: count });
      start += count;
    }
    const bytes = dstExtents.reduce((n, e) => n + Math.min(e.blockCount * BLOCK, size - e.startBlock * BLOCK), 0);
    ops.push({ type: format.OpType.ZERO, dataOffset: 0, dataLength: 0, dataHash: undefined, outputHash: honest ? hashOfZeros(bytes) : any, sourceHash: undefined, srcExtents: [], dstExtents });
  }
  const manifest: format.Manifest = {
    blockSize: BLOCK, targetSize: size, targetHash: honest ? hashOfZeros(size) : any,
    sourceSize: 0, sourceHash: new Uint8Array(32), version: '6.6.6', sourceVersion: '', operations: ops,
  };
  return assemblePayload(manifest, [], [signer.key]);
}

function hashOfZeros(bytes: number): Uint8Array {
  return Buffer.from(blockListHashRef(new Uint8Array(bytes)), 'hex');
}

function apply(payload: Uint8Array, options: Partial<ApplyOptions>): Promise<unknown> {
  return applyPayload(chunksOf(payload, 64 * 1024), { trustedKeys: [signer.pub], ...options });
}

describe('declared image sizes', { timeout: 120_000 }, () => {
  it('verify refuses every huge declared size with TARGET_TOO_SMALL, naming the limit', async () => {
    for (const size of HUGE) {
      const err = await rejectionOf(apply(zeroPayload(size), {}));
      expectFastPatchError(err, 'TARGET_TOO_SMALL', 7);
      expect(err.message).toContain(String(size));
      expect(err.message).toContain('--max-image-size');
    }
  });

  it('verify honours maxImageSize both ways', async () => {
    const payload = zeroPayload(2 * MiB + 100, true);
    expectFastPatchError(await rejectionOf(apply(payload, { maxImageSize: 2 * MiB })), 'TARGET_TOO_SMALL', 7);
    const result = (await apply(payload, { maxImageSize: 2 * MiB + 100 })) as { targetSize: number };
    expect(result.targetSize).toBe(2 * MiB + 100);
    // The default (64 GiB) lets an ordinary image through.
    expect(((await apply(payload, {})) as { targetSize: number }).targetSize).toBe(2 * MiB + 100);
  });

  it('apply to a missing file: refused before the file is created when its folder lacks the room', async () => {
    const fs = await fsp.statfs(dir);
    const free = fs.bavail * fs.bsize;
    // Sizes beyond this machine's free space (65 GiB may fit here).
    for (const size of [...HUGE.filter((s) => s > free), Math.min(Math.ceil((free + 1) / BLOCK) * BLOCK + 1, HUGE[0]!)]) {
      const target = join(dir, `new-${size}.img`);
      const err = await rejectionOf(apply(zeroPayload(size), { target }));
      expectFastPatchError(err, 'TARGET_TOO_SMALL', 7);
      expect(err.message).toContain('free');
      await expect(fsp.lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    // A size that fits is still created and applied.
    const target = join(dir, 'new-small.img');
    await apply(zeroPayload(MiB + 5, true), { target });
    expect((await fsp.stat(target)).size).toBe(MiB + 5);
  });

  it('apply to an existing smaller file or slot range: refused, not a byte written', async () => {
    const target = join(dir, 'small.img');
    const before = patternBytes(MiB);
    await fsp.writeFile(target, before);
    for (const size of [...HUGE, MiB + 1]) {
      expectFastPatchError(await rejectionOf(apply(zeroPayload(size), { target })), 'TARGET_TOO_SMALL', 7);
      expectFastPatchError(await rejectionOf(apply(zeroPayload(size), { target, targetRange: { offset: 4096, length: 512 * 1024 } })), 'TARGET_TOO_SMALL', 7);
    }
    expect(Buffer.compare(await fsp.readFile(target), before)).toBe(0);
    expect((await fsp.stat(target)).size).toBe(MiB);
  });

  it('CLI: verify refuses a 2^53-byte declaration (exit 7); --max-image-size takes K/M/G/T and bad values are usage errors', async () => {
    const keyFile = join(dir, 'key.pub');
    await fsp.writeFile(keyFile, formatPublicKey(signer.pub));
    const huge = join(dir, 'huge.fpatch');
    await fsp.writeFile(huge, zeroPayload(2 ** 53 - 2 * BLOCK));
    const refused = await runCli(['verify', huge, '--pubkey', keyFile], { timeoutMs: 120_000 });
    expect(refused.code, refused.stderr).toBe(7);
    expect(refused.stderr).toMatch(/TARGET_TOO_SMALL.*--max-image-size/);
    const refusedT = await runCli(['verify', huge, '--pubkey', keyFile, '--max-image-size', '1T'], { timeoutMs: 120_000 });
    expect(refusedT.code, refusedT.stderr).toBe(7);
    const small = join(dir, 'small.fpatch');
    await fsp.writeFile(small, zeroPayload(3 * MiB, true));
    expect((await runCli(['verify', small, '--pubkey', keyFile, '--max-image-size', '2M'])).code).toBe(7);
    const ok = await runCli(['verify', small, '--pubkey', keyFile, '--max-image-size', '3m']);
    expect(ok.code, ok.stderr).toBe(0);
    for (const bad of ['0', '-1', '12Q', 'lots', '99999999999T']) {
      const r = await runCli(['verify', small, '--pubkey', keyFile, '--max-image-size', bad]);
      expect(r.code, `${bad}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('--max-image-size');
    }
  });
});
