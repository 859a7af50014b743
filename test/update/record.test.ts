// The slot status record's file (update/status.ts) and the update settings file (update/config.ts):
// read with a size cap and field by field, refused when anything is off (a FIFO, /dev/zero, a
// folder, a field of the wrong type or out of bounds); written through an unguessable temporary
// name that a planted symlink cannot redirect; found at one path whatever name reaches the disk.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUpdateConfig, readLayeredUpdateConfig, readStatus, readUpdateConfig, statusPathFor } from '../../dist/src/index.js';
import { probeStatusWritable, writeStatus } from '../../dist/src/update/status.js';
import { MiB, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const canLoop = rootOrWarn('status path of a loop device');
let dir: string;
beforeAll(async () => {
  dir = await tempDir('record');
});
afterAll(() => removeDir(dir));

const GUID = '0A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9';
const HASH = 'ab'.repeat(32);
const entry = { version: '2.0.0', imageHash: HASH, imageSize: 4 * MiB, label: 'USR-B', installed: '2026-11-26T00:00:00.000Z' };
const recordText = (slots: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ format: 1, slots, ...extra });

describe('readStatus', () => {
  it('reads a valid record; a missing file is "missing", with nothing to report', async () => {
    const path = join(dir, 'ok.json');
    await fsp.writeFile(path, recordText({ [GUID.toLowerCase()]: entry }));
    expect(await readStatus(path)).toEqual({ state: 'found', status: { format: 1, slots: { [GUID]: entry } } });
    expect(await readStatus(join(dir, 'none.json'))).toEqual({ state: 'missing', status: { format: 1, slots: {} } });
  });

  const bad: Array<[string, string]> = [
    ['not JSON', '{"format": 1, "slots": '],
    ['an array', '[]'],
    ['format 2', recordText({}, { format: 2 })],
    ['slots an array', JSON.stringify({ format: 1, slots: [] })],
    ['a key that is no GUID', recordText({ 'USR-B': entry })],
    ['a __proto__ key', `{"format":1,"slots":{"__proto__":${JSON.stringify(entry)}}}`],
    ['one GUID twice (case)', `{"format":1,"slots":{"${GUID}":${JSON.stringify(entry)},"${GUID.toLowerCase()}":${JSON.stringify(entry)}}}`],
    ['version a number', recordText({ [GUID]: { ...entry, version: 2 } })],
    ['version with a newline', recordText({ [GUID]: { ...entry, version: '2.0\n' } })],
    ['version too long', recordText({ [GUID]: { ...entry, version: '1'.repeat(65) } })],
    ['version missing', recordText({ [GUID]: { ...entry, version: undefined } })],
    ['imageSize negative', recordText({ [GUID]: { ...entry, imageSize: -1 } })],
    ['imageSize fractional', recordText({ [GUID]: { ...entry, imageSize: 1.5 } })],
    ['imageSize past 2^53', recordText({ [GUID]: { ...entry, imageSize: 2 ** 60 } })],
    ['imageSize a string', recordText({ [GUID]: { ...entry, imageSize: '4194304' } })],
    ['imageHash not hex', recordText({ [GUID]: { ...entry, imageHash: 'zz'.repeat(32) } })],
    ['label too long', recordText({ [GUID]: { ...entry, label: 'L'.repeat(37) } })],
    ['installed not a date', recordText({ [GUID]: { ...entry, installed: 'yesterday' } })],
    ['an entry null', recordText({ [GUID]: null })],
    ['129 slots', recordText(Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`${GUID.slice(0, -3)}${i.toString(16).padStart(3, '0')}`, entry])))],
  ];
  it.each(bad)('%s: unreadable, saying why, never half-used', async (name, text) => {
    const path = join(dir, `bad-${name.replace(/\W+/g, '-')}.json`);
    await fsp.writeFile(path, text);
    const r = await readStatus(path);
    expect(r.state, name).toBe('unreadable');
    expect(r.status.slots).toEqual({});
    expect(r.problem).toMatch(/not a valid slot status record: /);
  });

  it('not UTF-8, a folder, a FIFO, /dev/zero, a file over 1 MiB: unreadable at once (no hang, no 600 MiB read)', async () => {
    const latin = join(dir, 'latin1.json');
    await fsp.writeFile(latin, Buffer.from([0x7b, 0xff, 0x7d]));
    const fifo = join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    const big = join(dir, 'big.json');
    await fsp.writeFile(big, ' '.repeat(MiB + 1));
    for (const [path, why] of [[latin, /not UTF-8/], [dir, /not a regular file \(a folder\)/], [fifo, /not a regular file \(a FIFO\)/], ['/dev/zero', /not a regular file \(a character device\)/], [big, /more than the 1048576/]] as const) {
      const r = await readStatus(path);
      expect(r.state, path).toBe('unreadable');
      expect(r.problem, path).toMatch(why);
    }
  });
});

