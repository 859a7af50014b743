// `fastpatch agent` (agent/daemon.ts) on real A/B disk images against a real `fastpatch serve` on
// loopback and, for the etcd strategies, a real single etcd: an update installed, the reboot
// performed by the test (GRUB's boot model written to the disk, a new boot id, the agent started
// again against the slot that booted), then the health check decides: healthy, the slot is
// marked good, 3/2 reaches the server and the reboot slot is freed; unhealthy, the old slot boots
// next and the reboot slot stays held until the machine is back on the old release. The clock and
// sleeping are injected, so windows and lock retries take no real time.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRelease, changeSlots, createFlatcarDisk, getSlotBits, grubNext, inWindow, installSlot, openPayload, parseRebootWindow, readDiskGpt,
  ReleaseRepository, runAgent, sampleImage, startServer, type AgentOptions, type RunningServer,
} from '../../dist/src/index.js';
import { semaphoreKey } from '../../dist/src/fleet/semaphore.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { MiB, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
// Not helpers/etcd.ts's etcdMissing: it asks `etcdctl --version`, which etcdctl 3.4 refuses (`etcdctl version`).
const noEtcd = (() => {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    execFileSync('etcdctl', ['version'], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
})();
let dir: string;
let repo: string;
let etcd: EtcdCluster | undefined;
let n = 0;

beforeAll(async () => {
  dir = await tempDir('agent');
  repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [signer.key] });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2]] as const) {
    await fsp.writeFile(join(dir, `${version}.img`), sampleImage({ size: 4 * MiB, variant }));
    await addRelease(repo, { image: join(dir, `${version}.img`), version, keys: [signer.key] });
  }
  if (!noEtcd) etcd = await startEtcd(1);
}, 120_000);
afterAll(async () => {
  await etcd?.stop();
  await removeDir(dir);
});

/** A device whose USR-A runs 1.0.0, on channel alpha (which carries 1.1.0). */
async function device(conf = '') {
  const d = join(dir, `dev-${n++}`);
  await fsp.mkdir(d);
  const disk = join(d, 'disk.img');
  await createFlatcarDisk(disk, { size: 32 * MiB });
  const r = await ReleaseRepository.open(repo);
  await installSlot(openPayload(r.payloadPath((await r.readRelease('1.0.0'))!.payloads[0]!.sha256)), { disk, slot: 'USR-A', trustedKeys: [signer.pub] });
  const machineId = `${'cd'.repeat(15)}${String(n).padStart(2, '0')}`;
  await fsp.writeFile(join(d, 'machine-id'), `${machineId}\n`);
  await fsp.writeFile(join(d, 'boot_id'), `${crypto.randomUUID()}\n`);
  await fsp.writeFile(join(d, 'image.conf'), 'GROUP=stable\n', { mode: 0o644 });
  await fsp.writeFile(join(d, 'update.conf'), `GROUP=alpha\n${conf}`, { mode: 0o644 });
  return { dir: d, disk, machineId, group: `agent-test-${n}` };
}
type Device = Awaited<ReturnType<typeof device>>;

/** A machine's clock, sleep and reboot, all recorded; `onSleep` runs inside each sleep. */
function machine(start = new Date(2024, 5, 3, 12, 0)) {
  const m = {
    t: start.getTime(), sleeps: [] as number[], reboots: [] as Date[], log: [] as string[],
    onSleep: undefined as undefined | ((ms: number) => Promise<void> | void),
  };
  const hooks = {
    now: () => new Date(m.t),
    sleep: async (ms: number) => {
      m.sleeps.push(ms);
      m.t += ms;
      await m.onSleep?.(ms);
    },
    random: () => 0.5,
    reboot: async () => void m.reboots.push(new Date(m.t)),
    log: (line: string) => void m.log.push(line),
  };
  return { m, hooks };
}

const opts = (dev: Device, s: RunningServer, hooks: Partial<AgentOptions>, extra: Partial<AgentOptions> = {}): AgentOptions => ({
  disk: dev.disk, trustedKeys: [signer.pub], server: `${s.url}v1/update/`, once: true,
  config: join(dev.dir, 'update.conf'), imageConfig: join(dev.dir, 'image.conf'),
  machineIdFile: join(dev.dir, 'machine-id'), bootIdFile: join(dev.dir, 'boot_id'), lockGroup: dev.group, healthGraceSeconds: 0,
  ...hooks, ...extra,
});

/** The reboot: GRUB's choice written as a boot writes it (a slot on trial uses its try), a new boot id. */
async function boot(dev: Device): Promise<string> {
  let label = '';
  await changeSlots(dev.disk, (entries) => {
    const d = grubNext(entries);
    if (!d.bootable) throw new Error('nothing bootable');
    label = entries.find((e) => e.index === d.index)!.label;
    return d.entries;
  }, { allowUnbootable: true });
  await fsp.writeFile(join(dev.dir, 'boot_id'), `${crypto.randomUUID()}\n`);
  return label;
}

