// What a new user meets on every command: --version, examples in every --help, marked required
// options, "did you mean", a positional argument where an option was meant, Ctrl-C, progress with
// a rate, JSON without float noise or BigInt, and escaped untrusted text.
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDuration, formatProgress, jsonReplacer, toJson } from '../../dist/src/commands/output.js';
import { CLI_PATH, lines, runCli, type CliRun } from '../helpers/cli.js';
import { BLOCK, MiB, blockListHashRef, firstDifference, mixedImage, randomBytes, removeDir, tempDir } from '../helpers/payloads.js';

let dir: string;
const at = (name: string) => join(dir, name);
let image: Uint8Array;
let payload: Buffer;
let keyId: string;

function ok(run: CliRun): CliRun {
  expect(run.stderr, 'stderr').toBe('');
  expect(run.code, run.stderr).toBe(0);
  return run;
}

/** Asserts a usage error: exit 2, one line `fastpatch: USAGE: ...` on stderr matching `pattern`, nothing on stdout. */
function usage(run: CliRun, pattern: RegExp): void {
  expect(run.code, run.stderr).toBe(2);
  expect(run.stdout).toBe('');
  expect(lines(run.stderr), run.stderr).toHaveLength(1);
  expect(run.stderr).toMatch(/^fastpatch: USAGE: /);
  expect(run.stderr).toMatch(pattern);
}

/** Any C0 control but the final newline, DEL or C1 control: what must never reach a terminal raw. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

beforeAll(async () => {
  dir = await tempDir('newcomer');
  image = mixedImage(2 * MiB + 3 * BLOCK, 11);
  image.set(randomBytes(MiB, 12), 256 * 1024); // incompressible: the payload is big enough to stop half-way
  await fsp.writeFile(at('image.img'), image);
  keyId = JSON.parse(ok(await runCli(['keygen', '--out', at('release.key'), '--json'])).stdout).keyId;
  ok(await runCli(['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', at('p.fpay')]));
  payload = await fsp.readFile(at('p.fpay'));
});
afterAll(async () => {
  await removeDir(dir);
});

describe('--version', () => {
  const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

  it.each([['--version'], ['-V'], ['--verbose', '--version']])('fastpatch %s prints the package version', async (...args) => {
    const run = ok(await runCli(args));
    expect(run.stdout).toBe(`${version}\n`);
  });

  it('works from another working directory (package.json is found next to the CLI, not in the cwd)', async () => {
    expect(ok(await runCli(['--version'], { cwd: dir })).stdout).toBe(`${version}\n`);
  });

  it("generate --version still names the payload's release", async () => {
    const run = ok(await runCli(['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', '2.0.0', '-o', at('v2.fpay'), '--json']));
    expect(JSON.parse(run.stdout).version).toBe('2.0.0');
  });
});

describe('--help of every command', () => {
  /** Command names listed under "Commands:" in a help text, without `help`. */
  function subcommands(help: string): string[] {
    const section = help.split(/^Commands:$/m)[1]?.split(/^\S/m)[0] ?? '';
    return [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((name) => name !== 'help');
  }

  it('every command and subcommand, found from the help of its parent, has an example, and every example names only options its command has', async () => {
    const helps = new Map<string, string>();
    const walk = async (path: string[]): Promise<void> => {
      const run = ok(await runCli([...path, '--help']));
      const name = ['fastpatch', ...path].join(' ');
      helps.set(name, run.stdout);
      expect(run.stdout, `${name} --help`).toMatch(/^Examples:$/m);
      expect(run.stdout.split(/^Examples:$/m)[1], `${name} --help`).toMatch(/^ {2}fastpatch /m);
      for (const child of subcommands(run.stdout)) await walk([...path, child]);
    };
    await walk([]);
    // The walk found the whole tree (a broken help parser would find nothing and pass).
    const seen = [...helps.keys()];
    expect(seen).toEqual(expect.arrayContaining(['fastpatch', 'fastpatch apply', 'fastpatch update', 'fastpatch gpt', 'fastpatch gpt show', 'fastpatch gpt boot-next']));
    expect(seen.length).toBeGreaterThanOrEqual(16);
    // An example is a command line a newcomer pastes: its command exists and has each option it uses.
    for (const [name, help] of helps) {
      const examples = help.split(/^Examples:$/m)[1]!.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('fastpatch '));
      for (const example of examples) {
        const words = example.replace(/#.*/, '').trim().split(/\s+/);
        let command = 'fastpatch';
        for (const word of words.slice(1)) if (helps.has(`${command} ${word}`)) command = `${command} ${word}`;
        for (const flag of words.filter((w) => w.startsWith('-')).map((w) => w.split('=')[0]!)) {
          expect(helps.get(command)!, `${example} (in the help of ${name}): ${command} has no ${flag}`).toMatch(new RegExp(`(^|[ ,])${flag}\\b`, 'm'));
        }
      }
    }
  });

  it.each([
    [['apply'], ['--target', '--pubkey'], ['--source', '--resume', '--json']],
    [['verify'], ['--pubkey'], ['--source', '--json']],
    [['generate'], ['--target', '--key', '--version', '--out'], ['--source', '--level', '--json']],
    [['keygen'], ['--out'], ['--force']],
  ])('%j --help marks %j as required and not %j', async (command, required, optional) => {
    const help = ok(await runCli([...command, '--help'])).stdout;
    // An option's description may wrap: take its lines up to the next option.
    const entry = (flag: string) => help.split(/\n(?= {2}-)/).find((e) => new RegExp(`^ {2}(-\\w, )?${flag}\\b`).test(e.trimEnd().replace(/^\n/, ''))) ?? '';
    for (const flag of required) expect(entry(flag), `${flag} in\n${help}`).toContain('(required)');
    for (const flag of optional) {
      expect(entry(flag), `${flag} in\n${help}`).not.toBe('');
      expect(entry(flag), flag).not.toContain('(required)');
    }
  });

  it('fastpatch --help lists the commands, --version and an example block', async () => {
    const help = ok(await runCli(['--help'])).stdout;
    for (const name of ['keygen', 'generate', 'inspect', 'verify', 'apply', 'update', 'gpt']) expect(subcommands(help)).toContain(name);
    expect(help).toMatch(/^ {2}-V, --version/m);
    expect(help).toMatch(/^ {2}fastpatch keygen --out /m);
  });
});

