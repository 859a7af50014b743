// The fastpatch command as a user runs it: node dist/src/cli.js, output captured, exit codes checked.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, parseKey } from '../../dist/src/index.js';
import { lines, runCli, stackLines, type CliRun } from '../helpers/cli.js';
import {
  BLOCK,
  KiB,
  MiB,
  blockListHashRef,
  dataStartOf,
  firstDifference,
  flipped,
  mixedImage,
  patternBytes,
  randomBytes,
  removeDir,
  sameBytes,
  tempDir,
} from '../helpers/payloads.js';

let dir: string;
const at = (name: string) => join(dir, name);
let image: Uint8Array;
let payload: Buffer;
let generated: { targetSize: number; targetHash: string; operations: Record<string, { count: number; outputBytes: number; dataBytes: number }>; payload: { totalSize: number } };
let keyId: string;

/** Asserts a successful run: exit 0 and nothing on stderr (progress is only drawn on a terminal). */
function ok(run: CliRun): CliRun {
  expect(run.stderr, 'stderr').toBe('');
  expect(run.code, run.stderr).toBe(0);
  return run;
}

const opCount = () => Object.values(generated.operations).reduce((s, o) => s + o.count, 0);

beforeAll(async () => {
  dir = await tempDir('cli');
  image = mixedImage(MiB + 5 * BLOCK + 77, 70);
  image.set(randomBytes(300 * KiB, 71), 100 * KiB); // incompressible stretch: a REPLACE operation
  await fsp.writeFile(at('image.img'), image);
  const keygen = ok(await runCli(['keygen', '--out', at('release.key'), '--json']));
  keyId = JSON.parse(keygen.stdout).keyId;
  ok(await runCli(['keygen', '--out', at('stranger.key')]));
  const gen = ok(await runCli(['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1.4.0', '-o', at('p.fpay'), '--json']));
  generated = JSON.parse(gen.stdout);
  payload = await fsp.readFile(at('p.fpay'));
  await fsp.writeFile(at('garbage.key'), 'this is not a key\n');
  await fsp.writeFile(at('truncated.fpay'), payload.subarray(0, payload.length - 1000));
  await fsp.writeFile(at('head-only.fpay'), payload.subarray(0, dataStartOf(payload) - 10));
  await fsp.writeFile(at('data-damaged.fpay'), flipped(payload, payload.length - 1));
  await fsp.writeFile(at('manifest-damaged.fpay'), flipped(payload, 32 + 20));
  await fsp.writeFile(at('bad-magic.fpay'), flipped(payload, 0));
  await fsp.writeFile(at('trailing.fpay'), Buffer.concat([payload, Buffer.from('x')]));
  await fsp.writeFile(at('too-small.img'), patternBytes(image.length - 1));
});
afterAll(async () => {
  await removeDir(dir);
});

