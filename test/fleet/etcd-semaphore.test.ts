// The reboot semaphore (fleet/semaphore.ts, pure) and its compare-and-swap through a real etcd
// 3.4 (fleet/etcd-semaphore.ts). The bar: however many machines contend, through a leader crash,
// etcd's own history of the key never shows more holders than slots, and no slot is lost.
import { describe, expect, it } from 'vitest';
import { FastPatchError } from '../../dist/src/errors.js';
import { EtcdSemaphore } from '../../dist/src/fleet/etcd-semaphore.js';
import {
  decodeSemaphore, encodeSemaphore, freshSemaphore, lock, semaphoreKey, setMax, unlock, MAX_HOLDERS, type Semaphore,
} from '../../dist/src/fleet/semaphore.js';
import { etcdMissing, startEtcd, type EtcdCluster } from '../helpers/etcd.js';

const missing = etcdMissing();
if (missing) console.warn(`etcd semaphore tests skipped: ${missing}`);
const DEFAULT_KEY = 'coreos.com/updateengine/rebootlock/semaphore';
const rec = (since: string) => ({ release: '2.0.0', from: '1.0.0', since, state: 'rebooting' as const });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function must(s: ReturnType<typeof decodeSemaphore>): Semaphore {
  if ('invalid' in s) throw new Error(s.invalid);
  return s;
}