describe('"did you mean", on the one error line, exit 2', () => {
  it.each([
    ['a command', () => ['aply', at('p.fpay')], "unknown command 'aply' (did you mean apply?)"],
    ['a gpt subcommand', () => ['gpt', 'sho', at('disk.img')], "unknown command 'sho' (did you mean show?)"],
    ['a required option', () => ['apply', at('p.fpay'), '--taget', at('out.img'), '--pubkey', at('release.key.pub')], "unknown option '--taget' (did you mean --target?)"],
    ['a required option, the other one missing too', () => ['apply', at('p.fpay'), '--taget', at('out.img')], "unknown option '--taget' (did you mean --target?)"],
    ['an optional flag', () => ['apply', at('p.fpay'), '--target', at('out.img'), '--pubkey', at('release.key.pub'), '--resum'], "unknown option '--resum' (did you mean --resume?)"],
    ['an option of a gpt subcommand', () => ['gpt', 'show', at('disk.img'), '--jsn'], "unknown option '--jsn' (did you mean --json?)"],
    ['an option of verify', () => ['verify', at('p.fpay'), '--pubky', at('release.key.pub')], "unknown option '--pubky' (did you mean --pubkey?)"],
  ])('%s', async (_name, args, message) => {
    const run = await runCli(args());
    usage(run, new RegExp(`^fastpatch: USAGE: ${message.replace(/[()?.-]/g, '\\$&')} \\(see --help\\)\\n$`));
  });

  it('nothing is written by a refused command', async () => {
    await expect(fsp.stat(at('out.img'))).rejects.toThrow(/ENOENT/);
  });
});

