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
  /** Times (ms since the epoch) of every successful acquire. */
  acquiredAt: number[];
  errors: number;
}

/**
 * `machines` clients, one per simulated machine, each looping until it has had `rounds` turns and
 * `until` has passed: acquire until it gets a slot, hold 20-100 ms, release. IO errors (an election)
 * are caught, waited out and retried; an acquire or release whose answer was lost is safe to repeat.
 */
async function contend(endpoints: string[], machines: number, rounds: number, until = 0): Promise<Contention> {
  const result: Contention = { acquiredAt: [], errors: 0 };
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
          const r = await retry(() => sem.acquire(id, rec(new Date().toISOString())));
          if (!r.refused) break;
          await sleep(10 + Math.random() * 40);
        }
        result.acquiredAt.push(Date.now());
        await sleep(20 + Math.random() * 80);
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
      expect(run.acquiredAt).toHaveLength(30);
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
});
