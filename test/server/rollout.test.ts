// The update server's rollout state (src/server/rollout-*.ts, docs/ROLLOUT.md): hundreds of
// simulated machines, with an injected clock, through waves, both caps, the self-pause on
// failures and rollbacks, operator pause and resume; then durability (close and reopen, and a
// writer killed with SIGKILL) and hostile input (symlinks, oversized ids, a newer schema).
import { sha256 } from '@noble/hashes/sha2.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { checkPolicy, decideGrant, defaultPolicy, stateAfter, wavePlace } from '../../dist/src/server/rollout-policy.js';
import { EVENTS_KEPT_PER_MACHINE, RolloutStore, type MachineCheck } from '../../dist/src/server/rollout-store.js';
import { codeOf } from '../helpers/errors.js';

const HOUR = 3600_000;
const T0 = Date.UTC(2026, 11, 1, 12);

/** Distinct, random-looking machine ids (32 hex digits, as /etc/machine-id). */
const machineIds = (n: number, seed = 'fleet') => Array.from({ length: n }, (_, i) => createHash('sha256').update(`${seed}-${i}`).digest('hex').slice(0, 32));

/** A temporary folder, removed after `fn` whatever happens; a store in it with a clock the test moves. */
async function withStore<T>(fn: (ctx: { store: RolloutStore; dir: string; path: string; clock: { now: number }; reopen: () => RolloutStore }) => T | Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'fp-rollout-'));
  const clock = { now: T0 };
  const path = join(dir, 'rollout.db');
  const opened: RolloutStore[] = [];
  const open = () => {
    const s = RolloutStore.open(path, { now: () => clock.now });
    opened.push(s);
    return s;
  };
  try {
    return await fn({ store: open(), dir, path, clock, reopen: open });
  } finally {
    for (const s of opened) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const machine = (id: string, version = '1.2.0', group = 'stable'): MachineCheck => ({ machineId: id, group, channel: 'stable', version, bootId: `{boot-${id.slice(0, 8)}}` });

function grantAll(store: RolloutStore, ids: string[], version = '1.3.0', group = 'stable') {
  const granted: string[] = [];
  const refused: Record<string, number> = {};
  for (const id of ids) {
    // A simulated machine runs what it last reported (1.2.0 before its first check).
    const answer = store.grant(machine(id, store.machine(id)?.version ?? '1.2.0', group), version);
    if (answer.granted) granted.push(id);
    else refused[answer.code] = (refused[answer.code] ?? 0) + 1;
  }
  return { granted, refused };
}

describe('wave places', () => {
  it('follow the documented formula, cross-checked with @noble/hashes, and ignore case', () => {
    for (const id of machineIds(50)) {
      const digest = sha256(new TextEncoder().encode(`fastpatch-wave\n${id}`));
      const expected = digest.slice(0, 6).reduce((acc, b) => acc * 256 + b, 0) / 2 ** 48;
      expect(wavePlace(id)).toBe(expected);
      expect(wavePlace(id.toUpperCase())).toBe(expected);
    }
    // The vector docs/ROLLOUT.md gives.
    // SHA-256 = e4d8fdd1b684 e9da...; 0xe4d8fdd1b684 / 2^48.
    expect(wavePlace('0123456789abcdef0123456789abcdef')).toBe(0xe4d8fdd1b684 / 2 ** 48);
    expect(wavePlace('0123456789ABCDEF0123456789ABCDEF')).toBeCloseTo(0.893936027, 9);
  });

  it('are uniform enough: 1000 machines, about 10% below 0.1, every decile populated', () => {
    const places = machineIds(1000).map(wavePlace);
    expect(places.every((p) => p >= 0 && p < 1)).toBe(true);
    const inTen = places.filter((p) => p < 0.1).length;
    expect(inTen).toBeGreaterThanOrEqual(70);
    expect(inTen).toBeLessThanOrEqual(130);
    for (let d = 0; d < 10; d++) expect(places.filter((p) => p >= d / 10 && p < (d + 1) / 10).length).toBeGreaterThan(60);
  });

  it.each([10, 50, 100])('at openPercent %d exactly the machines with place < share are granted, the same ones in a new store', async (percent) => {
    const ids = machineIds(300);
    const expected = ids.filter((id) => wavePlace(id) < percent / 100).sort();
    const first = await withStore(({ store }) => {
      store.group('stable', 'stable');
      store.setPolicy('stable', { openPercent: percent });
      const { granted, refused } = grantAll(store, ids);
      expect(refused.wave ?? 0).toBe(ids.length - expected.length);
      return granted.sort();
    });
    expect(first).toEqual(expected);
    const second = await withStore(({ store }) => {
      store.group('stable', 'stable');
      store.setPolicy('stable', { openPercent: percent });
      return grantAll(store, [...ids].reverse()).granted.sort();
    });
    expect(second).toEqual(expected);
  });

  it('opening the wave wider adds machines; those granted before keep their grant without counting again', () => withStore(({ store, reopen }) => {
    const ids = machineIds(300);
    store.group('stable', 'stable');
    store.setPolicy('stable', { openPercent: 10 });
    const ten = grantAll(store, ids).granted;
    store.close();
    const again = reopen();
    again.setPolicy('stable', { openPercent: 30, maxPerPeriod: 1000 });
    const thirty = grantAll(again, ids).granted;
    expect(thirty.filter((id) => ten.includes(id))).toEqual(ten);
    expect(thirty.length).toBe(ids.filter((id) => wavePlace(id) < 0.3).length);
    expect(again.status('stable')[0]!.grantedInPeriod).toBe(thirty.length);
  }));
});

describe('caps', () => {
  it('grants at most maxPerPeriod per period, then more once the period has passed', () => withStore(({ store, clock }) => {
    const ids = machineIds(300);
    store.group('stable', 'stable');
    store.setPolicy('stable', { maxPerPeriod: 20, periodSeconds: 3600, updateTimeoutSeconds: 7200 });
    const first = grantAll(store, ids);
    expect(first.granted).toHaveLength(20);
    expect(first.refused).toEqual({ 'period-cap': 280 });
    expect(store.status('stable')[0]!.summary).toMatch(/^period cap reached: 20 of 20 updates granted in the last 3600 s; the next from 2026-12-01T13:00:00.000Z/);
    clock.now += HOUR - 1;
    expect(grantAll(store, ids.slice(20)).granted).toHaveLength(0);
    clock.now += 2;
    // The first 20 are still in progress (timeout 2 h): granted again without counting.
    const second = grantAll(store, ids);
    expect(second.granted).toHaveLength(40);
    expect(second.granted.slice(0, 20)).toEqual(first.granted);
    expect(store.status('stable')[0]!.grantedInPeriod).toBe(20);
  }));

  it('keeps at most maxInProgress updating; a 3/2, a check-in on the target and a timeout each free a slot', () => withStore(({ store, clock }) => {
    const ids = machineIds(200);
    store.group('stable', 'stable');
    store.setPolicy('stable', { maxInProgress: 5, updateTimeoutSeconds: 1800 });
    const first = grantAll(store, ids);
    expect(first.granted).toHaveLength(5);
    expect(first.refused).toEqual({ 'in-progress-cap': 195 });
    const [a, b, c] = first.granted as [string, string, string];
    // a resumed download: granted again, no slot taken
    expect(store.grant(machine(a), '1.3.0')).toEqual({ granted: true });
    expect(grantAll(store, ids).granted).toHaveLength(5);
    store.recordEvents(machine(a), [{ type: 13, result: 1 }, { type: 14, result: 1 }, { type: 3, result: 1 }]);
    expect(store.machine(a)!.state).toBe('installed');
    store.recordEvents(machine(a, '1.3.0'), [{ type: 3, result: 2, previousVersion: '1.2.0' }]);
    expect(store.machine(a)).toMatchObject({ state: 'complete', version: '1.3.0' });
    expect(grantAll(store, ids).granted).toHaveLength(5);
    store.checkIn(machine(b, '1.3.0'));
    expect(store.machine(b)!.state).toBe('complete');
    expect(grantAll(store, ids).granted).toHaveLength(5);
    expect(store.grant(machine(c, '1.3.0'), '1.3.0')).toMatchObject({ granted: false, code: 'up-to-date' });
    clock.now += 1800_000 + 1;
    const afterTimeout = grantAll(store, ids);
    expect(afterTimeout.granted).toHaveLength(5);
    expect(store.status('stable')[0]!.inProgress).toBe(5);
  }));
});

describe('self-pause', () => {
  const fail = (store: RolloutStore, id: string, errorCode: number) => store.recordEvents(machine(id), [{ type: 13, result: 1 }, { type: 3, result: 0, errorCode }]);

  it('the third failure or rollback of the release pauses the group in that very call', () => withStore(({ store }) => {
    const ids = machineIds(100);
    const { granted } = grantAll(store, ids);
    expect(granted).toHaveLength(100);
    expect(fail(store, granted[0]!, 9)).toEqual({});
    // a rollback, with update_engine's "resumed" flag bit set: counts
    expect(fail(store, granted[1]!, 44 | (1 << 30))).toEqual({});
    expect(store.machine(granted[1]!)!.state).toBe('rolled-back');
    const { selfPaused } = fail(store, granted[2]!, 44);
    expect(selfPaused).toMatch(new RegExp(`^self: 3 of 3 failures/rollbacks of 1\\.3\\.0: ${granted[0]} code 9, ${granted[1]} code ${44 | (1 << 30)} \\(rollback\\), ${granted[2]} code 44 \\(rollback\\)$`));
    expect(store.findGroup('stable')).toMatchObject({ paused: true, pauseReason: selfPaused });
    expect(store.grant(machine(machineIds(1, 'late')[0]!), '1.3.0')).toMatchObject({ granted: false, code: 'paused' });
    // a fourth report does not re-word the pause
    expect(fail(store, granted[3]!, 9)).toEqual({});
    const [status] = store.status('stable');
    expect(status!.summary).toBe(`paused: ${selfPaused}`);
    expect(status!.failures.map((f) => [f.machineId, f.state])).toEqual([
      [granted[0], 'failed'], [granted[1], 'rolled-back'], [granted[2], 'rolled-back'], [granted[3], 'failed']]);
    expect(status!.states).toMatchObject({ failed: 2, 'rolled-back': 2, granted: 96 });
  }));

  it('resume counts from zero again; machines whose release failed are not offered it again, a download cut is', () => withStore(({ store }) => {
    const ids = machineIds(50);
    grantAll(store, ids.slice(0, 10));
    // A release failure (code 10: the payload's hash) keeps a machine from the release; a download cut (9) does not.
    for (const id of ids.slice(0, 2)) fail(store, id, 10);
    fail(store, ids[2]!, 9);
    expect(store.findGroup('stable')!.paused).toBe(true);
    expect(store.resume('stable')).toMatchObject({ paused: false, pauseReason: '' });
    expect(grantAll(store, ids.slice(10)).granted).toHaveLength(40);
    expect(store.grant(machine(ids[2]!), '1.3.0')).toEqual({ granted: true });
    expect(store.grant(machine(ids[0]!), '1.3.0')).toMatchObject({ granted: false, code: 'failed-before' });
    expect(store.clearFailure(ids[0]!.toUpperCase())).toBe(true);
    expect(store.grant(machine(ids[0]!), '1.3.0')).toEqual({ granted: true });
    expect(fail(store, ids[10]!, 9)).toEqual({});
    expect(fail(store, ids[11]!, 9)).toEqual({});
    expect(fail(store, ids[12]!, 44).selfPaused).toMatch(/^self: 3 of 3 failures\/rollbacks of 1\.3\.0: /);
  }));

  it('failures of an older release do not count; a new release starts a new count', () => withStore(({ store }) => {
    const ids = machineIds(60);
    grantAll(store, ids.slice(0, 20), '1.3.0');
    fail(store, ids[0]!, 9);
    fail(store, ids[1]!, 9);
    grantAll(store, ids.slice(20), '1.3.1');
    expect(store.status('stable')[0]!.release).toMatchObject({ version: '1.3.1' });
    // a late failure report of 1.3.0 is not one of 1.3.1's
    expect(fail(store, ids[2]!, 9)).toEqual({});
    expect(fail(store, ids[20]!, 9)).toEqual({});
    expect(fail(store, ids[21]!, 9)).toEqual({});
    expect(store.findGroup('stable')!.paused).toBe(false);
    expect(fail(store, ids[22]!, 9).selfPaused).toMatch(/of 1\.3\.1: /);
  }));

  it('a machine whose latest outcome is complete is not counted; threshold 0 never pauses; an operator pause keeps its reason', () => withStore(({ store }) => {
    const ids = machineIds(10);
    grantAll(store, ids);
    fail(store, ids[0]!, 9);
    store.recordEvents(machine(ids[0]!, '1.3.0'), [{ type: 3, result: 2, previousVersion: '1.2.0' }]);
    fail(store, ids[1]!, 9);
    expect(fail(store, ids[2]!, 9)).toEqual({});
    store.pause('stable', 'looking at it');
    expect(fail(store, ids[3]!, 9)).toEqual({});
    expect(store.findGroup('stable')!.pauseReason).toBe('operator: looking at it');
    store.resume('stable');
    store.setPolicy('stable', { failureThreshold: 0 });
    for (const id of ids.slice(4)) expect(fail(store, id, 9)).toEqual({});
  }));
});

describe('policy', () => {
  it('operator pause and resume', () => withStore(({ store }) => {
    const ids = machineIds(20);
    store.group('canary', 'stable');
    expect(store.pause('canary', 'bad kernel')).toMatchObject({ paused: true, pauseReason: 'operator: bad kernel' });
    expect(grantAll(store, ids, '1.3.0', 'canary').refused).toEqual({ paused: 20 });
    store.resume('canary');
    expect(grantAll(store, ids, '1.3.0', 'canary').granted).toHaveLength(20);
    expect(store.groups().map((g) => [g.name, g.channel])).toEqual([['canary', 'stable']]);
    expect(codeOf(() => store.pause('nope', 'x'))).toBe('USAGE');
    expect(() => store.pause('canary', '')).toThrow(RangeError);
  }));

  it.each([
    [{ openPercent: 101 }, /openPercent/], [{ openPercent: -1 }, /openPercent/], [{ openPercent: Number.NaN }, /openPercent/],
    [{ maxPerPeriod: 1.5 }, /maxPerPeriod/], [{ maxInProgress: -1 }, /maxInProgress/], [{ periodSeconds: 0 }, /periodSeconds/],
    [{ periodSeconds: 31 * 86400 }, /periodSeconds/], [{ updateTimeoutSeconds: 0 }, /updateTimeoutSeconds/],
    [{ failureThreshold: -3 }, /failureThreshold/], [{ channel: '' }, /channel/], [{ channel: 'x'.repeat(257) }, /channel/],
    [{ paused: true }, /pause\(\)/], [{ name: 'other' }, /name/], [{ colour: 'red' }, /colour/],
  ])('setPolicy(%o) is a RangeError naming the field; nothing changes', (changes, message) => withStore(({ store }) => {
    store.group('stable', 'stable');
    expect(() => store.setPolicy('stable', changes as never)).toThrow(RangeError);
    expect(() => store.setPolicy('stable', changes as never)).toThrow(message);
    expect(store.findGroup('stable')).toEqual(defaultPolicy('stable', 'stable'));
  }));

  it('setPolicy on an unknown group is USAGE; the pure checks and decisions', () => withStore(({ store }) => {
    expect(codeOf(() => store.setPolicy('ghost', { openPercent: 5 }))).toBe('USAGE');
    expect(() => checkPolicy({ ...defaultPolicy('a', 'b'), paused: true })).toThrow(/pauseReason/);
    const p = { ...defaultPolicy('a', 'b'), openPercent: 50, maxPerPeriod: 2, maxInProgress: 1 };
    expect(decideGrant(p, 0.6, { grantedInPeriod: 0, inProgress: 0 })?.code).toBe('wave');
    expect(decideGrant(p, 0.1, { grantedInPeriod: 2, inProgress: 0 })?.code).toBe('period-cap');
    expect(decideGrant(p, 0.1, { grantedInPeriod: 1, inProgress: 1 })?.code).toBe('in-progress-cap');
    expect(decideGrant(p, 0.1, { grantedInPeriod: 1, inProgress: 0 })).toBeUndefined();
    expect([[13, 1], [14, 1], [3, 1], [3, 2], [3, 0], [3, 9], [800, 1], [3, 4]].map(([type, result]) => stateAfter({ type: type!, result: result! })))
      .toEqual(['downloading', 'downloaded', 'installed', 'complete', 'failed', 'held', undefined, undefined]);
  }));
});

describe('status and events', () => {
  it('says where the rollout stands: no release, the wave, complete', () => withStore(({ store }) => {
    const ids = machineIds(200);
    store.group('stable', 'stable');
    expect(store.status()[0]!.summary).toBe('no release offered yet');
    store.setPolicy('stable', { openPercent: 25 });
    const { granted } = grantAll(store, ids);
    const inWave = ids.filter((id) => wavePlace(id) < 0.25).length;
    const [s] = store.status('stable');
    expect(s).toMatchObject({ machines: 200, inWave, inProgress: inWave, grantedInPeriod: inWave, release: { version: '1.3.0', machines: 0 } });
    expect(s!.versions).toEqual([{ version: '1.2.0', machines: 200 }]);
    expect(s!.summary).toBe(`wave 25% open: ${inWave} of 200 machines in it; 0 run 1.3.0, ${inWave} updating, 0 failed or rolled back`);
    store.setPolicy('stable', { openPercent: 100 });
    for (const id of ids) {
      if (!granted.includes(id)) expect(store.grant(machine(id), '1.3.0').granted).toBe(true);
      store.recordEvents(machine(id, '1.3.0'), [{ type: 3, result: 2, previousVersion: '1.2.0' }]);
    }
    expect(store.status('stable')[0]!.summary).toBe('complete: all 200 machines run 1.3.0');
    expect(codeOf(() => store.status('nope'))).toBe('USAGE');
  }));

  it('lists a machine\'s events newest first with their target, and keeps only the newest', () => withStore(({ store, clock }) => {
    const [id] = machineIds(1) as [string];
    store.grant(machine(id), '1.3.0');
    for (let i = 0; i < 20; i++) {
      clock.now += 1000;
      store.recordEvents(machine(id), Array.from({ length: 8 }, () => ({ type: 13, result: 1 })));
    }
    store.recordEvents(machine(id), [{ type: 3, result: 0, errorCode: 9 }]);
    const events = store.events(id.toUpperCase(), 1000);
    expect(events).toHaveLength(EVENTS_KEPT_PER_MACHINE);
    expect(events[0]).toEqual({ at: T0 + 20_000, group: 'stable', version: '1.2.0', target: '1.3.0', type: 3, result: 0, errorCode: 9 });
    expect(store.events(id, 3)).toHaveLength(3);
    expect(store.events('unknown')).toEqual([]);
    expect(() => store.events(id, 0)).toThrow(RangeError);
    expect(store.machine(id)).toMatchObject({ state: 'failed', errorCode: 9, failedVersion: '', target: '1.3.0' }); // a download cut: may retry
  }));

  it('times 10,000 checkIns + grants (prints the rate; asserts nothing on time)', () => withStore(({ store }) => {
    const ids = machineIds(10_000, 'bench');
    store.group('stable', 'stable');
    store.setPolicy('stable', { openPercent: 50, maxPerPeriod: 2000, maxInProgress: 1000 });
    const rates: string[] = [];
    for (const round of ['first', 'again']) {
      const start = performance.now();
      let granted = 0;
      for (const id of ids) {
        const m = machine(id);
        store.checkIn(m);
        if (store.grant(m, '1.3.0').granted) granted++;
      }
      const ms = performance.now() - start;
      rates.push(`${round}: ${Math.round((ids.length / ms) * 1000)} checkIn+grant/s (${granted} granted)`);
    }
    console.log(`rollout store, 10,000 machines, wave 50%, caps 2000/period and 1000 in progress: ${rates.join('; ')}`);
    expect(store.status('stable')[0]!.inProgress).toBe(1000);
  }));
});

describe('durability', () => {
  it('everything recorded is there after close and reopen', () => withStore(({ store, reopen, path }) => {
    const ids = machineIds(300);
    store.group('stable', 'stable');
    store.setPolicy('stable', { openPercent: 60, maxInProgress: 100 });
    grantAll(store, ids);
    for (const id of ids.slice(0, 50)) store.recordEvents(machine(id), [{ type: 13, result: 1 }]);
    store.pause('stable', 'night');
    const before = { status: store.status(), events: store.events(ids[0]!), machine: store.machine(ids[1]!) };
    store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const after = reopen();
    expect({ status: after.status(), events: after.events(ids[0]!), machine: after.machine(ids[1]!) }).toEqual(before);
  }));

  it('a writer killed with SIGKILL loses none of what its calls returned from', () => withStore(async ({ dir, path, reopen }) => {
    const storeUrl = new URL('../../dist/src/server/rollout-store.js', import.meta.url).href;
    const script = `
      import { RolloutStore } from ${JSON.stringify(storeUrl)};
      const s = RolloutStore.open(${JSON.stringify(path)});
      for (let i = 0; i < 500; i++) {
        const m = { machineId: 'killed-' + i, group: 'edge', channel: 'edge', version: '1.0.0', bootId: '{b}' };
        s.grant(m, '2.0.0');
        if (i % 2 === 0) s.recordEvents(m, [{ type: 13, result: 1 }, { type: 3, result: 0, errorCode: 9 }]);
      }
      process.stdout.write('written\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('written') && resolve());
        child.on('exit', (code) => reject(new Error(`child exited with ${code} before writing`)));
      });
      expect(existsSync(`${path}-wal`)).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    const store = reopen();
    const [edge] = store.status('edge');
    // threshold 3: the third failure paused the group, so later grants were refused
    expect(edge!.policy.paused).toBe(true);
    expect(edge).toMatchObject({ machines: 500, release: { version: '2.0.0' } });
    expect(store.machine('killed-499')).toMatchObject({ state: 'idle', version: '1.0.0' });
    expect(store.machine('killed-0')).toMatchObject({ state: 'failed', target: '2.0.0' });
    expect(store.events('killed-498')).toHaveLength(2);
  }));
});

describe('sharing the file', () => {
  it('two stores on one file (the server and an operator CLI) see each other\'s changes', () => withStore(({ store, reopen }) => {
    const cli = reopen();
    store.group('stable', 'stable');
    cli.pause('stable', 'from the CLI');
    expect(store.grant(machine('m1'), '1.3.0')).toMatchObject({ granted: false, code: 'paused' });
    cli.resume('stable');
    expect(store.grant(machine('m1'), '1.3.0')).toEqual({ granted: true });
    expect(cli.machine('m1')!.state).toBe('granted');
  }));

  it('a call waits for another process\'s write transaction instead of failing (busy timeout)', () => withStore(async ({ store, dir, path }) => {
    store.group('stable', 'stable');
    const script = `
      import { DatabaseSync } from 'node:sqlite';
      const db = new DatabaseSync(${JSON.stringify(path)});
      db.exec('BEGIN IMMEDIATE');
      db.exec("UPDATE rollout_groups SET failure_threshold = 7");
      process.stdout.write('locked\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 700);
      db.exec('COMMIT');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
        child.once('exit', (code) => reject(new Error(`child exited with ${code} before locking`)));
      });
      const start = performance.now();
      expect(store.grant(machine('m1'), '1.3.0')).toEqual({ granted: true });
      expect(performance.now() - start).toBeGreaterThan(300);
      expect(store.findGroup('stable')!.failureThreshold).toBe(7);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }));
});