describe('a positional argument where an option was meant', () => {
  it.each([
    ['apply IMG TARGET', () => ['apply', at('p.fpay'), at('pos.img'), '--pubkey', at('release.key.pub')], () => `did you mean --target ${at('pos.img')}?`],
    ['verify IMG KEY', () => ['verify', at('p.fpay'), at('release.key.pub')], () => `did you mean --pubkey ${at('release.key.pub')}?`],
    ['update IMG DISK', () => ['update', at('p.fpay'), at('disk.img'), '--pubkey', at('release.key.pub')], () => `did you mean --disk ${at('disk.img')}?`],
    ['gpt set-next DISK SLOT', () => ['gpt', 'set-next', at('disk.img'), 'USR-B'], () => 'did you mean --slot USR-B?'],
    ['apply IMG TARGET with options in between', () => ['apply', '--pubkey', at('release.key.pub'), at('p.fpay'), '--json', at('pos.img')], () => `did you mean --target ${at('pos.img')}?`],
  ])('%s: too many arguments, and which option', async (_name, args, hint) => {
    const run = await runCli(args());
    usage(run, /too many arguments for '/);
    expect(run.stderr).toContain(hint());
    await expect(fsp.stat(at('pos.img'))).rejects.toThrow(/ENOENT/);
  });

  it('with every required option given, still too many arguments (and no guess)', async () => {
    const run = await runCli(['apply', at('p.fpay'), at('pos.img'), '--target', at('pos2.img'), '--pubkey', at('release.key.pub')]);
    usage(run, /too many arguments for 'apply'/);
    expect(run.stderr).not.toContain('did you mean');
  });

  it("'-' (standard input) and option values are not counted as extra arguments", async () => {
    const run = ok(await runCli(['apply', '-', '--target', at('stdin.img'), '--pubkey', at('release.key.pub'), '--json'], { input: payload }));
    expect(JSON.parse(run.stdout).targetHash).toBe(blockListHashRef(image));
  });
});

describe('usage errors exit 2', () => {
  it.each([
    ['--level abc', ['generate', '--target', 'x', '--key', 'k', '--version', '1', '-o', 'y', '--level', 'abc']],
    ['a missing required option', ['apply', 'p.fpay', '--pubkey', 'k.pub']],
    ['an unknown command', ['frobnicate']],
    ['hash --size with a bad suffix', ['hash', 'x.img', '--size', '12Q']],
    ['a subcommand missing', ['gpt', 'show']],
  ])('%s', async (_name, args) => {
    const run = await runCli(args);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/^fastpatch: USAGE: /);
  });
});

/** Spawns an apply or verify reading its payload from a pipe we hold open, so it cannot finish before the signal. */
async function interruptedRun(args: string[], signal: 'SIGINT' | 'SIGTERM', started: () => Promise<boolean>): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {});
  const exited = new Promise<CliRun>((resolve) =>
    child.on('close', (code, sig) => resolve({ code, signal: sig, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })),
  );
  // Half the payload: the head is verified and writing has begun; the rest never comes. The write
  // completes only once the child has read all but a pipe buffer of it, so by then the command
  // runs (and its signal handlers are installed), however slow the machine.
  await new Promise((resolve) => child.stdin.write(payload.subarray(0, payload.length >> 1), resolve));
  for (let i = 0; i < 600 && !(await started()) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  expect(child.exitCode, Buffer.concat(err).toString()).toBeNull();
  child.kill(signal);
  const run = await exited;
  child.stdin.destroy();
  return run;
}

const exists = (path: string) => () => fsp.stat(path).then(() => true, () => false);

/** The exit status a shell reports: the code, or 128 + the number of the signal that ended it. */
function shellStatus(code: number | null, signal: NodeJS.Signals | null): number | null {
  return code ?? (signal ? 128 + osConstants.signals[signal] : null);
}

