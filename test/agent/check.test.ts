// `fastpatch check` against `fastpatch serve` on loopback, on a real A/B disk image: the device
// reads update.conf as CoreOS layers it, installs the offered delta into the passive slot, reports
// 13/1, 14/1 and 3/1; after a reboot into the new slot it reports success (3/2), after a fall back
// a rollback (3/0, code 44); a machine on a channel that is behind stays put and says why.
import { promises as fsp } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRelease, checkForUpdate, COREOS_APP_ID, createFlatcarDisk, formatPublicKey, installSlot, openPayload, promoteRelease, readDiskGpt, ReleaseRepository, sampleImage, startServer, type RunningServer,
} from '../../dist/src/index.js';
import { postOmaha } from '../../dist/src/agent/omaha-client.js';
import { runCli } from '../helpers/cli.js';
import { MiB, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let repo: string;
let pub: string;
let n = 0;

beforeAll(async () => {
  dir = await tempDir('check');
  repo = join(dir, 'repo');
  pub = join(dir, 'k.pub');
  await fsp.writeFile(pub, formatPublicKey(signer.pub));
  await ReleaseRepository.init(repo, { keys: [signer.key] });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2]] as const) {
    await fsp.writeFile(join(dir, `${version}.img`), sampleImage({ size: 4 * MiB, variant }));
    await addRelease(repo, { image: join(dir, `${version}.img`), version, keys: [signer.key] });
  }
  await promoteRelease(repo, { version: '1.0.0', to: 'beta', keys: [signer.key] });
});
afterAll(() => removeDir(dir));

/** A device: a disk whose USR-A runs 1.0.0 (recorded), a machine id, a boot id, update.conf files. */
async function device(group = 'alpha') {
  const d = join(dir, `dev-${n++}`);
  await fsp.mkdir(d);
  const disk = join(d, 'disk.img');
  await createFlatcarDisk(disk, { size: 32 * MiB });
  const r = await ReleaseRepository.open(repo);
  const full = (await r.readRelease('1.0.0'))!.payloads[0]!;
  await installSlot(openPayload(r.payloadPath(full.sha256)), { disk, slot: 'USR-A', trustedKeys: [signer.pub] });
  await fsp.writeFile(join(d, 'machine-id'), `${'ab'.repeat(15)}${String(n).padStart(2, '0')}\n`);
  await fsp.writeFile(join(d, 'boot_id'), `${crypto.randomUUID()}\n`);
  // The image's defaults say stable; the machine's own file picks the group (CoreOS's layering).
  await fsp.writeFile(join(d, 'image.conf'), 'GROUP=stable\nSERVER=http://127.0.0.1:1/v1/update/\n', { mode: 0o644 });
  await fsp.writeFile(join(d, 'update.conf'), `GROUP=${group}\n`, { mode: 0o644 });
  return { dir: d, disk, machineId: `${'ab'.repeat(15)}${String(n).padStart(2, '0')}` };
}

type Device = Awaited<ReturnType<typeof device>>;
const opts = (dev: Device, s: RunningServer, running?: string) => ({
  disk: dev.disk, trustedKeys: [signer.pub], server: `${s.url}v1/update/`,
  config: join(dev.dir, 'update.conf'), imageConfig: join(dev.dir, 'image.conf'),
  machineIdFile: join(dev.dir, 'machine-id'), bootIdFile: join(dev.dir, 'boot_id'),
  ...(running ? { running } : {}),
});
const reboot = (dev: Device) => fsp.writeFile(join(dev.dir, 'boot_id'), `${crypto.randomUUID()}\n`);

async function withServer<T>(work: (s: RunningServer) => Promise<T>): Promise<T> {
  const s = await startServer({ repository: repo, state: join(dir, `state-${n}.sqlite`) });
  try {
    return await work(s);
  } finally {
    await s.close();
  }
}

