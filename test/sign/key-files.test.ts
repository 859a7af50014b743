// Key files: a signing key others can read or write is refused (as ssh refuses an "UNPROTECTED
// PRIVATE KEY FILE"), a private key is never accepted as a trust key (--pubkey), and key files are
// read with a size cap, refusing FIFOs and devices at once.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatPrivateKey, formatPublicKey, generateKey, hex, loadKeyFile, loadPrivateKeyFile, writeKeyPair } from '../../dist/src/index.js';
import { lines, runCli, stackLines, type CliRun } from '../helpers/cli.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, mixedImage, removeDir, tempDir } from '../helpers/payloads.js';

// Each test spawns the CLI a few times on a shared, busy machine: allow minutes, assert no speed.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let dir: string;
const at = (name: string) => join(dir, name);
const release = generateKey();
const stranger = generateKey();
const isRoot = process.getuid?.() === 0;

beforeAll(async () => {
  dir = await tempDir('key-files');
  await fsp.writeFile(at('image.img'), mixedImage(MiB / 2, 5));
  await writeKeyPair(at('release.key'), release);
  await writeKeyPair(at('stranger.key'), stranger);
  const gen = await runCli(['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', at('p.fpay')]);
  expect(gen.code, gen.stderr).toBe(0);
});
afterAll(async () => {
  await removeDir(dir);
});

/** A failed run: the exit code, one line on stderr naming the code, no stack trace. */
function refused(run: CliRun, code: string, exit: number): string {
  expect(run.code, run.stderr).toBe(exit);
  expect(lines(run.stderr)).toHaveLength(1);
  expect(run.stderr).toContain(code);
  expect(stackLines(run.stderr)).toEqual([]);
  return run.stderr;
}

const generateWith = (keyPath: string, out: string) => runCli(['generate', '--target', at('image.img'), '--key', keyPath, '--version', '1.0.0', '-o', out]);

describe('generate refuses an unprotected private key file', () => {
  it.each([0o644, 0o640, 0o604, 0o660, 0o606, 0o666, 0o777, 0o620, 0o602, 0o610, 0o700 | 0o001])('mode %o: BAD_KEY_FILE telling chmod 600, and no payload', async (mode) => {
    const path = at(`loose-${mode.toString(8)}.key`);
    await fsp.writeFile(path, formatPrivateKey(release));
    await fsp.chmod(path, mode);
    const out = at(`never-${mode.toString(8)}.fpay`);
    const stderr = refused(await generateWith(path, out), 'BAD_KEY_FILE', 2);
    expect(stderr).toContain(`chmod 600 ${path}`);
    await expect(fsp.stat(out)).rejects.toThrow(/ENOENT/);
  });

  it.each([0o600, 0o400])('mode %o is accepted', async (mode) => {
    const path = at(`tight-${mode.toString(8)}.key`);
    await fsp.writeFile(path, formatPrivateKey(release));
    await fsp.chmod(path, mode);
    const run = await generateWith(path, at(`ok-${mode.toString(8)}.fpay`));
    expect(run.code, run.stderr).toBe(0);
  });

  it('the library refuses it too (loadPrivateKeyFile, loadKeyFile)', async () => {
    const path = at('loose-lib.key');
    await fsp.writeFile(path, formatPrivateKey(release), { mode: 0o644 });
    await fsp.chmod(path, 0o644);
    expect(await asyncCodeOf(() => loadPrivateKeyFile(path))).toBe('BAD_KEY_FILE');
    expect(await asyncCodeOf(() => loadKeyFile(path))).toBe('BAD_KEY_FILE');
  });

  it.skipIf(!isRoot)('as root: a private key owned by another (non-root) user is refused, even at mode 0600', async () => {
    const path = at('foreign.key');
    await fsp.writeFile(path, formatPrivateKey(release), { mode: 0o600 });
    await fsp.chown(path, 4242, 4242);
    const stderr = refused(await generateWith(path, at('never-foreign.fpay')), 'BAD_KEY_FILE', 2);
    expect(stderr).toContain('4242');
    expect(stderr).toContain(path);
    // Owned by root (the user running it): accepted.
    await fsp.chown(path, 0, 0);
    expect((await generateWith(path, at('ok-foreign.fpay'))).code).toBe(0);
  });
  if (!isRoot) console.log('skipped: the foreign-owner key test needs root');
});