async function slotBits(dev: Device, label: string) {
  const read = await readDiskGpt(dev.disk);
  return getSlotBits(read.table!.entries.find((e) => e.label === label)!.attributes);
}

const semaphore = (dev: Device) => JSON.parse(etcd!.etcdctl('get', semaphoreKey(dev.group), '--print-value-only') || '{"holders":[],"records":{}}') as { holders: string[]; records: Record<string, unknown> };
const events = (s: RunningServer, dev: Device) => s.rollout.events(dev.machineId).map((e) => `${e.type}/${e.result}${e.errorCode ? `/${e.errorCode}` : ''}`);

async function withServer<T>(work: (s: RunningServer) => Promise<T>): Promise<T> {
  const s = await startServer({ repository: repo, state: join(dir, `state-${n}.sqlite`) });
  try {
    return await work(s);
  } finally {
    await s.close();
  }
}

describe.skipIf(noEtcd)('fastpatch agent with etcd', () => {
  it('best-effort with etcd up takes a slot, reboots; healthy in the new release: marked good, 3/2 reported, slot freed', async () => {
    const dev = await device(`ETCD_ENDPOINTS=${etcd!.endpoints.join(',')}\n`);
    await withServer(async (s) => {
      const { m, hooks } = machine();
      const first = await runAgent(opts(dev, s, hooks));
      expect(first).toMatchObject({ boot: { state: 'steady' }, check: { outcome: 'updated', offered: { version: '1.1.0' } }, strategy: { configured: 'best-effort', chosen: 'etcd-lock', why: expect.stringMatching(/answers/) } });
      expect(first.reboot).toMatchObject({ done: true, lock: { id: dev.machineId, record: { release: '1.1.0', from: '1.0.0', state: 'rebooting' } } });
      expect(m.reboots).toHaveLength(1);
      expect(semaphore(dev)).toMatchObject({ holders: [dev.machineId], records: { [dev.machineId]: { release: '1.1.0', from: '1.0.0', state: 'rebooting' } } });

      expect(await boot(dev)).toBe('USR-B');
      expect(await slotBits(dev, 'USR-B')).toMatchObject({ successful: false, tries: 0 });
      const after = await runAgent(opts(dev, s, hooks, { running: 'USR-B', healthCheck: 'test "$FASTPATCH_RELEASE" = 1.1.0 && test "$FASTPATCH_PREVIOUS_RELEASE" = 1.0.0', healthGraceSeconds: 30 }));
      expect(after.boot).toMatchObject({ state: 'confirmed', release: '1.1.0', markedGood: 'USR-B', health: { healthy: true, code: 0 }, lockReleased: true, reported: [{ type: 3, result: 2, previousVersion: '1.0.0' }] });
      expect(m.sleeps).toContain(30_000); // the grace, before the check ran
      expect(await slotBits(dev, 'USR-B')).toMatchObject({ successful: true });
      expect(events(s, dev)).toContain('3/2');
      expect(s.rollout.machine(dev.machineId)).toMatchObject({ state: 'complete', version: '1.1.0' });
      expect(semaphore(dev).holders).toEqual([]);
      expect(after.reboot.done).toBe(false);
      expect(m.reboots).toHaveLength(1);
    });
  });

  it('unhealthy (HEALTH_CHECK in update.conf): rolled back, rebooted, slot still held with its record; back on the old release: 3/0 code 44, slot freed', async () => {
    const dev = await device(`REBOOT_STRATEGY=etcd-lock\nETCD_ENDPOINTS=${etcd!.endpoints.join(',')}\nHEALTH_CHECK=echo kubelet down; exit 3\nHEALTH_GRACE=5\n`);
    await withServer(async (s) => {
      const { m, hooks } = machine();
      expect((await runAgent(opts(dev, s, hooks, { healthGraceSeconds: undefined as never }))).reboot.done).toBe(true);
      expect(await boot(dev)).toBe('USR-B');
      const bad = await runAgent({ ...opts(dev, s, hooks, { running: 'USR-B' }), healthGraceSeconds: undefined as never });
      expect(bad.boot).toMatchObject({ state: 'unhealthy', release: '1.1.0', rolledBackTo: 'USR-A', lockHeld: true, health: { healthy: false, code: 3, output: expect.stringContaining('kubelet down') } });
      expect(m.sleeps).toContain(5_000); // HEALTH_GRACE from the file
      expect(m.reboots).toHaveLength(2);
      expect(semaphore(dev)).toMatchObject({ holders: [dev.machineId], records: { [dev.machineId]: { release: '1.0.0', from: '1.1.0', state: 'rebooting' } } });
      expect(events(s, dev)).not.toContain('3/2');
      expect(await slotBits(dev, 'USR-B')).toMatchObject({ successful: false });

      expect(await boot(dev)).toBe('USR-A');
      const back = await runAgent(opts(dev, s, hooks, { running: 'USR-A' }));
      expect(back.boot).toMatchObject({ state: 'fell-back', release: '1.1.0', lockReleased: true, reported: [{ type: 3, result: 0, errorCode: 44, previousVersion: '1.0.0' }] });
      expect(s.rollout.machine(dev.machineId)).toMatchObject({ state: 'rolled-back', failedVersion: '1.1.0' });
      expect(semaphore(dev).holders).toEqual([]);
      expect(back.reboot.done).toBe(false);
    });
  });

  it('etcd-lock, one slot, two machines: the second waits (5 s, 10 s, ...) while the first holds, and reboots once it is freed', async () => {
    const a = await device();
    const b = await device();
    b.group = a.group;
    await withServer(async (s) => {
      const ma = machine();
      const mb = machine();
      const lockOpts = { strategy: 'etcd-lock' as const, etcdEndpoints: etcd!.endpoints };
      expect((await runAgent(opts(a, s, ma.hooks, lockOpts))).reboot).toMatchObject({ done: true, lock: { attempts: 1 } });
      const seen: string[][] = [];
      let rebootedA = false;
      mb.m.onSleep = async () => {
        seen.push(semaphore(a).holders);
        if (seen.length === 2) {
          // A comes back healthy: its agent frees the slot.
          expect(await boot(a)).toBe('USR-B');
          expect((await runAgent(opts(a, s, ma.hooks, { ...lockOpts, running: 'USR-B' }))).boot).toMatchObject({ state: 'confirmed', lockReleased: true });
          rebootedA = true;
        }
      };
      const second = await runAgent(opts(b, s, mb.hooks, lockOpts));
      expect(rebootedA).toBe(true);
      expect(seen.slice(0, 2)).toEqual([[a.machineId], [a.machineId]]);
      expect(mb.m.sleeps).toEqual([5_000, 10_000]);
      expect(mb.m.log.filter((l) => /all 1 slot is held/.test(l))).toHaveLength(2);
      expect(second.reboot).toMatchObject({ done: true, lock: { attempts: 3, id: b.machineId } });
      expect(semaphore(a).holders).toEqual([b.machineId]);
    });
  });

  it('etcd-lock outside the window takes no slot while it waits (unlike locksmith, Flatcar #408)', async () => {
    const dev = await device();
    await withServer(async (s) => {
      const { m, hooks } = machine(new Date(2024, 5, 3, 12, 0));
      const held: string[][] = [];
      m.onSleep = () => void held.push(semaphore(dev).holders);
      const r = await runAgent(opts(dev, s, hooks, { strategy: 'etcd-lock', etcdEndpoints: etcd!.endpoints, window: parseRebootWindow('02:00', '1h') }));
      expect(held).toEqual([[]]);
      expect(m.reboots).toHaveLength(1);
      expect(m.reboots[0]).toEqual(new Date(2024, 5, 4, 2, 0));
      expect(r.reboot).toMatchObject({ done: true, lock: { attempts: 1 } });
      expect(semaphore(dev).holders).toEqual([dev.machineId]);
    });
  });
});