describe('fastpatch check', () => {
  it('installs the delta, reports each step, then reports the reboot into the new release as success', async () => {
    const dev = await device();
    await withServer(async (s) => {
      const first = await checkForUpdate(opts(dev, s));
      expect(first).toMatchObject({ outcome: 'updated', group: 'alpha', running: { slot: 'USR-A', version: '1.0.0' }, offered: { version: '1.1.0', kind: 'delta' } });
      expect(first.update!.updated.label).toBe('USR-B');
      // The slot holds 1.1.0 byte for byte.
      const image = await fsp.readFile(join(dir, '1.1.0.img'));
      const written = await readSlot(dev.disk, 'USR-B', image.length);
      expect(Buffer.compare(written, image)).toBe(0);
      expect(s.rollout.events(dev.machineId).map((e) => `${e.type}/${e.result}`).reverse()).toEqual(['13/1', '14/1', '3/1']);
      // Same boot: nothing to do until the reboot.
      expect((await checkForUpdate(opts(dev, s))).outcome).toBe('reboot-pending');
      await reboot(dev);
      const after = await checkForUpdate(opts(dev, s, 'USR-B'));
      expect(after).toMatchObject({ outcome: 'no-update', running: { version: '1.1.0' }, reported: [{ type: 3, result: 2, previousVersion: '1.0.0' }] });
      expect(s.rollout.machine(dev.machineId)).toMatchObject({ state: 'complete', version: '1.1.0' });
      // Reported once: the next check sends no event.
      expect((await checkForUpdate(opts(dev, s, 'USR-B'))).reported).toEqual([]);
    });
  });

  it('a fall back to the old slot is reported as a rollback (3/0, code 44)', async () => {
    const dev = await device();
    await withServer(async (s) => {
      expect((await checkForUpdate(opts(dev, s))).outcome).toBe('updated');
      await reboot(dev);
      const back = await checkForUpdate(opts(dev, s, 'USR-A'));
      expect(back.reported).toEqual([{ type: 3, result: 0, errorCode: 44, previousVersion: '1.0.0' }]);
      expect(s.rollout.machine(dev.machineId)).toMatchObject({ state: 'rolled-back' });
      // A machine that rolled back a release is not offered it again.
      expect(back).toMatchObject({ outcome: 'no-update', reason: expect.stringMatching(/failed or rolled back 1\.1\.0 \(code 44\): not offered it again/) });
      expect(s.rollout.machine(dev.machineId)).toMatchObject({ failedVersion: '1.1.0' });
    });
  });

  it('a machine on a channel that is behind stays where it is and says why; the CLI prints it', async () => {
    const dev = await device('beta');
    await withServer(async (s) => {
      await checkForUpdate({ ...opts(dev, s), group: 'alpha' });
      await reboot(dev);
      const res = await runCli(['check', '--disk', dev.disk, '--pubkey', pub, '--server', `${s.url}v1/update/`, '--config', join(dev.dir, 'update.conf'), '--image-config', join(dev.dir, 'image.conf'), '--machine-id-file', join(dev.dir, 'machine-id'), '--boot-id-file', join(dev.dir, 'boot_id'), '--running', 'USR-B']);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/reported: the update from 1\.0\.0 is running/);
      expect(res.stdout).toMatch(/no update for 1\.1\.0 \(slot USR-B\) on beta: beta carries 1\.0\.0, older than the running 1\.1\.0.*no downgrade/);
    });
  });

  it('refuses a payload signed by a key it does not trust, reports the failure, and leaves the passive slot unbooted', async () => {
    const dev = await device();
    const other = makeKeyPair();
    await withServer(async (s) => {
      const slotB = await readSlot(dev.disk, 'USR-B', 4 * MiB);
      const err = await checkForUpdate({ ...opts(dev, s), trustedKeys: [other.pub] }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'UNTRUSTED_KEY' });
      // Refused on the payload's head: no download reported, nothing written.
      expect(s.rollout.events(dev.machineId).map((e) => `${e.type}/${e.result}/${e.errorCode}`)).toEqual(['3/0/12']);
      expect(Buffer.compare(await readSlot(dev.disk, 'USR-B', 4 * MiB), slotB)).toBe(0);
      const show = await runCli(['gpt', 'next', dev.disk, '--json']);
      expect(JSON.parse(show.stdout)).toMatchObject({ label: 'USR-A' });
    });
  });
});

async function readSlot(disk: string, label: string, length: number): Promise<Buffer> {
  const read = await readDiskGpt(disk);
  const entry = read.table!.entries.find((e) => e.label === label)!;
  const offset = Number(entry.firstLba) * read.sectorSize;
  const fh = await fsp.open(disk, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

describe('fastpatch check: what it meets besides a good server', () => {
  it('a running release with no record stops before the server is asked, unless UNKNOWN_RELEASE=allow', async () => {
    const dev = await device();
    await fsp.rm(`${dev.disk}.status.json`);
    await withServer(async (s) => {
      const err = await checkForUpdate(opts(dev, s)).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'DOWNGRADE', message: expect.stringMatching(/no recorded release.*UNKNOWN_RELEASE=allow/) });
      expect(s.rollout.machine(dev.machineId)).toBeUndefined();
      await fsp.appendFile(join(dev.dir, 'update.conf'), 'UNKNOWN_RELEASE=allow\n');
      const allowed = await checkForUpdate(opts(dev, s));
      expect(allowed).toMatchObject({ outcome: 'updated', running: { version: undefined }, offered: { kind: 'full' } });
    });
  });

  it('a server that offers no usable URL: one IO line and a 3/0 code 34 (response invalid); no internal error', async () => {
    const dev = await device();
    const events: string[] = [];
    const fake = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (/<event /.test(body) && !/<updatecheck/.test(body)) events.push(/eventtype="(\d+)" eventresult="(\d+)" errorcode="(\d+)"/.exec(body)!.slice(1).join('/'));
        res.writeHead(200, { 'Content-Type': 'text/xml' });
        res.end(`<response protocol="3.0"><app appid="${COREOS_APP_ID}" status="ok"><updatecheck status="ok"><urls><url codebase="http://[bad"/></urls><manifest version="1.1.0"><packages><package name="x.fpay" size="10"/></packages><actions><action event="postinstall" sha256="AAAA"/></actions></manifest></updatecheck></app></response>`);
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1/update/`;
      const err = await checkForUpdate({ ...opts(dev, { url: 'x' } as RunningServer), server: url }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'IO', message: expect.stringMatching(/offered no usable URL/) });
      expect(events).toEqual(['3/0/34']);
    } finally {
      fake.close();
    }
  });

  it('an answer dripped a byte at a time does not hold the device past its deadline', async () => {
    const fake = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/xml' });
      const timer = setInterval(() => res.write(' '), 100);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const t0 = performance.now();
      const err = await postOmaha(`http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1/update/`, '<request/>', 600).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'IO', message: expect.stringMatching(/no whole answer within 0\.6 s/) });
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      fake.closeAllConnections();
      fake.close();
    }
  });
});