describe('keygen', () => {
  it('writes KEY (mode 0600) and KEY.pub (mode 0644) holding one key pair', async () => {
    const run = ok(await runCli(['keygen', '--out', at('k1')]));
    expect(lines(run.stdout)).toHaveLength(1);
    expect(run.stdout).toMatch(/^wrote .*k1 \(private, keep secret\) and .*k1\.pub \(public\), key id [0-9a-f]{16}\n$/);
    expect((await fsp.stat(at('k1'))).mode & 0o777).toBe(0o600);
    expect((await fsp.stat(at('k1.pub'))).mode & 0o777).toBe(0o644);
    const priv = parseKey(await fsp.readFile(at('k1'), 'utf8'));
    const pub = parseKey(await fsp.readFile(at('k1.pub'), 'utf8'));
    expect(priv.kind).toBe('private');
    expect(pub.kind).toBe('public');
    expect(Buffer.from(pub.publicKey).equals(Buffer.from(priv.publicKey))).toBe(true);
    expect(run.stdout).toContain(Buffer.from(priv.keyId).toString('hex'));
  });

  it('--json reports the key id and both paths', async () => {
    const run = ok(await runCli(['keygen', '--out', at('k2'), '--json']));
    const out = JSON.parse(run.stdout);
    expect(out).toEqual({ keyId: expect.stringMatching(/^[0-9a-f]{16}$/), privatePath: at('k2'), publicPath: at('k2.pub') });
    expect(Buffer.from(parseKey(await fsp.readFile(at('k2.pub'), 'utf8')).keyId).toString('hex')).toBe(out.keyId);
  });

  // writeKeyPair opens with O_EXCL: an existing file is an I/O refusal (EEXIST), exit 6.
  it.each([
    ['both files exist', ['KEY', 'KEY.pub']],
    ['only KEY exists', ['KEY']],
    ['only KEY.pub exists', ['KEY.pub']],
  ])('refuses to overwrite when %s: exit 6, one line, nothing changed or added', async (name, existing) => {
    const base = at(`exists-${name.replace(/\W+/g, '_')}`);
    const paths = { KEY: base, 'KEY.pub': `${base}.pub` } as Record<string, string>;
    for (const e of existing) await fsp.writeFile(paths[e]!, `old ${e}\n`, { mode: 0o600 });
    const run = await runCli(['keygen', '--out', base]);
    expect(run.code).toBe(EXIT.IO);
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toMatch(/^fastpatch: IO: .*EEXIST/);
    expect(run.stdout).toBe('');
    for (const [label, path] of Object.entries(paths)) {
      if (existing.includes(label)) expect(await fsp.readFile(path, 'utf8'), `${label} must keep its content`).toBe(`old ${label}\n`);
      else await expect(fsp.stat(path), `${label} must not be created by a refused keygen`).rejects.toThrow(/ENOENT/);
    }
  });

  it('--force replaces both files with a new key, and the private key is mode 0600 even over a 0644 file', async () => {
    ok(await runCli(['keygen', '--out', at('k3')]));
    const oldId = parseKey(await fsp.readFile(at('k3'), 'utf8')).keyId;
    await fsp.chmod(at('k3'), 0o644);
    const run = ok(await runCli(['keygen', '--out', at('k3'), '--force', '--json']));
    const priv = parseKey(await fsp.readFile(at('k3'), 'utf8'));
    const pub = parseKey(await fsp.readFile(at('k3.pub'), 'utf8'));
    expect(Buffer.from(priv.keyId).equals(Buffer.from(oldId))).toBe(false);
    expect(Buffer.from(pub.keyId).equals(Buffer.from(priv.keyId))).toBe(true);
    expect(JSON.parse(run.stdout).keyId).toBe(Buffer.from(priv.keyId).toString('hex'));
    expect((await fsp.stat(at('k3'))).mode & 0o777, 'a private key file must not stay world-readable').toBe(0o600);
  });
});