describe('fastpatch agent without etcd', () => {
  it('REBOOT_STRATEGY=off installs and does not reboot; the update waits in the passive slot', async () => {
    const dev = await device('REBOOT_STRATEGY=off\n');
    await withServer(async (s) => {
      const { m, hooks } = machine();
      const r = await runAgent(opts(dev, s, hooks));
      expect(r).toMatchObject({ check: { outcome: 'updated' }, strategy: { configured: 'off', chosen: 'off' }, reboot: { done: false, why: expect.stringMatching(/off: 1\.1\.0 runs after the next reboot/) } });
      expect(m.reboots).toEqual([]);
      expect(await slotBits(dev, 'USR-B')).toMatchObject({ tries: 1, successful: false });
      // A second pass in the same boot finds the update pending and still does not reboot.
      const again = await runAgent(opts(dev, s, hooks));
      expect(again).toMatchObject({ boot: { state: 'reboot-pending' }, check: { outcome: 'reboot-pending' }, reboot: { done: false } });
      expect(m.reboots).toEqual([]);
    });
  });

  it('reboot with the window closed: no reboot until the clock enters it', async () => {
    const dev = await device('REBOOT_STRATEGY=reboot\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=30m\n');
    await withServer(async (s) => {
      const { m, hooks } = machine(new Date(2024, 5, 3, 12, 0)); // Monday noon
      const r = await runAgent(opts(dev, s, hooks));
      expect(r.window).toBe('weekly on Thu at 04:00 for 30m');
      expect(m.reboots).toHaveLength(1);
      expect(m.reboots[0]).toEqual(new Date(2024, 5, 6, 4, 0));
      expect(inWindow(parseRebootWindow('Thu 04:00', '30m')!, m.reboots[0]!)).toBe(true);
      expect(m.sleeps).toEqual([new Date(2024, 5, 6, 4, 0).getTime() - new Date(2024, 5, 3, 12, 0).getTime()]);
      expect(r.reboot).toMatchObject({ done: true, why: 'into 1.1.0 (reboot)', waitedMs: m.sleeps[0] });
    });
  });

  it('best-effort with etcd unreachable: reboots without a lock, and says so', async () => {
    const dev = await device('ETCD_ENDPOINTS=http://127.0.0.1:9\n');
    await withServer(async (s) => {
      const { m, hooks } = machine();
      const r = await runAgent(opts(dev, s, hooks, { etcdTimeoutMs: 800 }));
      expect(r.strategy).toEqual({ configured: 'best-effort', chosen: 'reboot', why: expect.stringMatching(/best-effort: etcd at http:\/\/127\.0\.0\.1:9 does not answer/) });
      expect(r.reboot).toMatchObject({ done: true, why: 'into 1.1.0 (reboot)' });
      expect(r.reboot.lock).toBeUndefined();
      expect(m.reboots).toHaveLength(1);
    });
  });

  it('the daemon: first check after the start delay, then the install and the reboot; a REBOOT_COMMAND that fails is an IO error', async () => {
    const dev = await device('REBOOT_STRATEGY=reboot\n');
    await withServer(async (s) => {
      const { m, hooks } = machine();
      const r = await runAgent(opts(dev, s, hooks, { once: false }));
      expect(m.sleeps).toEqual([7 * 60_000]); // update_engine's first check, fuzz centred (random 0.5)
      expect(r.reboot.done).toBe(true);
      const marker = join(dev.dir, 'rebooted');
      const dev2 = await device(`REBOOT_STRATEGY=reboot\nREBOOT_COMMAND=touch ${marker}\n`);
      const { reboot: _ignored, ...noReboot } = machine().hooks;
      expect((await runAgent(opts(dev2, s, noReboot))).reboot.done).toBe(true);
      await expect(fsp.stat(marker)).resolves.toBeTruthy();
      const dev3 = await device('REBOOT_STRATEGY=reboot\nREBOOT_COMMAND=echo no logind >&2; exit 1\n');
      await expect(runAgent(opts(dev3, s, noReboot))).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/reboot command .* failed \(exit 1\): no logind/) });
    });
  });
});