describe('writeStatus', () => {
  it('never writes through a symlink planted at the old temporary name or at the record itself', async () => {
    const folder = join(dir, 'planted');
    await fsp.mkdir(folder);
    const victim = join(dir, 'victim');
    await fsp.writeFile(victim, 'precious');
    const path = join(folder, 'status.json');
    // The old writer used DIR/.<pid>.status.tmp, opened with truncate: any pid an attacker guesses.
    await fsp.symlink(victim, join(folder, `.${process.pid}.status.tmp`));
    const status = { format: 1 as const, slots: { [GUID]: entry } };
    await writeStatus(path, status);
    expect(await fsp.readFile(victim, 'utf8')).toBe('precious');
    expect((await readStatus(path)).status).toEqual(status);
    // A symlink at the record's own name is replaced, not followed.
    await fsp.rm(path);
    await fsp.symlink(victim, path);
    await writeStatus(path, status);
    expect(await fsp.readFile(victim, 'utf8')).toBe('precious');
    expect((await fsp.lstat(path)).isFile()).toBe(true);
    expect((await fsp.readdir(folder)).filter((n) => n.endsWith('.tmp') && !n.startsWith(`.${process.pid}.`)), 'no temporary file left').toEqual([]);
  });
});

describe('statusPathFor: one record per disk, whatever name reaches it', () => {
  it('an image file by relative path, absolute path or symlink: REALPATH.status.json', async () => {
    const image = join(dir, 'disk.img');
    await fsp.writeFile(image, new Uint8Array(MiB));
    const link = join(dir, 'link.img');
    await fsp.symlink(image, link);
    const want = `${await fsp.realpath(image)}.status.json`;
    expect(await statusPathFor(image)).toBe(want);
    expect(await statusPathFor(link)).toBe(want);
    expect(await statusPathFor(`${dir}/./disk.img`)).toBe(want);
  });

  it.runIf(canLoop)('a loop device over the whole file (or over such a loop device): the file\'s record; with an offset, or over part of it: the device record', async () => {
    const image = join(dir, 'loop.img');
    await fsp.writeFile(image, new Uint8Array(8 * MiB));
    const want = `${await fsp.realpath(image)}.status.json`;
    await withLoopDevice(image, {}, async (dev) => {
      expect(await statusPathFor(dev)).toBe(want);
    });
    // A loop device over that loop device: still the file.
    await withLoopDevice(image, {}, async (dev) => {
      await withLoopDevice(dev, {}, async (outer) => {
        expect(await statusPathFor(outer)).toBe(want);
      });
    });
    for (const args of [['--offset', String(MiB)], ['--sizelimit', String(4 * MiB)]]) {
      const dev = execFileSync('losetup', ['--find', '--show', ...args, image], { encoding: 'utf8' }).trim();
      try {
        expect(await statusPathFor(dev), args.join(' ')).toBe('/var/lib/fastpatch/status.json');
      } finally {
        execFileSync('losetup', ['--detach', dev]);
      }
    }
  });
});

describe('update settings (update.conf)', () => {
  it('KEY=value lines, comments, quotes; the last value wins; unknown keys are noted and ignored', () => {
    const text = '# FastPatch\n\nGROUP=stable\nUNKNOWN_RELEASE=refuse\n  UNKNOWN_RELEASE = "allow"  \r\nSERVER=https://x\nPCR_POLICY_SERVER=https://y\nGROUP=beta\n';
    expect(parseUpdateConfig(text, 'u.conf')).toEqual({
      unknownRelease: 'allow',
      group: 'beta',
      server: 'https://x',
      notes: ['u.conf line 7: PCR_POLICY_SERVER is not a FastPatch setting; ignored'],
    });
    expect(parseUpdateConfig("UNKNOWN_RELEASE='refuse'", 'u.conf').unknownRelease).toBe('refuse');
    expect(parseUpdateConfig('', 'u.conf')).toEqual({ notes: [] });
  });

  it.each([
    ['a bad value', 'UNKNOWN_RELEASE=maybe', /u\.conf line 1: UNKNOWN_RELEASE must be allow or refuse, got "maybe"/],
    ['a group with a space', 'GROUP=be ta', /u\.conf line 1: GROUP must be 1-64 of/],
    ['a server that is no URL', 'SERVER=updates:8080', /u\.conf line 1: SERVER must be an http:\/\/ or https:\/\/ URL/],
    ['an empty value', 'UNKNOWN_RELEASE=', /UNKNOWN_RELEASE must be allow or refuse, got ""/],
    ['a case variant', 'UNKNOWN_RELEASE=Allow', /got "Allow"/],
    ['a line without =', '# ok\nUNKNOWN_RELEASE allow', /u\.conf line 2: expected KEY=value/],
    ['a bad key', '1KEY=x', /expected KEY=value/],
    ['a control character', 'UNKNOWN_RELEASE=\u001b[2J', /got "\\x1b\[2J"/],
  ])('refuses %s (USAGE), naming the line', (_name, text, message) => {
    let err: unknown;
    try {
      parseUpdateConfig(text, 'u.conf');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'USAGE', message: expect.stringMatching(message) });
  });

  it('a named file must exist and be a small regular file; the default file may be absent', async () => {
    await expect(readUpdateConfig(join(dir, 'none.conf'))).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/none\.conf \(--config\) does not exist/) });
    await expect(readUpdateConfig('/dev/zero')).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/not a regular file/) });
    const fifo = join(dir, 'conf.fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(readUpdateConfig(fifo)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/a FIFO/) });
    const file = join(dir, 'update.conf');
    await fsp.writeFile(file, 'UNKNOWN_RELEASE=allow\n');
    expect(await readUpdateConfig(file)).toEqual({ path: file, unknownRelease: 'allow', notes: [] });
    const fallback = await readUpdateConfig();
    expect(fallback.path === undefined || fallback.path === '/etc/fastpatch/update.conf').toBe(true);
  });
});