describe('generate, inspect, verify, apply, hash', () => {
  it('generate --json describes the payload it wrote', () => {
    expect(generated.targetSize).toBe(image.length);
    expect(generated.targetHash).toBe(blockListHashRef(image));
    expect(generated.payload.totalSize).toBe(payload.length);
    expect(Object.keys(generated.operations).sort()).toEqual(['REPLACE', 'REPLACE_ZSTD', 'ZERO']);
  });

  it('generate without --json prints a summary with a line per operation type', async () => {
    const run = ok(await runCli(['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1.4.0', '-o', at('p2.fpay'), '--level', '9']));
    expect(run.stdout).toMatch(/^wrote .*p2\.fpay: version 1\.4\.0, /);
    for (const type of Object.keys(generated.operations)) expect(run.stdout).toMatch(new RegExp(`^  ${type} +\\d+ ops`, 'm'));
    expect(run.stdout).toContain(`signed by ${keyId}`);
    const again = await fsp.readFile(at('p2.fpay'));
    expect(again.length).toBeGreaterThan(0);
  });

  it('inspect prints the release, target, signer, sizes and operation counts', async () => {
    const run = ok(await runCli(['inspect', at('p.fpay')]));
    expect(run.stdout).toContain('payload format v2, release 1.4.0, full');
    expect(run.stdout).toContain(`target: `);
    expect(run.stdout).toContain(`(${image.length} bytes), 4096-byte blocks, hash ${generated.targetHash}`);
    expect(run.stdout).toContain(`signed by: key ${keyId} (NOT verified: give --pubkey KEY.pub to check the signature)\n`);
    expect(run.stdout).toContain(`operations: ${opCount()}\n`);
    for (const [type, s] of Object.entries(generated.operations)) expect(run.stdout).toMatch(new RegExp(`^  ${type} +${s.count} ops`, 'm'));
  });

  it('inspect --json parses and has the op counts of generate; --pubkey verifies', async () => {
    const info = JSON.parse(ok(await runCli(['inspect', at('p.fpay'), '--json'])).stdout);
    expect(info.operations).toEqual({ total: opCount(), byType: generated.operations });
    expect(info.sizes.total).toBe(payload.length);
    expect(info.verifiedBy).toBeNull();
    const verified = JSON.parse(ok(await runCli(['inspect', at('p.fpay'), '--json', '--pubkey', at('release.key.pub')])).stdout);
    expect(verified.verifiedBy).toBe(keyId);
  });

  it("inspect '-' reads standard input", async () => {
    const info = JSON.parse(ok(await runCli(['inspect', '-', '--json'], { input: payload })).stdout);
    expect(info.targetHash).toBe(generated.targetHash);
  });

  it('verify --json checks everything and writes nothing', async () => {
    const before = await fsp.readdir(dir);
    const result = JSON.parse(ok(await runCli(['verify', at('p.fpay'), '--pubkey', at('release.key.pub'), '--json'])).stdout);
    expect(result).toMatchObject({ version: '1.4.0', targetSize: image.length, targetHash: generated.targetHash, keyId, operations: opCount(), payloadBytes: payload.length, bytesWritten: 0, target: null });
    expect(await fsp.readdir(dir)).toEqual(before);
  });

  it('verify without --json prints two lines', async () => {
    const run = ok(await runCli(['verify', at('p.fpay'), '--pubkey', at('release.key.pub')]));
    expect(lines(run.stdout)).toHaveLength(2);
    expect(run.stdout).toMatch(/^verified: release 1\.4\.0, /);
    expect(run.stdout).toContain(`signature by ${keyId}`);
  });

  it('verify refuses a private key file as the trusted key (devices hold public keys), and accepts any one of several keys', async () => {
    const priv = await runCli(['verify', at('p.fpay'), '--pubkey', at('release.key')]);
    expect(priv.code).toBe(EXIT.USAGE);
    expect(priv.stderr).toMatch(/^fastpatch: BAD_KEY_FILE: .*private.*release\.key\.pub/);
    const rotated = JSON.parse(ok(await runCli(['verify', at('p.fpay'), '--pubkey', at('stranger.key.pub'), '--pubkey', at('release.key.pub'), '--json'])).stdout);
    expect(rotated.keyId).toBe(keyId);
  });

  it('apply --json writes the image to a new file', async () => {
    const run = ok(await runCli(['apply', at('p.fpay'), '--target', at('out.img'), '--pubkey', at('release.key.pub'), '--json']));
    expect(JSON.parse(run.stdout)).toMatchObject({ target: at('out.img'), targetHash: generated.targetHash, bytesWritten: image.length });
    expect(firstDifference(await fsp.readFile(at('out.img')), image)).toBe(-1);
  });

  it('apply onto an existing larger file keeps its tail; human output', async () => {
    const before = patternBytes(image.length + 3 * BLOCK);
    await fsp.writeFile(at('slot.img'), before);
    const run = ok(await runCli(['apply', at('p.fpay'), '--target', at('slot.img'), '--pubkey', at('release.key.pub')]));
    expect(run.stdout).toMatch(/^applied to .*slot\.img: release 1\.4\.0/);
    const after = await fsp.readFile(at('slot.img'));
    expect(firstDifference(after.subarray(0, image.length), image)).toBe(-1);
    expect(sameBytes(after.subarray(image.length), before.subarray(image.length))).toBe(true);
  });

  it("apply '-' reads the payload from standard input", async () => {
    const run = ok(await runCli(['apply', '-', '--target', at('stdin.img'), '--pubkey', at('release.key.pub'), '--json'], { input: payload }));
    expect(JSON.parse(run.stdout).payloadBytes).toBe(payload.length);
    expect(firstDifference(await fsp.readFile(at('stdin.img')), image)).toBe(-1);
  });

  it("verify '-' reads the payload from standard input", async () => {
    const result = JSON.parse(ok(await runCli(['verify', '-', '--pubkey', at('release.key.pub'), '--json'], { input: payload })).stdout);
    expect(result.targetHash).toBe(generated.targetHash);
  });

  it('hash prints the block-list hash the manifest records', async () => {
    expect(JSON.parse(ok(await runCli(['hash', at('image.img'), '--json'])).stdout)).toEqual({ image: at('image.img'), size: image.length, hash: generated.targetHash });
    const part = JSON.parse(ok(await runCli(['hash', at('image.img'), '--size', '10000', '--json'])).stdout);
    expect(part).toEqual({ image: at('image.img'), size: 10000, hash: blockListHashRef(image.subarray(0, 10000)) });
    expect(ok(await runCli(['hash', at('image.img')])).stdout).toBe(`blocklist-sha256:${generated.targetHash}  ${at('image.img')} (${image.length} bytes; the hash a manifest records, not the file's SHA-256)\n`);
  });
});

