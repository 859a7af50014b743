// Delta generation restarts itself with glibc's trim threshold set (src/commands/allocator.ts):
// the threshold is read when a process starts, and without it the diff workers' freed zstd and
// brotli memory stays with the process. Observed through an --import hook that runs in every
// process the command becomes, so the test sees the real restart (process.execve), not a model.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allocatorRestart, TRIM_THRESHOLD, TRIM_THRESHOLD_ENV } from '../../dist/src/commands/allocator.js';
import { CLI_PATH } from '../helpers/cli.js';

describe('allocator restart', () => {
  it('only generate --source restarts, only on Linux, and an operator-set threshold wins', () => {
    const env = { PATH: '/usr/bin' };
    expect(allocatorRestart(['generate', '--source', 'a', '--target', 'b'], env, 'linux')?.[TRIM_THRESHOLD_ENV]).toBe(TRIM_THRESHOLD);
    expect(allocatorRestart(['--verbose', 'generate', '--source=a'], env, 'linux')?.[TRIM_THRESHOLD_ENV]).toBe(TRIM_THRESHOLD);
    expect(allocatorRestart(['generate', '--target', 'b'], env, 'linux')).toBeUndefined();
    expect(allocatorRestart(['apply', 'p', '--source', 'a'], env, 'linux')).toBeUndefined();
    expect(allocatorRestart(['generate', '--source', 'a'], env, 'darwin')).toBeUndefined();
    expect(allocatorRestart(['generate', '--source', 'a'], { ...env, [TRIM_THRESHOLD_ENV]: '0' }, 'linux')).toBeUndefined();
  });

  it('the CLI restarts once with the threshold for a delta, keeping its Node options and arguments', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fastpatch-allocator-'));
    try {
      const log = join(dir, 'starts.log');
      const hook = join(dir, 'hook.mjs');
      // One line per process start: the threshold it was started with and its arguments.
      writeFileSync(hook, `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(log)}, JSON.stringify([process.env.${TRIM_THRESHOLD_ENV} ?? null, process.argv.slice(2)]) + '\\n');\n`);
      const env = { ...process.env };
      delete env[TRIM_THRESHOLD_ENV];
      const starts = (args: string[]) => {
        rmSync(log, { force: true });
        // Missing images: the command fails after the restart, with its usual one line.
        const run = spawnSync(process.execPath, ['--import', hook, CLI_PATH, ...args], { encoding: 'utf8', env });
        return { run, lines: readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as [string | null, string[]]) };
      };
      const args = ['generate', '--source', join(dir, 'missing-a.img'), '--target', join(dir, 'missing-b.img'), '--key', join(dir, 'k'), '--version', '2', '-o', join(dir, 'out.fpay')];
      const delta = starts(args);
      expect(delta.lines).toEqual([[null, args], [TRIM_THRESHOLD, args]]);
      expect(delta.run.status).not.toBe(0);
      expect(delta.run.stderr).toMatch(/^fastpatch: /);
      const full = starts(args.filter((_, i) => i !== 1 && i !== 2));
      expect(full.lines).toHaveLength(1);
      // Where execve fails (a sandbox denies it), the command goes on in its first process:
      // the usual one-line error for the missing images, no stack trace.
      writeFileSync(hook, `${readFileSync(hook, 'utf8')}process.execve = () => { throw Object.assign(new Error('EACCES'), { code: 'EACCES' }); };\n`);
      const denied = starts(args);
      expect(denied.lines).toEqual([[null, args]]);
      expect(denied.run.stderr).toMatch(/^fastpatch: [A-Z_]+: /);
      expect(denied.run.stderr).not.toMatch(/\n\s+at /);
      expect(denied.run.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
