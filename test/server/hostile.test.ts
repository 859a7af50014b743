// The update service under hostile input and abrupt ends: mutated and random request bodies
// (each answered 200, 400, 413 or 415, never a crash, the server answering a good request
// after each), a channel document changed after signing (not served: the channel keeps what it
// had), and `fastpatch serve` killed with SIGKILL mid-fleet (every event and grant it answered is
// there when it starts again).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRelease, buildRequest, COREOS_APP_ID, readUpdateCheck, ReleaseRepository, RolloutStore, sampleImage, startServer, type OmahaApp,
} from '../../dist/src/index.js';
import { CLI_PATH } from '../helpers/cli.js';
import { MiB, Prng, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let repo: string;

beforeAll(async () => {
  dir = await tempDir('hostile');
  repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [signer.key], keepDeltas: 0 });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2]] as const) {
    await fsp.writeFile(join(dir, `${version}.img`), sampleImage({ size: 1 * MiB, variant }));
    await addRelease(repo, { image: join(dir, `${version}.img`), version, keys: [signer.key] });
  }
});
afterAll(() => removeDir(dir));

const app = (over: Partial<OmahaApp> = {}): OmahaApp => ({
  appId: COREOS_APP_ID, version: '1.0.0', track: 'alpha', machineId: randomBytes(16).toString('hex'), bootId: '{00000000-0000-4000-8000-000000000000}', ping: true, updateCheck: true, events: [{ type: 3, result: 2, previousVersion: '0.9.0' }], ...over,
});

/** One mutation of `text`: a byte flipped, a cut, a span repeated or deleted, random bytes spliced in. */
function mutate(text: Buffer, rng: Prng): Buffer {
  const at = rng.below(text.length);
  switch (rng.below(5)) {
    case 0: { const b = Buffer.from(text); b[at] = rng.below(256); return b; }
    case 1: return text.subarray(0, at);
    case 2: { const span = text.subarray(at, at + 1 + rng.below(64)); return Buffer.concat([text.subarray(0, at), ...Array<Buffer>(1 + rng.below(50)).fill(span), text.subarray(at)]); }
    case 3: return Buffer.concat([text.subarray(0, at), text.subarray(at + 1 + rng.below(40))]);
    default: return Buffer.concat([text.subarray(0, at), randomBytes(1 + rng.below(32)), text.subarray(at)]);
  }
}

describe('hostile request bodies', () => {
  it('500 mutated requests: each gets 200, 400, 413 or 415; the server stays up and answers a good one after each batch', async () => {
    const server = await startServer({ repository: repo, state: join(dir, 'fuzz.sqlite') });
    try {
      const rng = new Prng(14);
      const seed = Buffer.from(buildRequest({ protocol: '3.0', installSource: 'scheduler', os: { platform: 'CoreOS', version: 'Chateau' }, apps: [app(), app({ track: 'beta' })] }));
      const seen = new Set<number>();
      for (let i = 0; i < 500; i++) {
        let body = seed;
        for (let k = 1 + rng.below(4); k > 0; k--) body = mutate(body, rng);
        const res = await fetch(`${server.url}v1/update/`, { method: 'POST', body, headers: { 'Content-Type': 'text/xml' } });
        await res.arrayBuffer();
        expect([200, 400, 413, 415], `case ${i}`).toContain(res.status);
        seen.add(res.status);
        if (i % 100 === 99) {
          const good = await fetch(`${server.url}v1/update/`, { method: 'POST', body: seed, headers: { 'Content-Type': 'text/xml' } });
          expect(readUpdateCheck(await good.text(), COREOS_APP_ID)).toMatchObject({ status: 'ok' });
        }
      }
      expect(seen.has(200) && seen.has(400)).toBe(true); // the mutations reached both the parser's refusals and the decisions
    } finally {
      await server.close();
    }
  });
});

describe('a channel document changed after signing', () => {
  it('is not served: the channel keeps the release it had, and the problem is kept for the operator', async () => {
    const copy = join(dir, 'tampered-repo');
    await fsp.cp(repo, copy, { recursive: true });
    const server = await startServer({ repository: copy, state: join(dir, 'tamper.sqlite') });
    try {
      const ask = async () => readUpdateCheck(await (await fetch(`${server.url}v1/update/`, { method: 'POST', body: buildRequest({ protocol: '3.0', apps: [app({ events: [] })] }), headers: { 'Content-Type': 'text/xml' } })).text(), COREOS_APP_ID);
      expect(await ask()).toMatchObject({ status: 'ok', update: { version: '1.1.0' } });
      const path = join(copy, 'channels', 'alpha.json');
      await fsp.writeFile(path, (await fsp.readFile(path, 'utf8')).replaceAll('"1.1.0"', '"9.9.9"'));
      await new Promise((r) => setTimeout(r, 1100));
      expect(await ask()).toMatchObject({ status: 'ok', update: { version: '1.1.0' } });
      expect(server.catalog.problems.get('alpha')).toMatch(/does not verify/);
    } finally {
      await server.close();
    }
  });
});

describe('kill -9', () => {
  it('every event and grant the killed server answered is there when it starts again', async () => {
    const state = join(dir, 'kill.sqlite');
    const child = spawn(process.execPath, [CLI_PATH, 'serve', repo, '--listen', '127.0.0.1:0', '--state', state], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let seen = '';
        child.stdout.on('data', (d: Buffer) => {
          seen += d.toString();
          const m = /Omaha at (http\S+\/v1\/update\/)/.exec(seen);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
      });
      const machines = Array.from({ length: 50 }, () => app());
      const answered = await Promise.all(machines.map(async (a) => (await fetch(url, { method: 'POST', body: buildRequest({ protocol: '3.0', apps: [a] }), headers: { 'Content-Type': 'text/xml' } })).status));
      expect(answered.every((s) => s === 200)).toBe(true);
      child.kill('SIGKILL');
      await exited;
      const store = RolloutStore.open(state);
      try {
        for (const a of machines) {
          expect(store.machine(a.machineId)).toMatchObject({ state: 'granted', target: '1.1.0' });
          expect(store.events(a.machineId).map((e) => `${e.type}/${e.result}`)).toEqual(['3/2']);
        }
      } finally {
        store.close();
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
});