describe('the agent\'s settings in update.conf (reboot strategy, window, etcd, health check)', () => {
  it('reads each key; the LOCKSMITHD_ window name wins over the unprefixed one in a file', () => {
    const text = [
      'REBOOT_STRATEGY=etcd-lock',
      'REBOOT_WINDOW_START=01:00',
      'LOCKSMITHD_REBOOT_WINDOW_START="Thu 23:00"',
      'REBOOT_WINDOW_START=05:00',
      'REBOOT_WINDOW_LENGTH=1h30m',
      'ETCD_ENDPOINTS=http://10.0.0.1:2379, http://10.0.0.2:2379',
      "HEALTH_CHECK='systemctl is-active --quiet kubelet && curl -fsS http://127.0.0.1:10248/healthz'",
      'HEALTH_GRACE=120',
      'REBOOT_COMMAND=/usr/bin/systemctl reboot --no-wall',
    ].join('\n');
    expect(parseUpdateConfig(text, 'u.conf')).toEqual({
      rebootStrategy: 'etcd-lock', rebootWindowStart: 'Thu 23:00', rebootWindowLength: '1h30m',
      etcdEndpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'],
      healthCheck: 'systemctl is-active --quiet kubelet && curl -fsS http://127.0.0.1:10248/healthz', healthGrace: 120,
      rebootCommand: '/usr/bin/systemctl reboot --no-wall', notes: [],
    });
    expect(parseUpdateConfig('REBOOT_STRATEGY=off', 'u.conf').rebootStrategy).toBe('off');
  });

  it.each([
    ['a strategy locksmith never had', 'REBOOT_STRATEGY=drain', /line 1: REBOOT_STRATEGY must be best-effort, etcd-lock, reboot, off, got "drain"/],
    ['a bad window start', 'LOCKSMITHD_REBOOT_WINDOW_START=Thursday 02:00', /line 1: a reboot window start must be HH:MM/],
    ['a bad window length', 'REBOOT_WINDOW_LENGTH=1 hour', /line 1: a reboot window length must be a Go duration/],
    ['a negative length', 'REBOOT_WINDOW_LENGTH=-30m', /must not be negative/],
    ['an endpoint that is no URL', 'ETCD_ENDPOINTS=10.0.0.1:2379', /line 1: ETCD_ENDPOINTS: etcd endpoints must be 1-16 http\(s\):\/\/host:port URLs/],
    ['no endpoints', 'ETCD_ENDPOINTS=,', /ETCD_ENDPOINTS/],
    ['a grace that is no number', 'HEALTH_GRACE=1m', /HEALTH_GRACE must be whole seconds/],
    ['an empty health check', 'HEALTH_CHECK=', /HEALTH_CHECK must be a command line/],
    ['a reboot command with a control character', 'REBOOT_COMMAND=reboot\u0007', /REBOOT_COMMAND must be a command line/],
  ])('refuses %s (USAGE), naming the line', (_name, text, message) => {
    expect(() => parseUpdateConfig(text, 'u.conf')).toThrow(message);
  });

  it('layered: the machine moves the image\'s window key by key; a window needs both keys after layering', async () => {
    const image = join(dir, 'image-window.conf');
    const machine = join(dir, 'machine-window.conf');
    await fsp.writeFile(image, 'REBOOT_WINDOW_START=02:00\nREBOOT_WINDOW_LENGTH=1h\nREBOOT_STRATEGY=reboot\n', { mode: 0o644 });
    await fsp.writeFile(machine, 'LOCKSMITHD_REBOOT_WINDOW_START=Sat 03:00\nETCD_ENDPOINTS=http://127.0.0.1:2379\n', { mode: 0o644 });
    expect(await readLayeredUpdateConfig({ image, machine })).toMatchObject({
      rebootStrategy: 'reboot', rebootWindowStart: 'Sat 03:00', rebootWindowLength: '1h', etcdEndpoints: ['http://127.0.0.1:2379'],
    });
    await fsp.writeFile(image, 'REBOOT_STRATEGY=reboot\n', { mode: 0o644 });
    await expect(readLayeredUpdateConfig({ image, machine })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/machine-window\.conf: a reboot window needs both .*only the start is set/) });
  });
});

