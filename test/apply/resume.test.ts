// Resuming an interrupted apply (apply/resume.ts, `--resume`): whatever point the first run
// stopped at, the second finishes with a byte-identical target, fetches only the data of the
// operations the target does not hold yet, and trusts nothing on the target that does not hash
// to the signed output hashes.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format, generateDeltaPayload, openPayload, type SeekablePayload } from '../../dist/src/index.js';
import { MiB, Prng, buildPayload, dataStartOf, makeKeyPair, mixedImage, removeDir, tempDir, type BuiltPayload } from '../helpers/payloads.js';

const signer = makeKeyPair();
const other = makeKeyPair();
let dir: string;
let v1: Uint8Array;
let full: BuiltPayload;
let deltaPath: string;
let delta: Buffer;

beforeAll(async () => {
  dir = await tempDir('resume');
  v1 = mixedImage(24 * MiB, 1);
  const v2 = Uint8Array.from(v1);
  const rng = new Prng(7);
  for (let i = 0; i < 400; i++) v2[rng.below(v2.length)] ^= 0xff; // scattered changes: a real delta
  v2.set(mixedImage(3 * MiB, 9), 10 * MiB);
  full = await buildPayload(dir, 'v2', v2, { keys: [signer.key], version: '2.0.0' });
  await fsp.writeFile(join(dir, 'v1.img'), v1);
  deltaPath = join(dir, 'v1-v2.fpay');
  await generateDeltaPayload({ source: join(dir, 'v1.img'), target: full.imagePath, keys: [signer.key], version: '2.0.0', out: deltaPath });
  delta = await fsp.readFile(deltaPath);
});
afterAll(() => removeDir(dir));

/** A seekable payload that counts the bytes it hands out. */
function counted(path: string): SeekablePayload & { fetched: number } {
  const inner = openPayload(path) as SeekablePayload;
  const out = {
    seekable: true as const,
    name: path,
    fetched: 0,
    async *read(from: number, to?: number) {
      for await (const chunk of inner.read(from, to)) {
        out.fetched += chunk.length;
        yield chunk;
      }
    },
  };
  return out;
}

/** The first `n` bytes of `bytes`, then a dropped connection. */
async function* dropsAfter(bytes: Uint8Array, n: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < n; at += 64 * 1024) yield bytes.subarray(at, Math.min(n, at + 64 * 1024));
  throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
}

/** Data length of the operation whose blob holds payload byte `at` (0 in the head). */
function opDataAt(payload: Buffer, at: number): number {
  const manifestSize = payload.readUInt32LE(12);
  const manifest = format.decodeManifest(payload.subarray(32, 32 + manifestSize));
  const start = dataStartOf(payload);
  const op = manifest.operations.find((o) => at >= start + o.dataOffset && at < start + o.dataOffset + o.dataLength);
  return op?.dataLength ?? 0;
}

describe('resume after an interruption at random points', () => {
  for (const kind of ['full', 'delta'] as const) {
    it(`${kind}: 12 cut points, each resumed byte-identical, fetching at most the cut operation plus what was never sent`, async () => {
      const payload = kind === 'full' ? full.payload : delta;
      const path = kind === 'full' ? full.payloadPath : deltaPath;
      const head = dataStartOf(payload);
      const rng = new Prng(kind === 'full' ? 11 : 12);
      const source = kind === 'delta' ? { source: join(dir, 'v1.img') } : {};
      for (let i = 0; i < 12; i++) {
        const cut = head + rng.below(payload.length - head);
        const target = join(dir, `${kind}-${i}.img`);
        await fsp.writeFile(target, v1); // the passive slot held the old release
        const err = await applyPayload(dropsAfter(payload, cut), { trustedKeys: [signer.pub], target, ...source }).catch((e: Error) => e);
        expect(String(err)).toMatch(/connection reset/);
        const input = counted(path);
        const result = await applyPayload(input, { trustedKeys: [signer.pub], target, resume: true, ...source });
        expect(Buffer.compare(await fsp.readFile(target), full.image), `cut at ${cut}`).toBe(0);
        const bound = head + (payload.length - cut) + opDataAt(payload, cut);
        expect(input.fetched, `cut at ${cut}: fetched ${input.fetched}, bound ${bound}`).toBeLessThanOrEqual(bound);
        expect(result.resumed!.operationsSkipped).toBeGreaterThan(0);
        await fsp.rm(target);
      }
    });
  }
});

describe('what resume trusts', () => {
  it('a finished target: only the head is fetched, nothing written, the image hash still checked', async () => {
    const target = join(dir, 'done.img');
    await fsp.writeFile(target, full.image);
    const input = counted(full.payloadPath);
    const result = await applyPayload(input, { trustedKeys: [signer.pub], target, resume: true });
    expect(input.fetched).toBe(dataStartOf(full.payload));
    expect(result.bytesWritten).toBe(0);
    expect(result.resumed!.bytesSkipped).toBe(full.image.length);
  });

  it('a changed block in a finished region is not trusted: that operation is applied again', async () => {
    const target = join(dir, 'tampered.img');
    const bytes = Buffer.from(full.image);
    bytes[5 * MiB + 123] ^= 0x40;
    await fsp.writeFile(target, bytes);
    const result = await applyPayload(counted(full.payloadPath), { trustedKeys: [signer.pub], target, resume: true });
    expect(Buffer.compare(await fsp.readFile(target), full.image)).toBe(0);
    expect(result.bytesWritten).toBeGreaterThan(0);
    expect(result.resumed!.bytesSkipped).toBeLessThan(full.image.length);
  });

  it('the signature is checked before the target is even read: a wrong key leaves it as it was', async () => {
    const target = join(dir, 'wrongkey.img');
    await fsp.writeFile(target, v1);
    const err = await applyPayload(openPayload(full.payloadPath), { trustedKeys: [other.pub], target, resume: true }).catch((e: { code: string }) => e);
    expect(err).toMatchObject({ code: 'UNTRUSTED_KEY' });
    expect(Buffer.compare(await fsp.readFile(target), v1)).toBe(0);
  });

  it('a truncated payload file on resume: TRUNCATED_PAYLOAD, not a hash error from misplaced bytes', async () => {
    const short = join(dir, 'short.fpay');
    await fsp.writeFile(short, full.payload.subarray(0, full.payload.length - 1000));
    const target = join(dir, 'short.img');
    await fsp.writeFile(target, v1);
    const err = await applyPayload(openPayload(short), { trustedKeys: [signer.pub], target, resume: true }).catch((e: { code: string }) => e);
    expect(err).toMatchObject({ code: 'TRUNCATED_PAYLOAD' });
  });

  it('standard input cannot seek: it is read through, but what the target holds is not written again', async () => {
    const target = join(dir, 'stdin.img');
    const half = Buffer.from(v1);
    Buffer.from(full.image).copy(half, 0, 0, 12 * MiB);
    await fsp.writeFile(target, half);
    const stdin = Readable.from([full.payload]);
    const result = await applyPayload(openPayload('-', { stdin }), { trustedKeys: [signer.pub], target, resume: true });
    expect(Buffer.compare(await fsp.readFile(target), full.image)).toBe(0);
    expect(result.payloadBytes).toBe(full.payload.length);
    expect(result.bytesWritten).toBeLessThanOrEqual(full.image.length - 11 * MiB);
  });
});