describe('Ctrl-C and SIGTERM', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('apply stopped by %s: one line suggesting --resume, exit %i; --resume then finishes it', async (signal, code) => {
    const target = at(`interrupted-${signal}.img`);
    const args = ['apply', '-', '--target', target, '--pubkey', at('release.key.pub')];
    const run = await interruptedRun(args, signal, exists(target));
    expect(shellStatus(run.code, run.signal), run.stderr).toBe(code);
    expect(run.stdout).toBe('');
    expect(lines(run.stderr), run.stderr).toHaveLength(1);
    expect(run.stderr).toMatch(new RegExp(`^fastpatch: INTERRUPTED: apply stopped by ${signal}; .*--resume`));
    // The suggestion works: the same command with --resume finishes the image.
    const resumed = ok(await runCli([...args, '--resume', '--json'], { input: payload }));
    expect(JSON.parse(resumed.stdout).targetHash).toBe(blockListHashRef(image));
    expect(firstDifference(await fsp.readFile(target), image)).toBe(-1);
  });

  it('update stopped by SIGTERM: one line suggesting --resume, exit 143; --resume then finishes it', async () => {
    const disk = at('disk-interrupted.img');
    ok(await runCli(['gpt', 'create', disk, '--size', '64M', '--json']));
    const args = ['update', '-', '--disk', disk, '--pubkey', at('release.key.pub'), '--allow-downgrade'];
    const run = await interruptedRun(args, 'SIGTERM', async () => true);
    expect(shellStatus(run.code, run.signal), run.stderr).toBe(143);
    expect(lines(run.stderr), run.stderr).toHaveLength(1);
    expect(run.stderr).toMatch(/^fastpatch: INTERRUPTED: update stopped by SIGTERM; .*--resume/);
    const resumed = ok(await runCli([...args, '--resume', '--json'], { input: payload }));
    expect(JSON.parse(resumed.stdout).apply.targetHash).toBe(blockListHashRef(image));
  });

  it('generate stopped by SIGINT: one line, exit 130, and no temporary file left beside -o', async () => {
    // The signal is sent once generate's temporary file appears; an image too small to catch it
    // running is doubled and the run retried (the assertion is on the outcome, not on timing).
    for (let size = 64 * MiB; ; size *= 2) {
      const folder = at(`gen-${size}`);
      await fsp.mkdir(folder);
      await fsp.writeFile(join(folder, 'big.img'), randomBytes(size, size));
      const child = spawn(process.execPath, [CLI_PATH, 'generate', '--target', join(folder, 'big.img'), '--key', at('release.key'), '--version', '3.0.0', '-o', join(folder, 'out.fpay')], { stdio: ['ignore', 'pipe', 'pipe'] });
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code, sig) => resolve(shellStatus(code, sig))));
      const temps = async () => (await fsp.readdir(folder)).filter((name) => name.endsWith('.tmp'));
      while (child.exitCode === null && (await temps()).length === 0) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGINT');
      const code = await exited;
      if (code === 0 && size < 512 * MiB) continue; // finished before the signal: try a bigger image
      const stderr = Buffer.concat(err).toString();
      expect(code, stderr).toBe(130);
      expect(stderr).toMatch(/^fastpatch: INTERRUPTED: generate stopped by SIGINT\n$/);
      // No temporary file is left. (The output itself appears only by an atomic rename: if the
      // signal came after it, it is whole.)
      expect((await fsp.readdir(folder)).filter((name) => name !== 'big.img' && name !== 'out.fpay')).toEqual([]);
      await fsp.rm(folder, { recursive: true });
      return;
    }
  });

  it('verify of a FIFO nobody writes to (blocked in open) still ends on SIGTERM, with its one line', async () => {
    const fifo = at('nobody-writes.fifo');
    spawnSync('mkfifo', [fifo]);
    const child = spawn(process.execPath, [CLI_PATH, 'verify', fifo, '--pubkey', at('release.key.pub')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code, sig) => resolve(shellStatus(code, sig))));
    // Signalled once a thread of it waits in the FIFO's open (the kernel's wait_for_partner): the
    // command runs and its handler is installed. Before the fix the process printed its line and
    // then hung in exit, waiting for the blocked thread.
    const blockedInOpen = async () => {
      const tasks = await fsp.readdir(`/proc/${child.pid}/task`).catch(() => [] as string[]);
      const wchans = await Promise.all(tasks.map((t) => fsp.readFile(`/proc/${child.pid}/task/${t}/wchan`, 'utf8').catch(() => '')));
      return wchans.includes('wait_for_partner');
    };
    for (let i = 0; i < 1200 && child.exitCode === null && !(await blockedInOpen()); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(143);
    expect(stderr).toMatch(/^fastpatch: INTERRUPTED: verify stopped by SIGTERM\n$/);
  });

  it('verify stopped by SIGINT: one line, exit 130, no --resume (it writes nothing)', async () => {
    const run = await interruptedRun(['verify', '-', '--pubkey', at('release.key.pub')], 'SIGINT', async () => true);
    expect(shellStatus(run.code, run.signal), run.stderr).toBe(130);
    expect(lines(run.stderr), run.stderr).toHaveLength(1);
    expect(run.stderr).toMatch(/^fastpatch: INTERRUPTED: verify stopped by SIGINT\n$/);
  });
});