describe('semaphore.ts: locksmith\'s value, pure', () => {
  it('round-trips, and reads locksmith\'s own values', () => {
    const s = { semaphore: 0, max: 2, holders: ['a', 'b'], records: { a: rec('2026-01-01T00:00:00.000Z') } };
    expect(decodeSemaphore(encodeSemaphore(s))).toEqual(s);
    expect(JSON.parse(encodeSemaphore(s))).toMatchObject({ semaphore: 0, max: 2, holders: ['a', 'b'] });
    expect(decodeSemaphore('{"semaphore":1,"max":1,"holders":null}')).toEqual({ semaphore: 1, max: 1, holders: [], records: {} });
    expect(decodeSemaphore('{"semaphore":0,"max":1,"holders":["abc"]}')).toEqual({ semaphore: 0, max: 1, holders: ['abc'], records: {} });
    expect(decodeSemaphore(encodeSemaphore(freshSemaphore()))).toEqual(freshSemaphore());
  });

  it.each([
    ['not JSON', '{"max":1,', /not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['max -1', '{"semaphore":2,"max":-1,"holders":[]}', /max must be/],
    ['max 1.5', '{"max":1.5,"holders":[]}', /max must be/],
    ['holders not a list', '{"max":1,"holders":"abc"}', /holders must be/],
    [`${MAX_HOLDERS * 2} holders`, JSON.stringify({ max: 1, holders: Array.from({ length: MAX_HOLDERS * 2 }, (_, i) => `m${i}`) }), /holders must be/],
    ['a 300-character id', JSON.stringify({ max: 1, holders: ['x'.repeat(300)] }), /holders must be/],
    ['an empty id', '{"max":1,"holders":[""]}', /holders must be/],
    ['records a list', '{"max":1,"holders":[],"records":[]}', /records must be/],
  ])('refuses %s, saying why', (_name, text, why) => {
    const r = decodeSemaphore(text);
    expect('invalid' in r && r.invalid).toMatch(why);
  });

  it('ignores records of the wrong shape, and records of non-holders', () => {
    const text = JSON.stringify({
      max: 3, holders: ['c', 'a', 'b', 'a'],
      records: { a: { ...rec('t'), state: 'dancing' }, b: { release: 2 }, c: rec('t'), z: rec('t') },
    });
    expect(decodeSemaphore(text)).toEqual({ semaphore: 0, max: 3, holders: ['a', 'b', 'c'], records: { c: rec('t') } });
    // Ids are data: a holder named __proto__ or toString is an id like any other, never the record object's prototype.
    const odd = must(decodeSemaphore(`{"max":3,"holders":["__proto__","toString"],"records":{"__proto__":${JSON.stringify(rec('t'))}}}`));
    expect(odd.holders).toEqual(['__proto__', 'toString']);
    expect(Object.getPrototypeOf(odd.records)).toBe(Object.prototype);
    expect(Object.keys(odd.records)).toEqual(['__proto__']);
    expect(JSON.parse(encodeSemaphore(odd)).records).toEqual(JSON.parse(`{"__proto__":${JSON.stringify(rec('t'))}}`));
    const relocked = lock(freshSemaphore(2), '__proto__', rec('u'));
    expect('value' in relocked && Object.keys(relocked.value.records)).toEqual(['__proto__']);
  });

  it('lock is recursive; unlock of a non-holder changes nothing; set-max below the holders goes negative', () => {
    const one = lock(freshSemaphore(1), 'a');
    expect(one).toMatchObject({ changed: true, value: { semaphore: 0, holders: ['a'] } });
    const s = (one as { value: Semaphore }).value;
    expect(lock(s, 'a')).toEqual({ value: s, changed: false });
    expect(lock(s, 'a', rec('t'))).toMatchObject({ changed: true, value: { holders: ['a'], records: { a: rec('t') } } });
    expect(lock(s, 'b')).toEqual({ refused: 'all 1 slot is held (a)' });
    expect(unlock(s, 'b')).toEqual({ value: s, changed: false });
    const two = must(decodeSemaphore('{"max":3,"holders":["a","b","c"]}'));
    expect(setMax(two, 1)).toMatchObject({ changed: true, value: { max: 1, semaphore: -2, holders: ['a', 'b', 'c'] } });
    expect(JSON.parse(encodeSemaphore((setMax(two, 1) as { value: Semaphore }).value))).toMatchObject({ semaphore: -2, max: 1 });
    expect(setMax(two, -1)).toHaveProperty('refused');
  });

  it('keys: locksmith\'s, the group escaped as Go\'s url.QueryEscape', () => {
    expect(semaphoreKey()).toBe(DEFAULT_KEY);
    expect(semaphoreKey('default')).toBe(DEFAULT_KEY);
    expect(semaphoreKey('a b/c')).toBe('coreos.com/updateengine/rebootlock/groups/a+b%2Fc/semaphore');
    expect(semaphoreKey('wörk~1')).toBe('coreos.com/updateengine/rebootlock/groups/w%C3%B6rk~1/semaphore');
  });
});

/** Every value the key ever had, oldest first, walked back through etcd's own revisions. */
function history(cluster: EtcdCluster, key: string): { rev: number; text: string }[] {
  const out: { rev: number; text: string }[] = [];
  let rev: number | undefined;
  for (;;) {
    const args = ['get', key, '-w', 'json', ...(rev !== undefined ? [`--rev=${rev}`] : [])];
    const res = JSON.parse(cluster.etcdctl(...args)) as { kvs?: { mod_revision: number; create_revision: number; value: string }[] };
    const kv = res.kvs?.[0];
    if (!kv) break;
    out.unshift({ rev: kv.mod_revision, text: Buffer.from(kv.value, 'base64').toString('utf8') });
    if (kv.mod_revision === kv.create_revision) break;
    rev = kv.mod_revision - 1;
  }
  return out;
}

/** Asserts the history never shows more than `max` holders; returns every id that ever held a slot. */
function checkHistory(cluster: EtcdCluster, key: string, max: number): { values: number; holders: Set<string>; peak: number } {
  const values = history(cluster, key);
  const holders = new Set<string>();
  let peak = 0;
  for (const { rev, text } of values) {
    const raw = JSON.parse(text) as { semaphore: number; max: number; holders: string[] };
    expect(raw.holders.length, `revision ${rev}: ${text}`).toBeLessThanOrEqual(max);
    expect(raw.semaphore, `revision ${rev}`).toBe(raw.max - raw.holders.length);
    expect(raw.holders, `revision ${rev}`).toEqual([...raw.holders].sort());
    raw.holders.forEach((h) => holders.add(h));
    peak = Math.max(peak, raw.holders.length);
  }
  return { values: values.length, holders, peak };
}

interface Contention {
  /** Every acquire that got a slot: when its last call started and when it answered (ms since the epoch). */
  acquired: { start: number; end: number }[];
  /** What each client believed: from the answer that gave it a slot to the release it then sent. */
  holds: { from: number; to: number }[];
  errors: number;
}

/**
 * The most client-side holds that overlap at one instant. etcd's history alone cannot show a
 * broken compare-and-swap (a lost write overwrites a holder, it never adds one past max); two
 * clients both believing they hold the last slot can.
 */
function maxOverlap(holds: readonly { from: number; to: number }[]): number {
  const edges = holds.flatMap((h) => [[h.from, 1], [h.to, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (now += d));
  return peak;
}

/**
 * `machines` clients, one per simulated machine, each looping until it has had `rounds` turns and
 * `until` has passed: acquire until it gets a slot, hold 20-100 ms, release. IO errors (an election)
 * are caught, waited out and retried; an acquire or release whose answer was lost is safe to repeat.
 */
async function contend(endpoints: string[], machines: number, rounds: number, until = 0): Promise<Contention> {
  const result: Contention = { acquired: [], holds: [], errors: 0 };
  const retry = async <T>(work: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await work();
      } catch (err) {
        if (!(err instanceof FastPatchError)) throw err;
        result.errors++;
        await sleep(50 + Math.random() * 100);
      }
    }
  };
  await Promise.all(Array.from({ length: machines }, async (_, i) => {
    const id = `machine-${String(i).padStart(2, '0')}`;
    const sem = new EtcdSemaphore({ endpoints, callTimeoutMs: 2000 });
    try {
      for (let round = 0; round < rounds || Date.now() < until; round++) {
        for (;;) {
          let start = 0;
          const r = await retry(() => {
            start = Date.now();
            return sem.acquire(id, rec(new Date().toISOString()));
          });
          if (!r.refused) {
            result.acquired.push({ start, end: Date.now() });
            break;
          }
          await sleep(10 + Math.random() * 40);
        }
        const from = Date.now();
        await sleep(20 + Math.random() * 80);
        result.holds.push({ from, to: Date.now() });
        await retry(() => sem.release(id));
      }
    } finally {
      sem.close();
    }
  }));
  return result;
}

describe.skipIf(missing)('EtcdSemaphore against a real etcd 3.4', () => {
  it('max=2, 10 machines taking turns: etcd\'s history never shows more than 2 holders, and everyone had a turn', async () => {
    const cluster = await startEtcd(1);
    try {
      const setup = new EtcdSemaphore({ endpoints: cluster.endpoints });
      expect(await setup.setMax(2)).toMatchObject({ changed: true, value: { max: 2, semaphore: 2 } });
      setup.close();
      const started = Date.now();
      const run = await contend(cluster.endpoints, 10, 3);
      const h = checkHistory(cluster, DEFAULT_KEY, 2);
      console.log(`10 machines x 3 turns on 2 slots: ${((Date.now() - started) / 1000).toFixed(1)} s, ${h.values} values in etcd's history, peak ${h.peak} holders, ${run.errors} IO errors`);
      expect(run.acquired).toHaveLength(30);
      expect(maxOverlap(run.holds)).toBeLessThanOrEqual(2);
      expect(maxOverlap(run.holds)).toBe(2); // contention really happened: both slots were in use at once
      expect(h.peak).toBe(2);
      expect([...h.holders].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `machine-${String(i).padStart(2, '0')}`));
      expect(h.values).toBeGreaterThanOrEqual(61); // setMax, then 30 acquires and 30 releases, each its own revision
      const now = JSON.parse(cluster.etcdctl('get', DEFAULT_KEY, '--print-value-only')) as Record<string, unknown>;
      expect(Object.keys(now).slice(0, 3)).toEqual(['semaphore', 'max', 'holders']);
      expect(now).toMatchObject({ semaphore: 2, max: 2, holders: [] });
    } finally {
      await cluster.stop();
    }
  });

  it('killing the leader mid-run: acquires succeed again once a new leader is elected; no slot lost or doubled', async () => {
    const cluster = await startEtcd(3);
    try {
      const setup = new EtcdSemaphore({ endpoints: cluster.endpoints });
      await setup.setMax(2);
      const started = Date.now();
      const running = contend(cluster.endpoints, 10, 3, started + 9000);
      await sleep(2000);
      const leader = cluster.leader();
      expect(leader).toBeDefined();
      const killedAt = Date.now();
      await leader!.kill('SIGKILL');
      await sleep(3000);
      leader!.start();
      const run = await running;
      expect(maxOverlap(run.holds), "two clients believed they held the same slot").toBeLessThanOrEqual(2);
      const after = run.acquired.filter((a) => a.start >= killedAt).sort((a, b) => a.end - b.end);
      expect(after.length).toBeGreaterThan(0);
      const recovery = after[0]!.end - killedAt;
      const h = checkHistory(cluster, DEFAULT_KEY, 2);
      console.log(`leader ${leader!.name} killed at ${((killedAt - started) / 1000).toFixed(1)} s: first acquire started after it answered in ${(recovery / 1000).toFixed(2)} s; ${run.acquired.length} turns, ${h.values} values in etcd's history, peak ${h.peak} holders, ${run.errors} IO errors caught and retried`);
      // An election takes 1-2 election timeouts (1 s here); a call stuck on the dead member waits out its 2 s deadline.
      expect(recovery).toBeLessThan(8000);
      expect(h.peak).toBe(2);
      expect(h.holders.size).toBe(10);
      const end = await setup.read();
      expect(end.value).toMatchObject({ semaphore: 2, max: 2, holders: [] });
      setup.close();
    } finally {
      await cluster.stop();
    }
  });

  it('an operator\'s release with `since` is a CAS on the record: a machine that took its slot again keeps it', async () => {
    const cluster = await startEtcd(1);
    const sem = new EtcdSemaphore({ endpoints: cluster.endpoints });
    try {
      await sem.acquire('m1', rec('2026-01-01T00:00:00.000Z'));
      const seen = (await sem.read()).value.records['m1']!.since; // what the operator's status showed
      await sem.release('m1');
      await sem.acquire('m1', rec('2026-01-01T01:00:00.000Z')); // the machine came back and took it again
      const before = cluster.etcdctl('get', DEFAULT_KEY, '-w', 'json');
      const refused = await sem.release('m1', seen);
      expect(refused.refused).toMatch(/m1 took its slot again at 2026-01-01T01:00:00.000Z, not 2026-01-01T00:00:00.000Z; nothing freed/);
      expect(refused.changed).toBe(false);
      expect(cluster.etcdctl('get', DEFAULT_KEY, '-w', 'json')).toBe(before); // nothing written
      expect(await sem.release('m1', '2026-01-01T01:00:00.000Z')).toMatchObject({ changed: true, value: { holders: [], semaphore: 1 } });
      expect(JSON.parse(cluster.etcdctl('get', DEFAULT_KEY, '--print-value-only'))).toMatchObject({ semaphore: 1, max: 1, holders: [] });
    } finally {
      sem.close();
      await cluster.stop();
    }
  });

  it('an operator\'s etcdctl put between a read and a write: the CAS fails, the writer reads again and respects the hand-fixed value', async () => {
    const cluster = await startEtcd(1);
    const sem = new EtcdSemaphore({ endpoints: cluster.endpoints });
    try {
      await sem.setMax(2);
      let reads = 0;
      const r = await sem.update((s) => {
        // Between this read and the write: the operator shrinks the group to one slot, held by a stuck machine.
        if (reads++ === 0) cluster.etcdctl('put', DEFAULT_KEY, '{"semaphore":0,"max":1,"holders":["stuck"]}');
        return lock(s, 'writer');
      });
      expect(reads).toBe(2);
      expect(r).toMatchObject({ changed: false, refused: 'all 1 slot is held (stuck)' });
      expect(JSON.parse(cluster.etcdctl('get', DEFAULT_KEY, '--print-value-only'))).toEqual({ semaphore: 0, max: 1, holders: ['stuck'] });
    } finally {
      sem.close();
      await cluster.stop();
    }
  });

  it('a value that is not JSON: acquire fails with IO, one line naming the key and the fix', async () => {
    const cluster = await startEtcd(1);
    const sem = new EtcdSemaphore({ endpoints: cluster.endpoints });
    try {
      cluster.etcdctl('put', DEFAULT_KEY, 'held by bob, back monday');
      const err = await sem.acquire('m1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FastPatchError);
      expect(err).toMatchObject({ code: 'IO' });
      const message = (err as Error).message;
      expect(message).not.toContain('\n');
      expect(message).toContain(DEFAULT_KEY);
      expect(message).toMatch(/not JSON.*fix it with etcdctl put/);
      expect(cluster.etcdctl('get', DEFAULT_KEY, '--print-value-only').trim()).toBe('held by bob, back monday'); // left for the operator
    } finally {
      sem.close();
      await cluster.stop();
    }
  });

  it('quorum lost (2 of 3 killed): acquire fails with IO within its deadline, no hang; with them back it works again', async () => {
    const cluster = await startEtcd(3);
    const callTimeoutMs = 2000;
    const sem = new EtcdSemaphore({ endpoints: cluster.endpoints, callTimeoutMs });
    try {
      expect(await sem.acquire('m1')).toMatchObject({ changed: true });
      await sem.release('m1');
      const [a, b] = cluster.members;
      await a!.kill('SIGKILL');
      await b!.kill('SIGKILL');
      const t0 = Date.now();
      const err = await sem.acquire('m2').catch((e: unknown) => e);
      const took = Date.now() - t0;
      console.log(`quorum lost: acquire failed after ${(took / 1000).toFixed(2)} s (call deadline ${callTimeoutMs / 1000} s): ${(err as Error).message}`);
      expect(err).toBeInstanceOf(FastPatchError);
      expect(err).toMatchObject({ code: 'IO' });
      expect(took).toBeLessThan(callTimeoutMs + 1500);
      // The member left alive, alone: it accepts the connection but answers nothing without quorum,
      // so every retry of the client would wait a whole deadline again, unless the deadline covers them all.
      const alone = new EtcdSemaphore({ endpoints: [cluster.members[2]!.clientUrl], callTimeoutMs });
      const t2 = Date.now();
      const err2 = await alone.acquire('m3').catch((e: unknown) => e);
      const took2 = Date.now() - t2;
      alone.close();
      console.log(`quorum lost, the live member alone: acquire failed after ${(took2 / 1000).toFixed(2)} s: ${(err2 as Error).message}`);
      expect(err2).toMatchObject({ code: 'IO', message: expect.stringMatching(/no answer within 2 s \(a cluster without quorum answers nothing; check etcdctl endpoint health\): .*DEADLINE_EXCEEDED/) });
      expect(took2).toBeLessThan(callTimeoutMs + 1500);
      a!.start();
      b!.start();
      const t1 = Date.now();
      for (;;) {
        const r = await sem.acquire('m2').catch(() => undefined);
        if (r) {
          expect(r).toMatchObject({ changed: true, value: { holders: ['m2'] } });
          break;
        }
        expect(Date.now() - t1).toBeLessThan(30_000);
        await sleep(200);
      }
      console.log(`quorum back: first acquire ${((Date.now() - t1) / 1000).toFixed(2)} s after the restart`);
    } finally {
      sem.close();
      await cluster.stop();
    }
  });
});
