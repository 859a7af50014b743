import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, publicKeyOf } from '../../dist/src/sign/keys.js';
import { sampleImage } from '../../dist/src/demo/sample.js';
import { ReleaseRepository } from '../../dist/src/release/repository.js';
import { addRelease } from '../../dist/src/release/add.js';
import { promoteRelease } from '../../dist/src/release/promote.js';
import { listRepository } from '../../dist/src/release/list.js';
import { canonicalJson } from '../../dist/src/release/documents.js';
import { applyPayload } from '../../dist/src/apply/applier.js';
import { openPayload } from '../../dist/src/io/payload-source.js';
import { FastPatchError } from '../../dist/src/errors.js';

const MiB = 1024 * 1024;
const key = generateKey();
let dir: string;
const image = (v: number) => join(dir, `v${v}.img`);

async function refusal(p: Promise<unknown>): Promise<FastPatchError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FastPatchError);
  return err as FastPatchError;
}

/** Name, inode and mtime of every stored payload: a promotion must leave all three alone. */
async function payloadFiles(repo: string): Promise<string[]> {
  const names = (await fsp.readdir(join(repo, 'payloads'))).sort();
  return Promise.all(names.map(async (n) => {
    const s = await fsp.stat(join(repo, 'payloads', n));
    return `${n} ${s.ino} ${s.mtimeMs}`;
  }));
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'fastpatch-release-test-'));
  for (const v of [1, 2, 3]) await fsp.writeFile(image(v), sampleImage({ size: 4 * MiB, variant: v }));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('release repository', () => {
  it('adds, promotes bit-for-bit, refuses what it must', async () => {
    const repo = join(dir, 'repo');
    await ReleaseRepository.init(repo, { keys: [key] });
    const first = await addRelease(repo, { image: image(1), version: '1.0.0', keys: [key] });
    expect(first.release.payloads.map((p) => p.kind)).toEqual(['full']);
    expect(first.channel).toMatchObject({ name: 'alpha', moved: true });

    const second = await addRelease(repo, { image: image(2), version: '1.1.0', keys: [key] });
    const delta = second.release.payloads.find((p) => p.kind === 'delta');
    expect(delta?.from).toBe('1.0.0');
    expect(delta!.size).toBeLessThan(second.release.payloads[0]!.size);
    // The stored delta really turns 1.0.0 into 1.1.0.
    const base = join(dir, 'base.img');
    await fsp.copyFile(image(1), base);
    await applyPayload(openPayload(join(repo, 'payloads', `${delta!.sha256}.fpay`)), { target: join(dir, 'out.img'), source: base, trustedKeys: [publicKeyOf(key)] });
    expect(Buffer.compare(await fsp.readFile(join(dir, 'out.img')), await fsp.readFile(image(2)))).toBe(0);

    // stable before beta: refused, nothing written.
    expect((await refusal(promoteRelease(repo, { version: '1.1.0', to: 'stable', keys: [key] }))).code).toBe('RELEASE_REFUSED');
    const before = await payloadFiles(repo);
    await promoteRelease(repo, { version: '1.1.0', to: 'beta', keys: [key] });
    const promoted = await promoteRelease(repo, { version: '1.1.0', to: 'stable', keys: [key] });
    expect(promoted).toMatchObject({ channel: 'stable', how: 'promote', from: 'beta' });
    expect(await payloadFiles(repo)).toEqual(before); // nothing generated, copied or touched

    const r = await ReleaseRepository.open(repo);
    const docs = await Promise.all(['alpha', 'beta', 'stable'].map((c) => r.readChannel(c)));
    const records = docs.map((d) => canonicalJson(d!.release));
    expect(new Set(records).size).toBe(1);
    for (const p of docs[2]!.release.payloads) {
      const bytes = await fsp.readFile(r.payloadPath(p.sha256));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(p.sha256);
      expect(bytes.length).toBe(p.size);
    }

    // 1.2.0 enters alpha with deltas from both earlier releases, newest first.
    const third = await addRelease(repo, { image: image(3), version: '1.2.0', keys: [key] });
    expect(third.release.payloads.filter((p) => p.kind === 'delta').map((p) => p.from)).toEqual(['1.1.0', '1.0.0']);
    // Backwards: refused without --force, recorded with it.
    await promoteRelease(repo, { version: '1.2.0', to: 'beta', keys: [key] });
    expect((await refusal(promoteRelease(repo, { version: '1.1.0', to: 'beta', keys: [key] }))).message).toMatch(/backwards only with --force/);
    const forced = await promoteRelease(repo, { version: '1.1.0', to: 'beta', keys: [key], force: true, reason: '1.2.0 breaks NFS' });
    expect(forced.how).toBe('force');
    const beta = await r.readChannel('beta');
    expect(beta!.history.at(-1)).toMatchObject({ version: '1.1.0', how: 'force', reason: '1.2.0 breaks NFS' });
    expect(beta!.serial).toBe(3);

    expect((await refusal(addRelease(repo, { image: image(3), version: '1.2.0', keys: [key] }))).code).toBe('RELEASE_REFUSED');
    expect((await refusal(addRelease(repo, { image: image(3), version: '1.3.0', channel: 'beta', keys: [key] }))).code).toBe('RELEASE_REFUSED');
    expect((await refusal(addRelease(repo, { image: image(3), version: '1.3.0', keys: [generateKey()] }))).code).toBe('UNTRUSTED_KEY');

    const listing = await listRepository(repo);
    expect(listing.channels.map((c) => `${c.name}=${c.version}`)).toEqual(['alpha=1.2.0', 'beta=1.1.0', 'stable=1.1.0']);
    expect(listing.releases.map((x) => x.version)).toEqual(['1.2.0', '1.1.0', '1.0.0']);
  });

  it('refuses a channel document changed after signing, and one signed by another key', async () => {
    const repo = join(dir, 'tamper');
    await ReleaseRepository.init(repo, { keys: [key] });
    await addRelease(repo, { image: image(1), version: '1.0.0', keys: [key], deltas: 0 });
    const path = join(repo, 'channels', 'alpha.json');
    const text = await fsp.readFile(path, 'utf8');
    const r = await ReleaseRepository.open(repo);
    // Pretty-printing differently keeps it valid: the signature covers the canonical form.
    await fsp.writeFile(path, JSON.stringify(JSON.parse(text)));
    expect((await r.readChannel('alpha'))!.release.version).toBe('1.0.0');
    await fsp.writeFile(path, text.replace('"serial": 1', '"serial": 9'));
    expect((await refusal(r.readChannel('alpha'))).code).toBe('BAD_SIGNATURE');
    expect((await refusal(r.readChannel('alpha', [publicKeyOf(generateKey())]))).code).toBe('UNTRUSTED_KEY');
    await fsp.writeFile(path, '{"signed": 1, "signatures": "x"}');
    expect((await refusal(r.readChannel('alpha'))).code).toBe('CORRUPT_DOCUMENT');
  });

  it('two publishers at once lose nothing, and the channel never moves backwards', async () => {
    const repo = join(dir, 'race');
    await ReleaseRepository.init(repo, { keys: [key], keepDeltas: 0 });
    const results = await Promise.all([
      addRelease(repo, { image: image(2), version: '2.0.0', keys: [key] }),
      addRelease(repo, { image: image(1), version: '1.0.0', keys: [key] }),
    ]);
    const r = await ReleaseRepository.open(repo);
    expect((await r.versions()).sort()).toEqual(['1.0.0', '2.0.0']);
    const alpha = await r.readChannel('alpha');
    expect(alpha!.release.version).toBe('2.0.0');
    // Whichever came second either moved it forward or said why it did not.
    const notMoved = results.filter((x) => !x.channel.moved);
    expect(notMoved.every((x) => x.release.version === '1.0.0' && /never moves backwards/.test(x.channel.why!))).toBe(true);
    expect(alpha!.serial).toBe(2 - notMoved.length);
    // Concurrent promotions of the same release: one moves, the other finds it done.
    const both = await Promise.all([1, 2].map(() => promoteRelease(repo, { version: '2.0.0', to: 'beta', keys: [key] })));
    expect(both.map((b) => b.how).sort()).toEqual(['promote', 'unchanged']);
    expect((await r.readChannel('beta'))!.serial).toBe(1);
  });
});