describe('progress: rate and time left', () => {
  it.each([
    // done, total, elapsed seconds -> expected
    [0, 100 * MiB, 0, 'apply to x: 0.0% (0 B of 100.0 MiB)'],
    [50 * MiB, 100 * MiB, 0.5, 'apply to x: 50.0% (50.0 MiB of 100.0 MiB)'],
    [50e6, 100e6, 2, 'apply to x: 50.0% (47.7 MiB of 95.4 MiB), 25 MB/s, 2s left'],
    [10e6, 1000e6, 1, 'apply to x: 1.0% (9.5 MiB of 953.7 MiB), 10 MB/s, 1m39s left'],
    [1e6, 10000e6, 1, 'apply to x: 0.0% (976.6 KiB of 9.3 GiB), 1 MB/s, 2h46m left'],
    [100e6, 100e6, 4, 'apply to x: 100.0% (95.4 MiB of 95.4 MiB), 25 MB/s'],
    [0, 0, 3, 'apply to x: 100.0% (0 B of 0 B)'],
  ])('formatProgress(%d, %d, %d s)', (done, total, elapsed, expected) => {
    expect(formatProgress('apply to x', done, total, elapsed)).toBe(expected);
  });

  it('formatDuration', () => {
    expect([0, 59.4, 60, 61, 3599, 3600, 7260].map(formatDuration)).toEqual(['0s', '59s', '1m00s', '1m01s', '59m59s', '1h00m', '2h01m']);
  });

  it('the label (a path) is escaped', () => {
    expect(formatProgress('apply to a\x1b[2Jb\n', 1, 2, 0)).not.toMatch(RAW_CONTROL);
  });

  it('on a terminal (script(1) gives the CLI a pseudo-terminal), apply draws progress and clears it', async (ctx) => {
    if (spawnSync('script', ['--version']).status !== 0) {
      console.warn('skipped: script(1) from util-linux is not installed');
      return ctx.skip();
    }
    const cmd = [process.execPath, CLI_PATH, 'apply', at('p.fpay'), '--target', at('tty.img'), '--pubkey', at('release.key.pub')].map((a) => `'${a}'`).join(' ');
    const run = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60000 });
    expect(run.status, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/\rapply to .*tty\.img: \d+\.\d% \(/);
    expect(run.stdout).toMatch(/\r\x1b\[Kapplied to /);
  });
});

describe('--json', () => {
  it('rounds durations to milliseconds and turns BigInts into numbers or, beyond 2^53, strings', () => {
    const value = { seconds: 1.5197603819999999, apply: { seconds: 0.1 + 0.2, waitSeconds: 2 / 3 }, other: 0.1 + 0.2, a: 5n, b: 2n ** 64n, c: [-3n] };
    expect(JSON.parse(toJson(value))).toEqual({ seconds: 1.52, apply: { seconds: 0.3, waitSeconds: 0.667 }, other: 0.1 + 0.2, a: 5, b: '18446744073709551616', c: [-3] });
    expect(jsonReplacer('seconds', 1.0006)).toBe(1.001);
  });

  it('escapes the control characters JSON.stringify leaves raw, and parses back to the same text', () => {
    const text = 'a\u009bb\u202ec\u007f';
    const json = toJson({ label: text });
    expect(json).not.toMatch(/[\u007f-\u009f\u202e]/);
    expect(JSON.parse(json).label).toBe(text);
  });

  it('update --json (its result once held BigInts): parses, seconds has at most 3 decimals', async () => {
    ok(await runCli(['gpt', 'create', at('disk.img'), '--size', '64M', '--json']));
    const run = ok(await runCli(['update', at('p.fpay'), '--disk', at('disk.img'), '--pubkey', at('release.key.pub'), '--allow-downgrade', '--json']));
    const result = JSON.parse(run.stdout);
    expect(result.apply.targetHash).toBe(blockListHashRef(image));
    expect(run.stdout).toMatch(/"seconds": \d+(\.\d{1,3})?,?\n/);
  });

  it('verify --json: seconds has at most 3 decimals', async () => {
    const run = ok(await runCli(['verify', at('p.fpay'), '--pubkey', at('release.key.pub'), '--json']));
    expect(run.stdout).toMatch(/"seconds": \d+(\.\d{1,3})?,?\n/);
  });
});

