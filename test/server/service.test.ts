// The update service end to end over HTTP on loopback: a release repository, `startServer`, and
// requests shaped as update_engine, go-omaha and hostile peers send them. Offers (delta or full,
// never a downgrade), Omaha's error statuses, payload downloads by the offered URL, a promotion
// seen within a second, and events that outlive a restart.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRelease, buildRequest, COREOS_APP_ID, promoteRelease, readUpdateCheck, ReleaseRepository, sampleImage, startServer, type OmahaApp, type RunningServer,
} from '../../dist/src/index.js';
import { MiB, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let repo: string;

beforeAll(async () => {
  dir = await tempDir('service');
  repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [signer.key] });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2]] as const) {
    await fsp.writeFile(join(dir, `${version}.img`), sampleImage({ size: 4 * MiB, variant }));
    await addRelease(repo, { image: join(dir, `${version}.img`), version, keys: [signer.key] });
  }
  await promoteRelease(repo, { version: '1.0.0', to: 'beta', keys: [signer.key] });
});
afterAll(() => removeDir(dir));

async function withServer<T>(state: string, work: (s: RunningServer) => Promise<T>): Promise<T> {
  const server = await startServer({ repository: repo, state });
  try {
    return await work(server);
  } finally {
    await server.close();
  }
}

const machineId = () => randomBytes(16).toString('hex');
const app = (over: Partial<OmahaApp> = {}): OmahaApp => ({
  appId: COREOS_APP_ID, version: '1.0.0', track: 'alpha', machineId: machineId(), bootId: `{${crypto.randomUUID()}}`, ping: true, updateCheck: true, events: [], ...over,
});

async function post(s: RunningServer, body: string, headers: Record<string, string> = { 'Content-Type': 'text/xml' }): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${s.url}v1/update/`, { method: 'POST', body, headers });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

/** GET of a path exactly as written (fetch would resolve its dot segments first). */
function rawStatus(s: RunningServer, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port: s.port, path }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).on('error', reject);
  });
}

async function check(s: RunningServer, a: OmahaApp) {
  const res = await post(s, buildRequest({ protocol: '3.0', apps: [a] }));
  expect(res.status).toBe(200);
  const answer = readUpdateCheck(res.text, a.appId);
  if ('unreadable' in answer) throw new Error(answer.unreadable);
  return answer;
}

describe('fastpatch serve: offers', () => {
  it('offers the delta from the running release, else the full payload; the offered URL serves the very bytes, with ranges', async () => {
    await withServer(join(dir, 'offers.sqlite'), async (s) => {
      const r = await ReleaseRepository.open(repo);
      const release = (await r.readRelease('1.1.0'))!;
      const delta = release.payloads.find((p) => p.kind === 'delta')!;
      const full = release.payloads.find((p) => p.kind === 'full')!;
      const fromOld = await check(s, app());
      expect(fromOld.status).toBe('ok');
      expect(fromOld.update).toMatchObject({ version: '1.1.0', isDelta: true, package: { name: `${delta.sha256}.fpay`, size: delta.size } });
      const url = new URL(fromOld.update!.package.name, fromOld.update!.codebases[0]).href;
      const bytes = Buffer.from(await (await fetch(url)).arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('base64')).toBe(fromOld.update!.package.sha256);
      expect(createHash('sha1').update(bytes).digest('base64')).toBe(fromOld.update!.package.sha1);
      const part = await fetch(url, { headers: { Range: 'bytes=10-19', 'If-Range': `"${delta.sha256}"` } });
      expect([part.status, Buffer.compare(Buffer.from(await part.arrayBuffer()), bytes.subarray(10, 20))]).toEqual([206, 0]);
      // A release with no delta from it: the full payload.
      const fromUnknown = await check(s, app({ version: '0.9.0' }));
      expect(fromUnknown.update).toMatchObject({ package: { name: `${full.sha256}.fpay` } });
      expect(fromUnknown.update!.isDelta).toBeUndefined();
    });
  });

  it('never a downgrade: a machine on a channel that is behind waits, and the noupdate says why', async () => {
    await withServer(join(dir, 'behind.sqlite'), async (s) => {
      const same = await check(s, app({ version: '1.1.0' }));
      expect(same).toMatchObject({ status: 'noupdate', reason: expect.stringMatching(/1\.1\.0 is the release of alpha/) });
      const behind = await check(s, app({ version: '1.1.0', track: 'beta' }));
      expect(behind).toMatchObject({ status: 'noupdate', reason: expect.stringMatching(/beta carries 1\.0\.0, older than the running 1\.1\.0.*no downgrade/) });
      const empty = await check(s, app({ track: 'stable' }));
      expect(empty).toMatchObject({ status: 'noupdate', reason: 'stable carries no release yet' });
    });
  });

  it('a promotion reaches devices within a second, with the same package', async () => {
    await withServer(join(dir, 'promote.sqlite'), async (s) => {
      const before = await check(s, app({ track: 'beta' }));
      expect(before.status).toBe('noupdate');
      await promoteRelease(repo, { version: '1.1.0', to: 'beta', keys: [signer.key] });
      await new Promise((r) => setTimeout(r, 1100));
      const onBeta = await check(s, app({ track: 'beta' }));
      const onAlpha = await check(s, app({ track: 'alpha' }));
      expect(onBeta.update).toEqual(onAlpha.update);
    });
  });
});

describe('fastpatch serve: hostile and unknown input gets Omaha error statuses, never a crash', () => {
  it('answers each with its status, then keeps answering', async () => {
    await withServer(join(dir, 'hostile.sqlite'), async (s) => {
      expect((await post(s, '<request protocol="3.0"><app')).status).toBe(400);
      expect((await post(s, '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><request protocol="3.0"><app appid="&a;"/></request>')).status).toBe(400);
      const big = await post(s, `<request protocol="3.0">${' '.repeat(70 * 1024)}</request>`);
      expect(big.status).toBe(413);
      expect((await post(s, buildRequest({ protocol: '3.0', apps: [app()] }), { 'Content-Type': 'application/json' })).status).toBe(415);
      expect((await fetch(`${s.url}v1/update/`)).status).toBe(405);
      const unknownApp = await post(s, buildRequest({ protocol: '3.0', apps: [app({ appId: '{00000000-0000-0000-0000-000000000000}' })] }));
      expect(unknownApp.text).toMatch(/<app appid="\{00000000-0000-0000-0000-000000000000\}" status="error-unknownApplication">/);
      const badVersion = await post(s, buildRequest({ protocol: '3.0', apps: [app({ version: '../../x' })] }));
      expect(badVersion.text).toMatch(/status="error-invalidVersion"/);
      expect(await check(s, app({ track: 'nightly' }))).toMatchObject({ status: 'error-internal', reason: expect.stringMatching(/no channel or group "nightly"/) });
      const old = await post(s, buildRequest({ protocol: '2.0', apps: [app()] }));
      expect(old.text).toMatch(/updatecheck status="error-unsupportedProtocol"/);
      expect((await fetch(`${s.url}payloads/${'0'.repeat(64)}.fpay`)).status).toBe(404);
      for (const path of ['/payloads/../repository.json', '/channels/..%2f..%2fetc%2fpasswd.json', '/releases/../../x.json']) expect(await rawStatus(s, path), path).toBe(404);
      expect(await rawStatus(s, '/channels/alpha.json')).toBe(200);
      expect((await check(s, app())).status).toBe('ok');
    });
  });

  it("answers update_engine's own request shape, event inside the update check, and echoes the app id as sent", async () => {
    await withServer(join(dir, 'shape.sqlite'), async (s) => {
      const id = machineId();
      const body = `<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="1.0.0_x86_64"></os>
    <app appid="{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}" version="1.0.0" track="alpha" bootid="{2b3c4d5e-0000-4000-8000-000000000001}" oem="qemu" oemversion="1" alephversion="1.0.0" machineid="${id}" machinealias="" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
        <event eventtype="3" eventresult="2" previousversion="0.0.0.0"></event>
    </app>
