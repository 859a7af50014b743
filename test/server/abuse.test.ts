// What a hostile or broken peer could make of the service's rules, each closed and checked: a
// machine that reports 3/2 without running its target cannot be granted (and counted) over and
// over; a download cut may be retried while a release failure is not; names the store keys by
// are checked before they reach it; an older signed channel document put back is not served;
// an idle socket is closed.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRelease, buildRequest, COREOS_APP_ID, promoteRelease, readUpdateCheck, ReleaseRepository, sampleImage, startServer, type OmahaApp, type OmahaEvent, type RunningServer, type ServeOptions,
} from '../../dist/src/index.js';
import { MiB, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let repo: string;
let n = 0;

beforeAll(async () => {
  dir = await tempDir('abuse');
  repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [signer.key], keepDeltas: 0 });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2], ['1.2.0', 3]] as const) {
    await fsp.writeFile(join(dir, `${version}.img`), sampleImage({ size: 1 * MiB, variant }));
    await addRelease(repo, { image: join(dir, `${version}.img`), version, keys: [signer.key] });
  }
});
afterAll(() => removeDir(dir));

async function withServer<T>(work: (s: RunningServer) => Promise<T>, o: Partial<ServeOptions> = {}, repository = repo): Promise<T> {
  const s = await startServer({ repository, state: join(dir, `s${n++}.sqlite`), ...o });
  try {
    return await work(s);
  } finally {
    await s.close();
  }
}

const app = (over: Partial<OmahaApp> = {}): OmahaApp => ({
  appId: COREOS_APP_ID, version: '1.0.0', track: 'alpha', machineId: randomBytes(16).toString('hex'), bootId: '{b}', ping: true, updateCheck: true, events: [], ...over,
});

async function ask(s: RunningServer, apps: OmahaApp[]) {
  const res = await fetch(`${s.url}v1/update/`, { method: 'POST', body: buildRequest({ protocol: '3.0', apps }), headers: { 'Content-Type': 'text/xml' } });
  return { status: res.status, text: await res.text() };
}
const checkOf = (text: string) => readUpdateCheck(text, COREOS_APP_ID);

describe('grants', () => {
  it('a 3/2 from a machine that does not run its target ends nothing: no second grant, no second count', async () => {
    await withServer(async (s) => {
      const m = app();
      s.rollout.group('alpha', 'alpha');
      s.rollout.setPolicy('alpha', { maxPerPeriod: 5 });
      expect(checkOf((await ask(s, [m])).text)).toMatchObject({ status: 'ok' });
      const lie: OmahaEvent = { type: 3, result: 2, previousVersion: '0.9.0' };
      // Eight apps a request, ten requests: each a resume of the one grant.
      for (let i = 0; i < 10; i++) await ask(s, Array.from({ length: 8 }, () => ({ ...m, events: [lie] })));
      expect(s.rollout.machine(m.machineId)).toMatchObject({ state: 'granted', target: '1.2.0' });
      expect(s.rollout.status('alpha')[0]!.grantedInPeriod).toBe(1);
      // Four honest machines still fit under the cap of five.
      for (let i = 0; i < 4; i++) expect(checkOf((await ask(s, [app()])).text)).toMatchObject({ status: 'ok' });
    });
  });

  it('a download cut (code 9) may be retried; a release failure (code 10) or a rollback (44) is not offered again', async () => {
    await withServer(async (s) => {
      s.rollout.group('alpha', 'alpha');
      s.rollout.setPolicy('alpha', { failureThreshold: 0 });
      const [cut, bad, back] = [app(), app(), app()];
      for (const m of [cut, bad, back]) expect(checkOf((await ask(s, [m])).text)).toMatchObject({ status: 'ok' });
      await ask(s, [{ ...cut, updateCheck: false, events: [{ type: 3, result: 0, errorCode: 9 | (1 << 30) }] }]);
      await ask(s, [{ ...bad, updateCheck: false, events: [{ type: 3, result: 0, errorCode: 10 }] }]);
      await ask(s, [{ ...back, updateCheck: false, events: [{ type: 3, result: 0, errorCode: 44 }] }]);
      expect(checkOf((await ask(s, [cut])).text)).toMatchObject({ status: 'ok' });
      expect(checkOf((await ask(s, [bad])).text)).toMatchObject({ status: 'noupdate', reason: expect.stringMatching(/failed or rolled back 1\.2\.0 \(code 10\)/) });
      expect(checkOf((await ask(s, [back])).text)).toMatchObject({ status: 'noupdate', reason: expect.stringMatching(/code 44/) });
      expect(s.rollout.status('alpha')[0]!.failures.map((f) => f.errorCode).sort()).toEqual([10, 44, 9 | (1 << 30)].sort());
    });
  });
});

describe('names', () => {
  it('an empty track, an odd machine id or one that grows when lower-cased: an Omaha error for that app, the others answered', async () => {
    await withServer(async (s) => {
      const cases = [app({ track: '' }), app({ machineId: 'İ'.repeat(200) }), app({ machineId: 'a b' }), app({ track: 'x'.repeat(65) })];
      for (const bad of cases) {
        const res = await ask(s, [bad, app()]);
        expect(res.status).toBe(200);
        const updatechecks = [...res.text.matchAll(/<updatecheck status="([^"]+)"/g)].map((m) => m[1]);
        expect(updatechecks).toEqual(['error-internal', 'ok']);
      }
    });
  });
});

describe('channel documents', () => {
  it('an older signed document put back is not served: the channel keeps its newer release', async () => {
    const copy = join(dir, 'serial-repo');
    await fsp.cp(repo, copy, { recursive: true });
    await promoteRelease(copy, { version: '1.1.0', to: 'beta', keys: [signer.key] });
    const old = await fsp.readFile(join(copy, 'channels', 'beta.json'));
    await promoteRelease(copy, { version: '1.2.0', to: 'beta', keys: [signer.key] });
    await withServer(async (s) => {
      expect(checkOf((await ask(s, [app({ track: 'beta' })])).text)).toMatchObject({ update: { version: '1.2.0' } });
      await fsp.writeFile(join(copy, 'channels', 'beta.json'), old);
      await new Promise((r) => setTimeout(r, 1100));
      expect(checkOf((await ask(s, [app({ track: 'beta' })])).text)).toMatchObject({ update: { version: '1.2.0' } });
      expect(s.catalog.problems.get('beta')).toMatch(/serial 1, older than the 2 served/);
    }, {}, copy);
  });
});

describe('sockets', () => {
  it('a peer that goes quiet is cut off after the idle time', async () => {
    await withServer(async (s) => {
      const socket = connect(s.port, '127.0.0.1');
      socket.write('GET /repository.json HTTP/1.1\r\nHost: x\r\n'); // and never the end of the headers
      const t0 = performance.now();
      await new Promise((resolve) => socket.once('close', resolve));
      expect(performance.now() - t0).toBeLessThan(5000);
    }, { timeouts: { headersMs: 60_000, requestMs: 60_000, idleMs: 400 } });
  });
});
