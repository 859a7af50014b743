// `fastpatch lock` (commands/lock.ts) against a real etcd: each subcommand runs in its own Node
// process, as the CLI would run it (the module's exported function, a FastPatchError turned into
// one line and its exit code), and what it printed is checked against what etcdctl then reads.
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdMissing, startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { removeDir, tempDir } from '../helpers/payloads.js';

const missing = etcdMissing();
if (missing) console.warn(`fastpatch lock tests skipped: ${missing}`);
const LOCK_MODULE = new URL('../../dist/src/commands/lock.js', import.meta.url).href;
const DEFAULT_KEY = 'coreos.com/updateengine/rebootlock/semaphore';
const MACHINE_ID = '0123456789abcdef0123456789abcdef';

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `lock.<fn>(...args)` in a child Node (a null argument is passed as undefined: JSON has none); a FastPatchError ends it as the CLI does: one line, its exit code. */
function runLock(fn: string, args: unknown[]): Promise<Run> {
  const script = `
    const m = await import(${JSON.stringify(LOCK_MODULE)});
    try { await m[${JSON.stringify(fn)}](...JSON.parse(process.env.LOCK_ARGS).map((a) => a ?? undefined)); }
    catch (e) { process.stderr.write((e.code ?? 'INTERNAL') + ': ' + e.message + '\\n'); process.exitCode = e.exitCode ?? 1; }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, LOCK_ARGS: JSON.stringify(args) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(missing)('fastpatch lock against a real etcd 3.4', () => {
  let cluster: EtcdCluster;
  let dir: string;
  let opts: { etcd: string; machineIdFile: string };
  const value = (key = DEFAULT_KEY) => JSON.parse(cluster.etcdctl('get', key, '--print-value-only')) as { semaphore: number; max: number; holders: string[]; records?: Record<string, { since: string }> };

  beforeAll(async () => {
    cluster = await startEtcd(1);
    dir = await tempDir('lock-cli');
    opts = { etcd: cluster.endpoints.join(','), machineIdFile: join(dir, 'machine-id') };
    await fsp.writeFile(opts.machineIdFile, `${MACHINE_ID}\n`);
  });
  afterAll(async () => {
    await cluster?.stop();
    await removeDir(dir);
  });

  it('set-max, acquire (this machine by default), a full semaphore refused with exit 12, as etcd then holds it', async () => {
    const max = await runLock('setMax', [2, opts]);
    expect(max).toMatchObject({ code: 0, stdout: 'Max: 1 -> 2, Available: 2\n' });
    const mine = await runLock('acquire', [undefined, opts]);
    expect(mine.code).toBe(0);
    expect(mine.stdout).toMatch(new RegExp(`^${MACHINE_ID} holds a slot: Available 1 of 2\\nfree it with: fastpatch lock release ${MACHINE_ID} --since 20\\d\\d-`));
    expect((await runLock('acquire', [undefined, opts])).stdout).toMatch(/it held one already; nothing changed\): Available 1 of 2/);
    expect((await runLock('acquire', ['other', opts])).code).toBe(0);
    const full = await runLock('acquire', ['third', opts]);
    expect(full.code).toBe(12);
    expect(full.stderr).toBe(`LOCK_REFUSED: no slot for third: all 2 slots are held (${MACHINE_ID}, other); see who holds them with fastpatch lock status\n`);
    const v = value();
    expect(v).toMatchObject({ semaphore: 0, max: 2, holders: [MACHINE_ID, 'other'] });
    expect(Object.keys(v).slice(0, 3)).toEqual(['semaphore', 'max', 'holders']);
    expect(mine.stdout).toContain(`--since ${v.records![MACHINE_ID]!.since}`);
  });

  it('status: locksmithctl\'s lines, each holder\'s record and age, holders of other tools named as such; --json prints since', async () => {
    const since = new Date(Date.now() - (3 * 3600 + 12 * 60 + 5) * 1000).toISOString();
    const record = { release: '2.0.0', from: '1.0.0', since, state: 'rebooting' };
    cluster.etcdctl('put', DEFAULT_KEY, JSON.stringify({ semaphore: 0, max: 2, holders: [MACHINE_ID, 'locksmith-node'], records: { [MACHINE_ID]: record } }));
    const s = await runLock('status', [opts]);
    expect(s.code).toBe(0);
    expect(s.stdout.split('\n')).toEqual([
      'Available: 0', 'Max: 2', `Key: ${DEFAULT_KEY}`, '', 'MACHINE ID',
      `${MACHINE_ID}  release 2.0.0 from 1.0.0, since ${since} (3 h 12 min), rebooting`,
      `${'locksmith-node'.padEnd(32)}  (no record: taken by another tool)`, '',
      `a holder frees its slot itself once it has booted and confirmed; to free a machine that will not come back: fastpatch lock release ${MACHINE_ID} --since ${since}`,
      '',
    ]);
    const json = JSON.parse((await runLock('status', [{ ...opts, json: true }])).stdout);
    expect(json).toMatchObject({ key: DEFAULT_KEY, available: 0, max: 2, holders: [{ id: MACHINE_ID, record }, { id: 'locksmith-node' }] });
    expect(json.holders[0].ageSeconds).toBeGreaterThan(3 * 3600);
  });

  it('release --since: refused (exit 12, nothing freed) once the machine took its slot again; freed with the current since', async () => {
    const old = '2026-01-01T00:00:00.000Z';
    const now = '2026-01-01T02:00:00.000Z';
    cluster.etcdctl('put', DEFAULT_KEY, JSON.stringify({ semaphore: 1, max: 2, holders: ['m1'], records: { m1: { release: '2', from: '1', since: now, state: 'rebooting' } } }));
    const before = cluster.etcdctl('get', DEFAULT_KEY, '-w', 'json');
    const stale = await runLock('release', ['m1', { ...opts, since: old }]);
    expect(stale.code).toBe(12);
    expect(stale.stderr).toBe(`LOCK_REFUSED: m1 took its slot again at ${now}, not ${old}; nothing freed; it is rebooting again: see fastpatch lock status before freeing it\n`);
    expect(cluster.etcdctl('get', DEFAULT_KEY, '-w', 'json')).toBe(before);
    const ok = await runLock('release', ['m1', { ...opts, since: now }]);
    expect(ok).toMatchObject({ code: 0, stdout: "freed m1's slot: Available 2 of 2\n" });
    expect(value()).toMatchObject({ semaphore: 2, max: 2, holders: [] });
    expect(await runLock('release', ['m1', opts])).toMatchObject({ code: 0, stdout: 'm1 holds no slot; nothing freed (Available 2 of 2)\n' });
  });

  it('set-max below the holders: they keep their slots, Available goes negative, as locksmith\'s', async () => {
    cluster.etcdctl('put', DEFAULT_KEY, '{"semaphore":0,"max":3,"holders":["a","b","c"]}');
    const r = await runLock('setMax', [1, opts]);
    expect(r).toMatchObject({ code: 0, stdout: 'Max: 3 -> 1, Available: -2\n3 holders keep their slots; no machine takes one until 3 of them release\n' });
    expect(value()).toMatchObject({ semaphore: -2, max: 1, holders: ['a', 'b', 'c'] });
    expect((await runLock('setMax', [-1, opts])).code).toBe(2);
  });

  it('--group: locksmith\'s key for the group (url.QueryEscape), and the hints name it', async () => {
    const key = 'coreos.com/updateengine/rebootlock/groups/a+b%2Fc/semaphore';
    const r = await runLock('acquire', ['m9', { ...opts, group: 'a b/c' }]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--group 'a b/c'"); // quoted: the hint is a command to paste
    expect(value(key)).toMatchObject({ semaphore: 0, max: 1, holders: ['m9'] });
    const json = JSON.parse((await runLock('release', ['m9', { ...opts, group: 'a b/c', json: true }])).stdout);
    expect(json).toMatchObject({ id: 'm9', changed: true, available: 1, max: 1, holders: [], record: null });
    expect(value(key)).toMatchObject({ holders: [], semaphore: 1 });
  });

  it('what etcd holds is printed escaped; a bad value or bad --etcd is one line with its exit code', async () => {
    cluster.etcdctl('put', DEFAULT_KEY, JSON.stringify({ max: 2, holders: ['\u001b[2Jevil\nAvailable: 9'] }));
    const s = await runLock('status', [opts]);
    expect(s.stdout).not.toMatch(/\u001b/);
    expect(s.stdout.split('\n').filter((l) => l.startsWith('Available'))).toEqual(['Available: 1']);
    cluster.etcdctl('put', DEFAULT_KEY, 'not json');
    const bad = await runLock('status', [opts]);
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/^IO: the reboot semaphore at coreos\.com\/updateengine\/rebootlock\/semaphore is not valid \(not JSON\); fix it with etcdctl put .*\n$/);
    expect((await runLock('acquire', ['', opts])).stderr).toMatch(/^USAGE: a machine id must be 1-256 characters/);
    const usage = await runLock('status', [{ ...opts, etcd: '10.0.0.1:2379' }]);
    expect(usage).toMatchObject({ code: 2, stdout: '' });
    expect(usage.stderr).toMatch(/^USAGE: etcd endpoints must be 1-16 http\(s\):\/\/host:port URLs/);
  });
});