describe('hostile input', () => {
  it('refuses a symlink at the database path or its WAL, without touching the target', () => withStore(({ dir }) => {
    const target = join(dir, 'target');
    writeFileSync(target, 'not yours');
    const link = join(dir, 'link.db');
    symlinkSync(target, link);
    expect(codeOf(() => RolloutStore.open(link))).toBe('USAGE');
    expect(() => RolloutStore.open(link)).toThrow(/symbolic link/);
    const dangling = join(dir, 'dangling.db');
    symlinkSync(join(dir, 'created-through-link'), dangling);
    expect(codeOf(() => RolloutStore.open(dangling))).toBe('USAGE');
    expect(existsSync(join(dir, 'created-through-link'))).toBe(false);
    symlinkSync(target, join(dir, 'w.db-wal'));
    expect(codeOf(() => RolloutStore.open(join(dir, 'w.db')))).toBe('USAGE');
    expect(existsSync(join(dir, 'w.db'))).toBe(false);
  }));

  it('refuses oversized ids, versions and groups, too many events, and bad numbers', () => withStore(({ store }) => {
    const long = 'a'.repeat(257);
    expect(() => store.checkIn(machine(long))).toThrow(RangeError);
    expect(() => store.checkIn(machine('a'.repeat(256)))).not.toThrow();
    expect(() => store.grant(machine('m1'), long)).toThrow(/version/);
    expect(() => store.checkIn(machine('m1', long))).toThrow(/version/);
    expect(() => store.checkIn(machine('m1', '1.0', long))).toThrow(/group/);
    expect(() => store.checkIn({ ...machine('m1'), bootId: long })).toThrow(/bootId/);
    expect(() => store.checkIn({ ...machine('m1'), oem: long })).toThrow(/oem/);
    expect(() => store.checkIn(machine(''))).toThrow(/machineId/);
    expect(() => store.recordEvents(machine('m1'), Array.from({ length: 17 }, () => ({ type: 13, result: 1 })))).toThrow(/at most 16/);
    expect(() => store.recordEvents(machine('m1'), [{ type: 3, result: 0, previousVersion: long }])).toThrow(/previousVersion/);
    expect(() => store.recordEvents(machine('m1'), [{ type: 3.5, result: 0 }])).toThrow(/type/);
    expect(() => store.recordEvents(machine('m1'), [{ type: 3, result: 0, errorCode: Number.NaN }])).toThrow(/errorCode/);
    expect(() => store.checkIn({ ...machine('m1'), at: -1 })).toThrow(/at/);
    expect(store.events('m1')).toEqual([]);
  }));

  it('refuses a newer schema, another database, a non-database and a file others may write', () => withStore(({ store, dir, path }) => {
    store.close();
    const db = new DatabaseSync(path);
    db.exec('PRAGMA user_version = 2');
    db.close();
    expect(codeOf(() => RolloutStore.open(path))).toBe('USAGE');
    expect(() => RolloutStore.open(path)).toThrow(/schema version 2, newer than the 1 this FastPatch knows/);
    const other = join(dir, 'other.db');
    const odb = new DatabaseSync(other);
    odb.exec('CREATE TABLE t (x)');
    odb.close();
    chmodSync(other, 0o600);
    expect(() => RolloutStore.open(other)).toThrow(/not a FastPatch rollout database/);
    const text = join(dir, 'text.db');
    writeFileSync(text, 'x'.repeat(4096), { mode: 0o600 });
    expect(codeOf(() => RolloutStore.open(text))).toBe('USAGE');
    const open = join(dir, 'open.db');
    writeFileSync(open, '', { mode: 0o600 });
    chmodSync(open, 0o666);
    expect(() => RolloutStore.open(open)).toThrow(/may be written by other users/);
    if (process.getuid?.() === 0) {
      const theirs = join(dir, 'theirs.db');
      writeFileSync(theirs, '', { mode: 0o600 });
      chownSync(theirs, 65534, 65534);
      expect(() => RolloutStore.open(theirs)).toThrow(/belongs to uid 65534/);
    }
  }));
});