describe('files that decide trust must be root\'s or yours and not group/other-writable (F6)', () => {
  const isRoot = process.geteuid?.() === 0;

  it('a status record writable by group or others is unreadable, whatever it says, saying what to do', async () => {
    for (const mode of [0o666, 0o664, 0o646, 0o622]) {
      const path = join(dir, `loose-${mode.toString(8)}.json`);
      await fsp.writeFile(path, recordText({ [GUID]: entry }));
      await fsp.chmod(path, mode);
      const r = await readStatus(path);
      expect(r, mode.toString(8)).toMatchObject({ state: 'unreadable', status: { format: 1, slots: {} } });
      expect(r.problem).toMatch(/writable by .*chown root .*; chmod go-w /);
      expect(r.problem).toContain(path);
    }
  });

  it.runIf(isRoot)('as root: a status record owned by nobody (uid 65534) is unreadable; chowned to root it is read', async () => {
    const path = join(dir, 'nobody.json');
    await fsp.writeFile(path, recordText({ [GUID]: entry }), { mode: 0o644 });
    await fsp.chown(path, 65534, 65534);
    const r = await readStatus(path);
    expect(r).toMatchObject({ state: 'unreadable', status: { slots: {} }, problem: expect.stringMatching(/owned by uid 65534.*chown root .*; chmod go-w /) });
    await fsp.chown(path, 0, 0);
    expect(await readStatus(path)).toMatchObject({ state: 'found' });
  });

  it('a record FastPatch writes itself is trusted when read back (mode 0644, whatever the umask)', async () => {
    const path = join(dir, 'own.json');
    const old = process.umask(0o000);
    try {
      await writeStatus(path, { format: 1, slots: { [GUID]: entry } });
    } finally {
      process.umask(old);
    }
    expect((await fsp.stat(path)).mode & 0o777).toBe(0o644);
    expect(await readStatus(path)).toEqual({ state: 'found', status: { format: 1, slots: { [GUID]: entry } } });
  });

  it('update.conf writable by group or others is refused (USAGE), not honoured', async () => {
    for (const mode of [0o666, 0o664, 0o646]) {
      const path = join(dir, `loose-${mode.toString(8)}.conf`);
      await fsp.writeFile(path, 'UNKNOWN_RELEASE=allow\n');
      await fsp.chmod(path, mode);
      await expect(readUpdateConfig(path)).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/update config .* is writable by .*chown root .*; chmod go-w /) });
    }
  });

  it.runIf(isRoot)('as root: update.conf owned by nobody (uid 65534) is refused; chowned to root it is read', async () => {
    const path = join(dir, 'nobody.conf');
    await fsp.writeFile(path, 'UNKNOWN_RELEASE=allow\n', { mode: 0o644 });
    await fsp.chown(path, 65534, 65534);
    await expect(readUpdateConfig(path)).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/owned by uid 65534.*chown root .*; chmod go-w /) });
    await fsp.chown(path, 0, 0);
    expect(await readUpdateConfig(path)).toMatchObject({ unknownRelease: 'allow' });
  });
});

describe('no record, and no folder for it, is created under /dev, /proc, /sys or /run (F4)', () => {
  it('writeStatus and probeStatusWritable refuse (USAGE) and leave nothing behind', async () => {
    const tag = `fastpatch-${process.pid}-${Date.now()}`;
    const paths = [`/run/${tag}/status.json`, `/run/${tag}.status.json`, `/dev/${tag}/status.json`];
    if ((await fsp.stat('/dev/shm').catch(() => undefined))?.isDirectory()) paths.push(`/dev/shm/${tag}/status.json`);
    for (const path of paths) {
      await expect(writeStatus(path, { format: 1, slots: {} }), path).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/creates no file under \/dev, \/proc, \/sys, \/run/) });
      await expect(probeStatusWritable(path), path).rejects.toMatchObject({ code: 'USAGE' });
    }
    for (const folder of ['/run', '/dev', '/dev/shm']) {
      expect((await fsp.readdir(folder).catch(() => [] as string[])).filter((n) => n.includes(tag)), folder).toEqual([]);
    }
  });
});