describe('the daemon loop', () => {
  it('checks on the schedule, keeps an update under off, and stops on its signal between steps', async () => {
    const dev = await device('REBOOT_STRATEGY=off\n');
    await withServer(async (s) => {
      const { m, hooks } = machine();
      const stop = new AbortController();
      m.onSleep = () => {
        if (m.sleeps.length === 2) stop.abort();
      };
      const r = await runAgent(opts(dev, s, hooks, { once: false, signal: stop.signal }));
      expect(m.sleeps).toEqual([7 * 60_000, 45 * 60_000]);
      expect(r).toMatchObject({ check: { outcome: 'updated' }, strategy: { chosen: 'off' }, reboot: { done: false } });
      expect(m.reboots).toEqual([]);
    });
  });
});

describe('the check schedule (update_engine\'s)', () => {
  it('first check 7 min ± 5, then 45 min ± 5; failures double the wait up to 4 h', async () => {
    const { firstCheckDelay, nextCheckDelay, lockRetryDelay } = await import('../../dist/src/agent/schedule.js');
    const s = (await import('../../dist/src/index.js')).UPDATE_ENGINE_SCHEDULE;
    expect([firstCheckDelay(s, 0), firstCheckDelay(s, 0.5), firstCheckDelay(s, 0.999999)].map((ms) => Math.round(ms / 60_000))).toEqual([2, 7, 12]);
    expect([0, 1, 2, 3, 10].map((f) => nextCheckDelay(s, f, 0.5) / 60_000)).toEqual([45, 90, 180, 240, 240]);
    expect(nextCheckDelay(s, 10, 0.999999)).toBeLessThanOrEqual(4 * 3600_000 + 5 * 60_000);
    expect([0, 1, 2, 5, 6, 20].map((a) => lockRetryDelay(a) / 1000)).toEqual([5, 10, 20, 160, 300, 300]);
  });
});
