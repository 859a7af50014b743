// `fastpatch fleetlock` against a real etcd: requests made by hand with curl take and free slots of
// the very key locksmith and `fastpatch lock` read, Airlock's error kinds come back as JSON, and no
// input (hostile bodies, 30 racing nodes, etcd gone) crashes the server or leaves it silent.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { EtcdSemaphore, startFleetLock, type RunningFleetLock } from '../../dist/src/index.js';
import { etcdMissing, startEtcd, type EtcdCluster } from '../helpers/etcd.js';

const DEFAULT_KEY = 'coreos.com/updateengine/rebootlock/semaphore';
const missing = etcdMissing();
if (missing) console.log(`skipping FleetLock tests: ${missing}`);

interface Answer { status: number; body: string; json: { kind?: string; value?: string } | undefined }

/** curl, as an operator would type it; async, since the server answers from this same process. */
function curl(url: string, args: string[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '--max-time', '60', '-o', '-', '-w', '\n%{http_code}', ...args, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`curl exited ${code}: ${err}`));
      const cut = out.lastIndexOf('\n');
      const body = out.slice(0, cut);
      let json: Answer['json'];
      try {
        json = JSON.parse(body) as Answer['json'];
      } catch {
        json = undefined;
      }
      resolve({ status: Number(out.slice(cut + 1)), body, json });
    });
  });
}

const params = (id: string, group = 'default') => JSON.stringify({ client_params: { id, group } });
const fleetCurl = (s: RunningFleetLock, op: string, body: string, extra: string[] = []) =>
  curl(`${s.url}v1/${op}`, ['-H', 'fleet-lock-protocol: true', '-d', body, ...extra]);

