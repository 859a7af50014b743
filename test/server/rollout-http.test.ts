// Rollout control through the HTTP service, with hundreds of simulated machines (distinct ids)
// polling over loopback: waves reach exactly the machines whose place is inside the open share,
// the same ones every time; caps hold; the self-pause triggers on the very report that reaches
// its threshold and holds every machine after it.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRelease, buildRequest, COREOS_APP_ID, readUpdateCheck, ReleaseRepository, sampleImage, startServer, wavePlace, type OmahaEvent, type RunningServer,
} from '../../dist/src/index.js';
import { MiB, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let repo: string;

beforeAll(async () => {
  dir = await tempDir('rollout-http');
  repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [signer.key], keepDeltas: 0 });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2]] as const) {
    await fsp.writeFile(join(dir, `${version}.img`), sampleImage({ size: 1 * MiB, variant }));
    await addRelease(repo, { image: join(dir, `${version}.img`), version, keys: [signer.key] });
  }
});
afterAll(() => removeDir(dir));

async function withServer<T>(name: string, work: (s: RunningServer, log: string[]) => Promise<T>): Promise<T> {
  const log: string[] = [];
  const server = await startServer({ repository: repo, state: join(dir, `${name}.sqlite`), log: (l) => log.push(l) });
  try {
    return await work(server, log);
  } finally {
    await server.close();
  }
}

const fleet = (n: number) => Array.from({ length: n }, () => randomBytes(16).toString('hex'));

/** One machine's request: an update check (with events), or events alone. */
async function send(s: RunningServer, machineId: string, o: { track?: string; version?: string; check?: boolean; events?: OmahaEvent[] } = {}) {
  const body = buildRequest({ protocol: '3.0', apps: [{ appId: COREOS_APP_ID, version: o.version ?? '1.0.0', track: o.track ?? 'alpha', machineId, bootId: '{00000000-0000-4000-8000-000000000000}', ping: o.check !== false, updateCheck: o.check !== false, events: o.events ?? [] }] });
  const res = await fetch(`${s.url}v1/update/`, { method: 'POST', body, headers: { 'Content-Type': 'text/xml' } });
  expect(res.status).toBe(200);
  const answer = readUpdateCheck(await res.text(), COREOS_APP_ID);
  if ('unreadable' in answer) return { status: 'none' as const };
  return answer;
}

async function granted(s: RunningServer, machines: string[], track = 'alpha'): Promise<Set<string>> {
  const out = new Set<string>();
  for (const m of machines) if ((await send(s, m, { track })).status === 'ok') out.add(m);
  return out;
}

describe('waves', () => {
  it('a release reaches the machines whose place is inside the open share: the same ones every time, canaries first', async () => {
    await withServer('waves', async (s) => {
      const machines = fleet(400);
      s.rollout.group('alpha', 'alpha');
      s.rollout.setPolicy('alpha', { openPercent: 10 });
      const first = await granted(s, machines);
      const expected = new Set(machines.filter((m) => wavePlace(m) < 0.1));
      expect(first).toEqual(expected);
      expect(first.size).toBeGreaterThan(20);
      expect(first.size).toBeLessThan(60);
      // Asking again changes nothing: the same machines, and no other.
      expect(await granted(s, machines)).toEqual(first);
      s.rollout.setPolicy('alpha', { openPercent: 50 });
      const wider = await granted(s, machines);
      expect([...first].every((m) => wider.has(m))).toBe(true);
      expect(wider).toEqual(new Set(machines.filter((m) => wavePlace(m) < 0.5)));
    });
  });
});

