/**
 * README.md's walk, run as written: the fenced block after `<!-- walkthrough -->` is read from the
 * README and each line carried out in order, so the README cannot drift from what the CLI does.
 * Every `fastpatch` line must succeed, except those whose comment says `refused` and names the
 * exit code, which must fail with that code and one line saying what to do next; the `^C` line
 * is interrupted with SIGINT and must either finish or say to run again with --resume.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, runCli, stackLines, type CliRun } from '../helpers/cli.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

/** The walk's lines: no blanks or whole-line comments, each split into command and comment. */
function walkLines(): { command: string; comment: string }[] {
  const start = README.indexOf('<!-- walkthrough -->');
  if (start < 0) throw new Error('README.md has no <!-- walkthrough --> block');
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(start))![1]!;
  return block.split('\n').flatMap((raw) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return [];
    const hash = line.indexOf(' # ');
    return [{ command: (hash < 0 ? line : line.slice(0, hash)).trim(), comment: hash < 0 ? '' : line.slice(hash + 3) }];
  });
}

function hasLosetup(): boolean {
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

/** Runs the CLI and sends SIGINT once it has had time to start writing; resolves as it exits. */
function runInterrupted(args: string[], cwd: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGINT'), 300);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe("README's walk from a key to a rolled-back update", () => {
  it('runs as written, every refusal saying what to do next', async () => {
    const steps = walkLines();
    expect(steps.length).toBeGreaterThan(20);
    const loopOk = hasLosetup();
    if (!loopOk) console.log('walkthrough: not root or no losetup: the loop device lines are skipped');
    let cwd = process.cwd();
    let demoDir: string | undefined;
    let loop: string | undefined;
    try {
      for (const { command, comment } of steps) {
        if (command.startsWith('alias fastpatch=')) continue; // runCli is that alias
        if (command.startsWith('cd ')) {
          expect(demoDir, 'cd comes after demo --keep').toBeDefined();
          cwd = demoDir!;
          continue;
        }
        const loopSetup = /^(\w+)=\$\(losetup -f --show (\S+)\)$/.exec(command);
        if (loopSetup) {
          if (loopOk) loop = execFileSync('losetup', ['-f', '--show', loopSetup[2]!], { cwd, encoding: 'utf8' }).trim();
          continue;
        }
        if (command.startsWith('losetup -d')) {
          if (loop) execFileSync('losetup', ['-d', loop]);
          loop = undefined;
          continue;
        }
        expect(command.startsWith('fastpatch '), `a step the test does not know: ${command}`).toBe(true);
        if (command.includes('$loop') && !loopOk) continue;
        const args = command.replace(/\$loop\b/g, loop ?? '').split(/\s+/).slice(1);
        const what = `fastpatch ${args.join(' ')}`;
        if (comment.includes('^C')) {
          const run = await runInterrupted(args, cwd);
          // Either it finished before the signal, or it stopped and said how to finish.
          if (run.code !== 0) {
            // Ended by the signal itself (the shell reports 130) or, had exit run, by exit code 130.
            expect(run.signal === 'SIGINT' || run.code === 130, `${what}: ${run.code} ${run.signal} ${run.stderr}`).toBe(true);
            expect(run.stderr).toMatch(/--resume/);
          }
          continue;
        }
        const run = await runCli(args, { cwd, timeoutMs: 120_000 });
        expect(stackLines(run.stderr), what).toEqual([]);
        expect(run.stderr, what).not.toMatch(/INTERNAL/);
        const refused = /refused.*\(exit (\d+)\)/.exec(comment);
        if (refused) {
          expect(run.code, `${what} should be refused: ${run.stdout}${run.stderr}`).toBe(Number(refused[1]));
          const errorLines = run.stderr.trim().split('\n');
          expect(errorLines, what).toHaveLength(1);
          // What to do next: an option to use or a command to run.
          expect(errorLines[0], what).toMatch(/--[a-z]|`fastpatch /);
        } else {
          expect(run.code, `${what}: ${run.stderr}`).toBe(0);
        }
        if (args[0] === 'demo') demoDir = /^kept (\S+)$/m.exec(run.stdout)?.[1];
      }
      expect(demoDir).toBeDefined();
    } finally {
      if (loop) execFileSync('losetup', ['-d', loop]);
      if (demoDir) await rm(demoDir, { recursive: true, force: true });
    }
  }, 600_000);
});