async function post(s: RunningFleetLock, op: string, body: string, headers: Record<string, string> = { 'fleet-lock-protocol': 'true' }): Promise<Answer> {
  const res = await fetch(`${s.url}v1/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  let json: Answer['json'];
  try {
    json = JSON.parse(text) as Answer['json'];
  } catch {
    json = undefined;
  }
  return { status: res.status, body: text, json };
}

/** What raw bytes on a socket get back (all of it, until the server closes or `ms` pass). */
function raw(s: RunningFleetLock, head: string, body: Buffer | undefined, ms = 15_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(s.port, '127.0.0.1');
    let got = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('close', done);
    socket.on('error', () => {}); // the server may close while we still send: what it said is in `got`
    socket.write(head);
    if (body) socket.write(body);
  });
}

function etcdValue(etcd: EtcdCluster, key: string): { semaphore: number; max: number; holders: string[] | null; records?: Record<string, { since: string; state: string; release: string }> } {
  return JSON.parse(etcd.etcdctl('get', key, '--print-value-only')) as ReturnType<typeof etcdValue>;
}

describe.skipIf(missing !== undefined)('fastpatch fleetlock on a real etcd', () => {
  let etcd: EtcdCluster;
  let s: RunningFleetLock;
  const lines: string[] = [];

  beforeAll(async () => {
    etcd = await startEtcd(1);
    try {
      s = await startFleetLock({ endpoints: etcd.endpoints, groups: { workers: 2, db: 2 }, log: (l) => lines.push(l) });
    } catch (err) {
      await etcd.stop();
      throw err;
    }
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      await etcd?.stop();
    }
  });

  it('THE BAR: curl pre-reboot and steady-state lock and unlock the semaphore etcdctl and EtcdSemaphore read', async () => {
    const a = await fleetCurl(s, 'pre-reboot', params('node-a'));
    expect(a.status).toBe(200);
    const stored = etcdValue(etcd, DEFAULT_KEY);
    expect(stored).toMatchObject({ semaphore: 0, max: 1, holders: ['node-a'] });
    expect(stored.records?.['node-a']).toMatchObject({ release: 'unknown', from: 'unknown', state: 'rebooting' });
    const since = stored.records!['node-a']!.since;
    expect(Math.abs(Date.parse(since) - Date.now())).toBeLessThan(60_000);
    const sem = new EtcdSemaphore({ endpoints: etcd.endpoints });
    try {
      expect((await sem.read()).value.holders).toEqual(['node-a']);
      // The operator's view: `fastpatch lock status` names the FleetLock holder and its age.
      const status = await runCli(['lock', 'status', '--etcd', etcd.endpoints.join(','), '--json']);
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ max: 1, holders: [expect.objectContaining({ id: 'node-a' })] });

      const b = await fleetCurl(s, 'pre-reboot', params('node-b'));
      expect(b.status).toBe(500);
      expect(b.json).toMatchObject({ kind: 'failed_lock', value: expect.stringMatching(/all 1 semaphore slot is currently locked/) });
      expect(b.body).not.toContain('node-a'); // a refusal names no holder to whoever asks

      // Recursive: the holder asking again gets 200, and its record keeps the time it took the slot.
      expect((await fleetCurl(s, 'pre-reboot', params('node-a'))).status).toBe(200);
      expect(etcdValue(etcd, DEFAULT_KEY).records?.['node-a']?.since).toBe(since);

      expect((await fleetCurl(s, 'steady-state', params('node-a'))).status).toBe(200);
      expect(etcdValue(etcd, DEFAULT_KEY)).toMatchObject({ semaphore: 1, max: 1, holders: [] });
      expect((await sem.read()).value.holders).toEqual([]);
      // Steady-state after any boot, holding nothing: still 200, nothing written.
      expect((await fleetCurl(s, 'steady-state', params('node-a'))).status).toBe(200);

      expect((await fleetCurl(s, 'pre-reboot', params('node-b'))).status).toBe(200);
      expect((await sem.read()).value.holders).toEqual(['node-b']);
      expect((await fleetCurl(s, 'steady-state', params('node-b'))).status).toBe(200);
    } finally {
      sem.close();
    }
    expect(lines.some((l) => l.includes('node-a') && l.includes('took'))).toBe(true);
    expect(lines.some((l) => l.includes('node-b') && l.includes('failed_lock'))).toBe(true);
  });

  it('a group is locksmith\'s group key; configured slots apply only to a key FleetLock creates', async () => {
    expect((await fleetCurl(s, 'pre-reboot', params('w1', 'workers'))).status).toBe(200);
    expect((await fleetCurl(s, 'pre-reboot', params('w2', 'workers'))).status).toBe(200);
    expect((await fleetCurl(s, 'pre-reboot', params('w3', 'workers'))).json?.kind).toBe('failed_lock');
    const workers = etcdValue(etcd, 'coreos.com/updateengine/rebootlock/groups/workers/semaphore');
    expect(workers).toMatchObject({ semaphore: 0, max: 2, holders: ['w1', 'w2'] });
    const reader = new EtcdSemaphore({ endpoints: etcd.endpoints }, 'workers');
    try {
      expect((await reader.read()).value).toMatchObject({ max: 2, holders: ['w1', 'w2'] });
    } finally {
      reader.close();
    }
    // An operator's set-max on an existing key wins over the server's configuration.
    etcd.etcdctl('put', 'coreos.com/updateengine/rebootlock/groups/db/semaphore', '{"semaphore":5,"max":5,"holders":null}');
    expect((await fleetCurl(s, 'pre-reboot', params('d1', 'db'))).status).toBe(200);
    expect(etcdValue(etcd, 'coreos.com/updateengine/rebootlock/groups/db/semaphore')).toMatchObject({ semaphore: 4, max: 5, holders: ['d1'] });
    // An unconfigured group that no operator made is refused, and no key is written for it.
    const unknown = await fleetCurl(s, 'pre-reboot', params('x1', 'edge.eu-1'));
    expect([unknown.status, unknown.json?.kind]).toEqual([400, 'unknown_group']);
    expect(etcd.etcdctl('get', 'coreos.com/updateengine/rebootlock/groups/edge.eu-1/semaphore', '--print-value-only').trim()).toBe('');
    // Once an operator makes it, it is served.
    etcd.etcdctl('put', 'coreos.com/updateengine/rebootlock/groups/edge.eu-1/semaphore', '{"semaphore":1,"max":1,"holders":[]}');
    expect((await fleetCurl(s, 'pre-reboot', params('x1', 'edge.eu-1'))).status).toBe(200);
    expect(etcdValue(etcd, 'coreos.com/updateengine/rebootlock/groups/edge.eu-1/semaphore')).toMatchObject({ max: 1, holders: ['x1'] });
  });

  it('refuses bad requests with Airlock\'s kinds and statuses, as JSON', async () => {
    const noHeader = await curl(`${s.url}v1/pre-reboot`, ['-d', params('node-h')]);
    expect(noHeader.status).toBe(400);
    expect(noHeader.json).toMatchObject({ kind: 'invalid_client_identity', value: expect.stringMatching(/fleet-lock-protocol/) });
    expect((await post(s, 'pre-reboot', params('node-h'), { 'fleet-lock-protocol': 'false' })).json?.kind).toBe('invalid_client_identity');
    const cases: [string, string][] = [
      ['malformed JSON', '{"client_params": {"id": "n",'],
      ['empty id', params('')],
      ['id of 257 characters', params('x'.repeat(257))],
      ['id not a string', '{"client_params":{"id":7,"group":"default"}}'],
      ['bad group', params('node-h', 'a/b')],
      ['empty group', params('node-h', '')],
      ['group of 65 characters', params('node-h', 'g'.repeat(65))],
      ['no client_params', '{"id":"node-h","group":"default"}'],
      ['an array', '[]'],
      ['null', 'null'],
      ['empty body', ''],
    ];
    for (const [what, body] of cases) {
      const answer = await fleetCurl(s, 'pre-reboot', body);
      expect(answer.status, what).toBe(400);
      expect(answer.json?.kind, what).toBe('invalid_client_identity');
    }
    const notUtf8 = await post(s, 'steady-state', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) as unknown as string);
    expect(notUtf8).toMatchObject({ status: 400, json: { kind: 'invalid_client_identity' } });

    const get = await curl(`${s.url}v1/pre-reboot`, ['-H', 'fleet-lock-protocol: true', '-i']);
    expect(get.body).toMatch(/^HTTP\/1\.1 405/);
    expect(get.body).toMatch(/^allow: POST\r?$/im);
    expect(get.body).toContain('"kind":"method_not_allowed"');
    for (const path of ['v1/other', 'v1/pre-reboot/', 'v2/pre-reboot', '']) {
      const answer = await curl(`${s.url}${path}`, ['-H', 'fleet-lock-protocol: true', '-d', params('node-h')]);
      expect(answer.status, path).toBe(404);
      expect(answer.json?.kind, path).toBe('not_found');
    }
    expect(etcdValue(etcd, DEFAULT_KEY).holders ?? []).not.toContain('node-h');
  });

  it('30 concurrent pre-reboots on 3 slots: exactly 3 get 200, and etcd shows those 3', async () => {
    etcd.etcdctl('put', 'coreos.com/updateengine/rebootlock/groups/race/semaphore', '{"semaphore":3,"max":3,"holders":[]}');
    const ids = Array.from({ length: 30 }, (_, i) => `racer-${String(i).padStart(2, '0')}`);
    const answers = await Promise.all(ids.map((id) => post(s, 'pre-reboot', params(id, 'race'))));
    const won = ids.filter((_, i) => answers[i]!.status === 200);
    expect(won).toHaveLength(3);
    for (const a of answers.filter((x) => x.status !== 200)) expect(a).toMatchObject({ status: 500, json: { kind: 'failed_lock' } });
    const stored = etcdValue(etcd, 'coreos.com/updateengine/rebootlock/groups/race/semaphore');
    expect(stored).toMatchObject({ semaphore: 0, max: 3, holders: won });
    expect(Object.keys(stored.records ?? {}).sort()).toEqual(won);
  });

  it('a hostile 10 MB body gets 413 (declared or chunked), and the server still answers', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024, 0x61);
    const declared = await raw(s, `POST /v1/pre-reboot HTTP/1.1\r\nHost: x\r\nfleet-lock-protocol: true\r\nContent-Length: ${big.length}\r\n\r\n`, big);
    expect(declared).toMatch(/^HTTP\/1\.1 413/);
    expect(declared).toContain('"kind":"body_too_large"');
    const chunk = Buffer.concat([Buffer.from(`${big.length.toString(16)}\r\n`), big, Buffer.from('\r\n0\r\n\r\n')]);
    const chunked = await raw(s, 'POST /v1/pre-reboot HTTP/1.1\r\nHost: x\r\nfleet-lock-protocol: true\r\nTransfer-Encoding: chunked\r\n\r\n', chunk);
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    expect((await fleetCurl(s, 'steady-state', params('after-413'))).status).toBe(200);
  });

  it('a value at the key that is not a semaphore is failed_sem_init, and nothing is overwritten', async () => {
    etcd.etcdctl('put', 'coreos.com/updateengine/rebootlock/groups/broken/semaphore', 'not json');
    const answer = await fleetCurl(s, 'pre-reboot', params('n1', 'broken'));
    expect(answer).toMatchObject({ status: 500, json: { kind: 'failed_sem_init' } });
    expect(etcd.etcdctl('get', 'coreos.com/updateengine/rebootlock/groups/broken/semaphore', '--print-value-only').trim()).toBe('not json');
  });

  it('an idle socket is closed (no peer holds one forever)', async () => {
    const idle = await startFleetLock({ endpoints: etcd.endpoints, timeouts: { idleMs: 300 } });
    try {
      const t0 = Date.now();
      await raw(idle, 'POST /v1/pre-reboot HTTP/1.1\r\nHost: x\r\n', undefined, 10_000);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      await idle.close();
    }
  });

  it('etcd hung (SIGSTOP): a 503 JSON error within the request deadline, not a socket held open', async () => {
    const member = etcd.members[0]!;
    await member.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      const hung = await fleetCurl(s, 'pre-reboot', params('node-y'));
      expect(hung).toMatchObject({ status: 503, json: { kind: 'etcd_unavailable' } });
      expect(Date.now() - t0).toBeLessThan(25_000);
    } finally {
      member.process?.kill('SIGCONT');
    }
  });

  it('etcd stopped: a 503 JSON error, the server alive; etcd back: slots again', async () => {
    const member = etcd.members[0]!;
    await member.kill('SIGKILL');
    try {
      const t0 = Date.now();
      const down = await fleetCurl(s, 'pre-reboot', params('node-z'));
      expect(down.status).toBe(503);
      expect(down.json).toMatchObject({ kind: 'etcd_unavailable', value: expect.any(String) });
      expect(Date.now() - t0).toBeLessThan(25_000);
      expect((await fleetCurl(s, 'steady-state', params('node-z'))).json?.kind).toBe('etcd_unavailable');
      expect((await curl(`${s.url}v1/other`, ['-d', '{}'])).status).toBe(404);
    } finally {
      member.start();
    }
    let back: Answer | undefined;
    for (let i = 0; i < 60 && back?.status !== 200; i++) {
      back = await fleetCurl(s, 'pre-reboot', params('node-z', 'db'));
      if (back.status !== 200) await new Promise((r) => setTimeout(r, 500));
    }
    expect(back?.status).toBe(200);
  });
});

describe.skipIf(missing !== undefined)('the fleetlock command', () => {
  it('prints its URL, serves, and exits 0 on SIGTERM', async () => {
    const etcd = await startEtcd(1);
    try {
      const script = `import { run } from ${JSON.stringify(join(import.meta.dirname, '../../dist/src/commands/fleetlock.js'))};
await run({ listen: '127.0.0.1:0', etcd: ${JSON.stringify(etcd.endpoints.join(','))}, group: ['default=2'] });`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      for (let i = 0; i < 100 && !/FleetLock at (\S+)/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
      const url = /FleetLock at (\S+)/.exec(out)?.[1];
      expect(url, out).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const answer = await curl(`${url}v1/pre-reboot`, ['-H', 'fleet-lock-protocol: true', '-d', params('cmd-a')]);
      expect(answer.status).toBe(200);
      expect(etcdValue(etcd, DEFAULT_KEY)).toMatchObject({ max: 2, holders: ['cmd-a'] });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toMatch(/stopped\n$/);
    } finally {
      await etcd.stop();
    }
  });
});