describe('untrusted text is escaped', () => {
  const hostile = 'evil\x1b]0;owned\x07\x1b[2J\nfastpatch: OK\r\u202e';

  it('a target file name with ESC, BEL, CR and a newline: the apply summary on stdout has no raw control', async () => {
    const target = at(`t-${hostile}.img`);
    const run = ok(await runCli(['apply', at('p.fpay'), '--target', target, '--pubkey', at('release.key.pub')]));
    expect(run.stdout).not.toMatch(RAW_CONTROL);
    expect(run.stdout).not.toContain('\u202e');
    expect(lines(run.stdout)).toHaveLength(2);
    expect(run.stdout).toContain('\\x1b]0;owned\\x07');
  });

  it('hash of a file with a hostile name: no raw control on stdout', async () => {
    const path = at(`h-${hostile}.img`);
    await fsp.writeFile(path, image.subarray(0, 3 * BLOCK));
    const run = ok(await runCli(['hash', path]));
    expect(run.stdout).not.toMatch(RAW_CONTROL);
    expect(lines(run.stdout)).toHaveLength(1);
  });

  it.each([
    ['a missing payload with a hostile name (IO)', () => ['inspect', at(`missing-${hostile}.fpay`)], /^fastpatch: IO: /],
    ['a hostile release version (USAGE: the manifest refuses control characters)', () => ['generate', '--target', at('image.img'), '--key', at('release.key'), '--version', `1.0${hostile}`, '-o', at('never.fpay')], /^fastpatch: USAGE: /],
    ['a hostile unknown option (commander)', () => ['inspect', at('p.fpay'), `--${hostile}`], /^fastpatch: USAGE: unknown option/],
    ['a hostile unknown command (commander)', () => [hostile], /^fastpatch: USAGE: unknown command/],
  ])('%s: one line on stderr, no raw control', async (_name, args, pattern) => {
    const run = await runCli(args());
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(pattern);
    expect(lines(run.stderr), run.stderr).toHaveLength(1);
    expect(run.stderr).not.toMatch(RAW_CONTROL);
    expect(run.stderr).toContain('\\x1b');
  });
});

describe('inspect and hash say what they show', () => {
  it('inspect without --pubkey says the signer is NOT verified, and how to check', async () => {
    const run = ok(await runCli(['inspect', at('p.fpay')]));
    expect(run.stdout).toContain(`signed by: key ${keyId} (NOT verified: give --pubkey`);
  });

  it('inspect with --pubkey says it verified', async () => {
    const run = ok(await runCli(['inspect', at('p.fpay'), '--pubkey', at('release.key.pub')]));
    expect(run.stdout).toMatch(new RegExp(`^signed by: key ${keyId} \\(verified: `, 'm'));
    expect(run.stdout).not.toContain('NOT verified');
  });

  it('hash is labelled as the block-list hash, so it cannot pass for sha256sum output', async () => {
    const run = ok(await runCli(['hash', at('image.img')]));
    expect(run.stdout).toMatch(new RegExp(`^blocklist-sha256:${blockListHashRef(image)}  \\S+image\\.img \\(${image.length} bytes; .*not the file's SHA-256\\)\\n$`));
  });

  it.each([
    ['64K', 64 * 1024],
    ['1M', MiB],
    ['1m', MiB],
    ['12345', 12345],
  ])('hash --size %s takes the same K/M/G suffixes as gpt create --size', async (size, bytes) => {
    const out = JSON.parse(ok(await runCli(['hash', at('image.img'), '--size', size, '--json'])).stdout);
    expect(out).toEqual({ image: at('image.img'), size: bytes, hash: blockListHashRef(image.subarray(0, bytes)) });
  });
});