describe('a private key given where a trust key is meant (--pubkey)', () => {
  const cases: [string, () => string[]][] = [
    ['verify', () => ['verify', at('p.fpay'), '--pubkey', at('release.key')]],
    ['apply', () => ['apply', at('p.fpay'), '--target', at('never.img'), '--pubkey', at('release.key')]],
    ['inspect', () => ['inspect', at('p.fpay'), '--pubkey', at('release.key')]],
    ['update', () => ['update', at('p.fpay'), '--disk', at('no-such-disk.img'), '--pubkey', at('release.key')]],
    ['verify (second of two keys)', () => ['verify', at('p.fpay'), '--pubkey', at('release.key.pub'), '--pubkey', at('stranger.key')]],
  ];
  it.each(cases)('%s: BAD_KEY_FILE, saying to give the .pub file', async (_name, args) => {
    const stderr = refused(await runCli(args()), 'BAD_KEY_FILE', 2);
    expect(stderr).toMatch(/private/);
    expect(stderr).toMatch(/\.pub/);
    await expect(fsp.stat(at('never.img'))).rejects.toThrow(/ENOENT/);
  });

  it('the public key file itself is accepted', async () => {
    const run = await runCli(['verify', at('p.fpay'), '--pubkey', at('release.key.pub')]);
    expect(run.code, run.stderr).toBe(0);
  });
});

describe('key files are read with a cap; FIFOs and devices are refused at once', () => {
  beforeAll(() => {
    execFileSync('mkfifo', [at('fifo.key')]);
  });

  // The timeouts only stop a hang from stalling the suite; the assertions are on the outcome.
  it.each([
    ['a FIFO as --pubkey', () => ['verify', at('p.fpay'), '--pubkey', at('fifo.key')]],
    ['a FIFO as --key', () => ['generate', '--target', at('image.img'), '--key', at('fifo.key'), '--version', '1.0.0', '-o', at('never-fifo.fpay')]],
    ['/dev/zero as --pubkey', () => ['verify', at('p.fpay'), '--pubkey', '/dev/zero']],
    ['/dev/zero as --key', () => ['generate', '--target', at('image.img'), '--key', '/dev/zero', '--version', '1.0.0', '-o', at('never-zero.fpay')]],
    ['a folder as --pubkey', () => ['verify', at('p.fpay'), '--pubkey', dir]],
  ])('%s: IO error naming it, not a hang', async (_name, args) => {
    const a = args();
    const stderr = refused(await runCli(a, { timeoutMs: 30_000 }), 'IO', 6);
    expect(stderr).toMatch(/not a regular file/);
  }, 40_000);

  it('a key file larger than the cap is refused', async () => {
    const path = at('huge.pub');
    await fsp.writeFile(path, `${formatPublicKey(release)}${'# padding\n'.repeat(1000)}`);
    const stderr = refused(await runCli(['verify', at('p.fpay'), '--pubkey', path]), 'IO', 6);
    expect(stderr).toContain(path);
  });

  it('the library: loadKeyFile refuses a FIFO and /dev/zero at once', async () => {
    expect(await asyncCodeOf(() => loadKeyFile(at('fifo.key')))).toBe('IO');
    expect(await asyncCodeOf(() => loadKeyFile('/dev/zero'))).toBe('IO');
  }, 20_000);
});

describe('UNTRUSTED_KEY says which keys it had and which signed', () => {
  it('lists the trusted key ids and the payload signer', async () => {
    const stderr = refused(await runCli(['verify', at('p.fpay'), '--pubkey', at('stranger.key.pub')]), 'UNTRUSTED_KEY', 3);
    expect(stderr).toContain(hex(release.keyId));
    expect(stderr).toContain(hex(stranger.keyId));
  });
});