describe('--help', () => {
  it.each([[[]], [['keygen']], [['generate']], [['inspect']], [['verify']], [['apply']], [['hash']], [['demo']], [['update']], [['gpt']], [['gpt', 'show']]] as [string[]][])(
    'fastpatch %j --help: exit 0, prints Usage',
    async (command) => {
      const run = await runCli([...command, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Usage: fastpatch/);
      expect(run.stderr).toBe('');
      if (command.length > 0) expect(run.stdout).toContain(command.join(' '));
      expect(run.stdout).toMatch(/^Examples:$/m);
    },
  );

  it('fastpatch help apply: exit 0, prints Usage', async () => {
    const run = await runCli(['help', 'apply']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: fastpatch apply/);
  });
});

interface ErrorCase {
  name: string;
  args: () => string[];
  input?: () => Uint8Array;
  exit: number;
  /** The CODE in "fastpatch: CODE: message". */
  tag: string;
}

const ERRORS: ErrorCase[] = [
  { name: 'missing payload file', args: () => ['verify', at('nope.fpay'), '--pubkey', at('release.key.pub')], exit: 6, tag: 'IO' },
  { name: 'missing key file', args: () => ['verify', at('p.fpay'), '--pubkey', at('nope.pub')], exit: 6, tag: 'IO' },
  { name: 'wrong key', args: () => ['verify', at('p.fpay'), '--pubkey', at('stranger.key.pub')], exit: 3, tag: 'UNTRUSTED_KEY' },
  { name: 'changed manifest byte', args: () => ['apply', at('manifest-damaged.fpay'), '--target', at('never.img'), '--pubkey', at('release.key.pub')], exit: 3, tag: 'BAD_SIGNATURE' },
  { name: 'truncated payload', args: () => ['verify', at('truncated.fpay'), '--pubkey', at('release.key.pub')], exit: 5, tag: 'TRUNCATED_PAYLOAD' },
  { name: 'truncated on stdin', args: () => ['verify', '-', '--pubkey', at('release.key.pub')], input: () => payload.subarray(0, 100), exit: 5, tag: 'TRUNCATED_PAYLOAD' },
  { name: 'inspect of a payload cut inside its head', args: () => ['inspect', at('head-only.fpay')], exit: 5, tag: 'TRUNCATED_PAYLOAD' },
  { name: 'corrupt data', args: () => ['verify', at('data-damaged.fpay'), '--pubkey', at('release.key.pub')], exit: 4, tag: 'HASH_MISMATCH' },
  { name: 'bad magic', args: () => ['inspect', at('bad-magic.fpay')], exit: 4, tag: 'CORRUPT_PAYLOAD' },
  { name: 'trailing garbage', args: () => ['verify', at('trailing.fpay'), '--pubkey', at('release.key.pub')], exit: 4, tag: 'CORRUPT_PAYLOAD' },
  { name: 'target too small', args: () => ['apply', at('p.fpay'), '--target', at('too-small.img'), '--pubkey', at('release.key.pub')], exit: 7, tag: 'TARGET_TOO_SMALL' },
  { name: 'bad key file (--pubkey)', args: () => ['verify', at('p.fpay'), '--pubkey', at('garbage.key')], exit: 2, tag: 'BAD_KEY_FILE' },
  { name: 'bad key file (--key)', args: () => ['generate', '--target', at('image.img'), '--key', at('garbage.key'), '--version', '1', '-o', at('never.fpay')], exit: 2, tag: 'BAD_KEY_FILE' },
  { name: 'public key given to sign with', args: () => ['generate', '--target', at('image.img'), '--key', at('release.key.pub'), '--version', '1', '-o', at('never.fpay')], exit: 2, tag: 'BAD_KEY_FILE' },
  { name: '--level not a number', args: () => ['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1', '-o', at('never.fpay'), '--level', 'abc'], exit: 2, tag: 'USAGE' },
  { name: '--level out of range', args: () => ['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1', '-o', at('never.fpay'), '--level', '20'], exit: 2, tag: 'USAGE' },
  { name: '--level out of range for deflate', args: () => ['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1', '-o', at('never.fpay'), '--format-version', '1', '--level', '10'], exit: 2, tag: 'USAGE' },
  { name: '--format-version 3', args: () => ['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1', '-o', at('never.fpay'), '--format-version', '3'], exit: 2, tag: 'USAGE' },
  { name: 'release version with a space', args: () => ['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', 'v 1', '-o', at('never.fpay')], exit: 2, tag: 'USAGE' },
  { name: 'missing image', args: () => ['generate', '--target', at('nope.img'), '--key', at('release.key'), '--version', '1', '-o', at('never.fpay')], exit: 6, tag: 'IO' },
  { name: 'hash --size negative', args: () => ['hash', at('image.img'), '--size', '-5'], exit: 2, tag: 'USAGE' },
  // Usage errors found by the argument parser itself.
  { name: 'missing required option (apply without --target)', args: () => ['apply', at('p.fpay'), '--pubkey', at('release.key.pub')], exit: 2, tag: 'USAGE' },
  { name: 'missing required option (verify without --pubkey)', args: () => ['verify', at('p.fpay')], exit: 2, tag: 'USAGE' },
  { name: 'missing argument (inspect without a payload)', args: () => ['inspect'], exit: 2, tag: 'USAGE' },
  { name: 'unknown command', args: () => ['frobnicate'], exit: 2, tag: 'USAGE' },
  { name: 'unknown option', args: () => ['verify', at('p.fpay'), '--pubkey', at('release.key.pub'), '--frob'], exit: 2, tag: 'USAGE' },
];

describe('errors: one line on stderr, no stack trace, the documented exit code', () => {
  it.each(ERRORS)('$name: exit $exit ($tag)', async ({ args, input, exit, tag }) => {
    const run = await runCli(args(), input ? { input: input() } : {});
    expect(run.code, run.stderr).toBe(exit);
    expect(run.stdout).toBe('');
    expect(stackLines(run.stderr)).toEqual([]);
    expect(lines(run.stderr), 'exactly one line on stderr').toHaveLength(1);
    expect(run.stderr).toMatch(new RegExp(`^fastpatch: ${tag}: \\S.*\\n$`));
  });

  it('a refused apply does not create the target', async () => {
    await expect(fsp.stat(at('never.img'))).rejects.toThrow(/ENOENT/);
    await expect(fsp.stat(at('never.fpay'))).rejects.toThrow(/ENOENT/);
  });

  it.each([
    ['before the command', (a: string[]) => ['--verbose', ...a]],
    ['after the command', (a: string[]) => [...a, '--verbose']],
  ])('--verbose %s adds a stack trace after the same first line', async (_where, place) => {
    for (const c of ERRORS.filter((e) => ['missing payload file', 'wrong key', 'truncated payload', 'corrupt data', 'bad key file (--pubkey)'].includes(e.name))) {
      const plain = await runCli(c.args());
      const verbose = await runCli(place(c.args()));
      expect(verbose.code, c.name).toBe(c.exit);
      const [first, ...rest] = lines(verbose.stderr);
      expect(first, c.name).toBe(lines(plain.stderr)[0]);
      expect(rest[0], c.name).toMatch(/^FastPatchError: /);
      expect(stackLines(verbose.stderr).length, c.name).toBeGreaterThan(0);
    }
  });
});

describe('demo', () => {
  it('demo --json exits 0 and reports a byte-identical apply and a refused tampered payload', async () => {
    const run = ok(await runCli(['demo', '--json'], { timeoutMs: 120000 }));
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ identical: true, tamperedTargetUnchanged: true, tamperRefused: expect.stringMatching(/^BAD_SIGNATURE: /), deltaIdentical: true, wrongSourceRefused: expect.stringMatching(/^SOURCE_MISMATCH: /) });
    expect(result.deltaSize).toBeLessThan(result.payloadSize / 2);
    expect(result).toMatchObject({ cycleOk: true, boots: [4, 3, 4, 4] });
    expect(result.payloadSize).toBeGreaterThan(0);
    await expect(fsp.stat(result.dir), 'the demo folder is removed without --keep').rejects.toThrow(/ENOENT/);
  });
});