</request>`;
      const res = await post(s, body);
      expect(res.type).toBe('text/xml; charset=utf-8');
      expect(res.text).toMatch(/<app appid="\{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57\}" status="ok">/);
      expect(res.text).toMatch(/<event status="ok"/);
      expect(readUpdateCheck(res.text, '{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}')).toMatchObject({ status: 'ok', update: { version: '1.1.0' } });
      expect(s.rollout.events(id)).toHaveLength(1);
    });
  });
});

describe('fastpatch serve: a bounded number of machines', () => {
  it('records at most --max-machines: a new machine past it gets an error status, known ones are still answered', async () => {
    const server = await startServer({ repository: repo, state: join(dir, 'limit.sqlite'), maxMachines: 3 });
    try {
      const known = [app(), app(), app()];
      for (const a of known) expect((await check(server, a)).status).toBe('ok');
      expect(await check(server, app())).toMatchObject({ status: 'error-internal', reason: expect.stringMatching(/at most 3 machines/) });
      expect((await check(server, known[0]!)).status).toBe('ok');
      expect(server.rollout.machineCount()).toBe(3);
    } finally {
      await server.close();
    }
  });
});

describe('fastpatch serve: state survives a restart', () => {
  it('events and grants recorded before a restart are there after it', async () => {
    const state = join(dir, 'restart.sqlite');
    const a = app();
    await withServer(state, async (s) => {
      expect((await check(s, a)).status).toBe('ok');
      await post(s, buildRequest({ protocol: '3.0', apps: [{ ...a, ping: false, updateCheck: false, events: [{ type: 13, result: 1 }, { type: 14, result: 1 }, { type: 3, result: 1 }] }] }));
    });
    await withServer(state, async (s) => {
      const events = s.rollout.events(a.machineId);
      expect(events.map((e) => `${e.type}/${e.result}`)).toEqual(['3/1', '14/1', '13/1']);
      expect(s.rollout.machine(a.machineId)).toMatchObject({ state: 'installed' });
    });
  });
});