describe('a trust key (--pubkey) others could write is refused, as ssh StrictModes (F6)', () => {
  const commands: [string, (pubPath: string) => string[]][] = [
    ['verify', (p) => ['verify', at('p.fpay'), '--pubkey', p]],
    ['apply', (p) => ['apply', at('p.fpay'), '--target', at('never-trust.img'), '--pubkey', p]],
    ['update', (p) => ['update', at('p.fpay'), '--disk', at('no-such-disk.img'), '--pubkey', p]],
    ['verify (second of two keys)', (p) => ['verify', at('p.fpay'), '--pubkey', at('release.key.pub'), '--pubkey', p]],
  ];

  it.each([0o666, 0o664, 0o646, 0o622, 0o660, 0o606, 0o777])('mode %o: BAD_KEY_FILE (exit 2) saying chown root FILE; chmod go-w FILE', async (mode) => {
    const path = at(`loose-${mode.toString(8)}.pub`);
    await fsp.writeFile(path, formatPublicKey(release));
    await fsp.chmod(path, mode);
    for (const [name, args] of commands) {
      const stderr = refused(await runCli(args(path)), 'BAD_KEY_FILE', 2);
      expect(stderr, name).toContain(`chown root ${path}; chmod go-w ${path}`);
      expect(stderr, name).toMatch(/writable by/);
    }
    await expect(fsp.stat(at('never-trust.img'))).rejects.toThrow(/ENOENT/);
    // The library too.
    expect(await asyncCodeOf(() => loadKeyFile(path))).toBe('BAD_KEY_FILE');
  });

  it.skipIf(!isRoot)('as root: a public key owned by nobody (uid 65534) is refused, even at mode 0644; chowned to root it is accepted', async () => {
    const path = at('nobody.pub');
    await fsp.writeFile(path, formatPublicKey(release), { mode: 0o644 });
    await fsp.chown(path, 65534, 65534);
    for (const [name, args] of commands) {
      const stderr = refused(await runCli(args(path)), 'BAD_KEY_FILE', 2);
      expect(stderr, name).toMatch(/owned by uid 65534/);
      expect(stderr, name).toContain(`chown root ${path}; chmod go-w ${path}`);
    }
    await fsp.chown(path, 0, 0);
    const ok = await runCli(['verify', at('p.fpay'), '--pubkey', path]);
    expect(ok.code, ok.stderr).toBe(0);
  });
  if (!isRoot) console.log('skipped: the nobody-owned public key test needs root');

  it.each([0o644, 0o444, 0o600, 0o640])('mode %o (what keygen writes, or tighter) is accepted', async (mode) => {
    const path = at(`tight-${mode.toString(8)}.pub`);
    await fsp.writeFile(path, formatPublicKey(release));
    await fsp.chmod(path, mode);
    const run = await runCli(['verify', at('p.fpay'), '--pubkey', path]);
    expect(run.code, run.stderr).toBe(0);
  });
});

describe('keygen --out: a folder, an empty name, a name under /dev are usage errors before any key is written (M5, F4)', () => {
  it.each([
    ['an existing folder, with --force', () => ['keygen', '--out', at('keydir'), '--force']],
    ['an existing folder', () => ['keygen', '--out', at('keydir')]],
    ['an empty name', () => ['keygen', '--out', '']],
    ['an empty name, with --force', () => ['keygen', '--out', '', '--force']],
    ['a trailing "/"', () => ['keygen', '--out', `${at('keydir')}/`]],
    ['a folder at NAME.pub, with --force', () => ['keygen', '--out', at('has-pub-dir'), '--force']],
    ['a name under /dev', () => ['keygen', '--out', `/dev/fastpatch-${process.pid}.key`]],
  ])('%s: exit 2, no temporary name shown, nothing written', async (_name, args) => {
    await fsp.mkdir(at('keydir'), { recursive: true });
    await fsp.mkdir(at('has-pub-dir.pub'), { recursive: true });
    const stderr = refused(await runCli(args()), 'USAGE', 2);
    expect(stderr).not.toMatch(/\.tmp|[0-9a-f]{32}/);
    expect(await fsp.readdir(at('keydir'))).toEqual([]);
    await expect(fsp.lstat(at('has-pub-dir'))).rejects.toThrow(/ENOENT/);
    await expect(fsp.lstat(`/dev/fastpatch-${process.pid}.key`)).rejects.toThrow(/ENOENT/);
    expect((await fsp.readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