describe('caps', () => {
  it('updates granted per period: at most the cap, more once the period has passed', async () => {
    await withServer('period', async (s) => {
      s.rollout.group('canary', 'alpha');
      s.rollout.setPolicy('canary', { maxPerPeriod: 25, periodSeconds: 1 });
      const machines = fleet(300);
      expect((await granted(s, machines, 'canary')).size).toBe(25);
      await new Promise((r) => setTimeout(r, 1100));
      const rest = machines.filter((m) => s.rollout.machine(m)!.state !== 'granted');
      expect((await granted(s, rest, 'canary')).size).toBe(25);
    });
  });

  it('two servers on one state file (two connections, as two processes on one host) hold one cap together', async () => {
    await withServer('shared', async (a) => {
      const b = await startServer({ repository: repo, state: join(dir, 'shared.sqlite') });
      try {
        a.rollout.group('alpha', 'alpha');
        a.rollout.setPolicy('alpha', { maxPerPeriod: 30 });
        const machines = fleet(200);
        // Both answer at once, interleaved: each grant is one IMMEDIATE transaction over both processes' counts.
        const answers = await Promise.all(machines.map((m, i) => send(i % 2 === 0 ? a : b, m)));
        expect(answers.filter((x) => x.status === 'ok')).toHaveLength(30);
      } finally {
        await b.close();
      }
    });
  });

  it('updates in progress: at most the cap; machines that finish make room', async () => {
    await withServer('progress', async (s) => {
      s.rollout.group('alpha', 'alpha');
      s.rollout.setPolicy('alpha', { maxInProgress: 10 });
      const machines = fleet(200);
      const first = [...(await granted(s, machines))];
      expect(first).toHaveLength(10);
      // Five install and reboot into 1.1.0 (3/1, then 3/2 from the new release): five slots free.
      for (const m of first.slice(0, 5)) {
        await send(s, m, { check: false, events: [{ type: 13, result: 1 }, { type: 14, result: 1 }, { type: 3, result: 1 }] });
        expect((await send(s, m, { version: '1.1.0', events: [{ type: 3, result: 2, previousVersion: '1.0.0' }] })).status).toBe('noupdate');
      }
      const waiting = machines.filter((m) => !first.includes(m));
      expect((await granted(s, waiting)).size).toBe(5);
    });
  });
});

describe('self-pause', () => {
  it('pauses on the report that reaches the threshold; failures and rollbacks both count; every later machine waits', async () => {
    await withServer('selfpause', async (s, log) => {
      s.rollout.group('alpha', 'alpha');
      s.rollout.setPolicy('alpha', { failureThreshold: 3 });
      const machines = fleet(300);
      const early = machines.slice(0, 100);
      expect((await granted(s, early)).size).toBe(100);
      const reports: OmahaEvent[][] = [
        [{ type: 3, result: 0, errorCode: 10 }],
        [{ type: 3, result: 0, errorCode: 44, previousVersion: '1.0.0' }],
      ];
      for (const [i, events] of reports.entries()) await send(s, early[i]!, { check: false, events });
      // Two of three: still rolling out.
      expect((await send(s, machines[100]!)).status).toBe('ok');
      expect(s.rollout.findGroup('alpha')!.paused).toBe(false);
      // The third failure's own request pauses the group.
      await send(s, early[2]!, { check: false, events: [{ type: 3, result: 0, errorCode: 12 }] });
      expect(s.rollout.findGroup('alpha')).toMatchObject({ paused: true, pauseReason: expect.stringMatching(/^self: 3 of 3/) });
      expect(log.some((l) => /group alpha paused itself/.test(l))).toBe(true);
      for (const m of machines.slice(101, 301)) {
        expect(await send(s, m)).toMatchObject({ status: 'noupdate', reason: expect.stringMatching(/paused/) });
      }
      const status = s.rollout.status('alpha')[0]!;
      expect(status.failures.map((f) => f.state).sort()).toEqual(['failed', 'failed', 'rolled-back']);
      expect(status.summary).toMatch(/paused/);
      // The operator resumes: a new count starts, machines get the release again.
      s.rollout.resume('alpha');
      expect((await send(s, machines[150]!)).status).toBe('ok');
    });
  });
});
