/**
 * README.md's release walk, run as written: the fenced block after `<!-- release-walk -->` is read
 * from the README and each line carried out in order by bash, in a folder holding two sample
 * releases as the demo keeps them. Every line must succeed, except those whose comment says
 * `refused` and names the exit code; the line ending in `&` runs in the background (the update
 * service) until `kill %1`, which must stop it cleanly.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sampleImage } from '../../dist/src/index.js';
import { CLI_PATH } from '../helpers/cli.js';
import { MiB, removeDir, tempDir } from '../helpers/payloads.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

function walkLines(): { command: string; comment: string }[] {
  const start = README.indexOf('<!-- release-walk -->');
  if (start < 0) throw new Error('README.md has no <!-- release-walk --> block');
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(start))![1]!;
  return block.split('\n').flatMap((raw) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('alias ')) return [];
    const hash = line.indexOf(' # ');
    return [{ command: (hash < 0 ? line : line.slice(0, hash)).trim(), comment: hash < 0 ? '' : line.slice(hash + 3) }];
  });
}

/** The line for bash, `fastpatch` being this checkout's CLI on this Node. */
const shellLine = (command: string) => command.replace(/^fastpatch /, `'${process.execPath}' '${CLI_PATH}' `);

function waitFor(child: ChildProcess, text: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (text.test(seen)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`background line exited with ${code} before it was ready: ${seen}`)));
  });
}

describe("README's release walk", () => {
  it('runs as written: repository, promotion, serve, rollout policy, a device that installs and reports', async () => {
    const dir = await tempDir('release-walk');
    let background: ChildProcess | undefined;
    try {
      writeFileSync(join(dir, 'v1.img'), sampleImage({ size: 16 * MiB, variant: 1 }));
      writeFileSync(join(dir, 'v2.img'), sampleImage({ size: 16 * MiB, variant: 2 }));
      const steps = walkLines();
      expect(steps.length).toBeGreaterThan(15);
      const outputs: string[] = [];
      for (const { command, comment } of steps) {
        if (command.endsWith(' &')) {
          background = spawn('bash', ['-c', `exec ${shellLine(command.slice(0, -2))}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
          await waitFor(background, /serving /);
          continue;
        }
        if (command === 'kill %1') {
          const exited = new Promise<number | null>((resolve) => background!.once('exit', (code) => resolve(code)));
          background!.kill('SIGTERM');
          expect(await exited, 'serve stops cleanly on SIGTERM').toBe(0);
          background = undefined;
          continue;
        }
        const run = spawnSync('bash', ['-c', shellLine(command)], { cwd: dir, encoding: 'utf8' });
        const refused = /refused.*\(exit (\d+)\)/.exec(comment);
        if (refused) {
          expect([run.status, run.stderr.trim().split('\n').length], `${command}\n${run.stderr}`).toEqual([Number(refused[1]), 1]);
        } else {
          expect(run.status, `${command}\n${run.stdout}\n${run.stderr}`).toBe(0);
        }
        outputs.push(run.stdout);
      }
      const all = outputs.join('\n');
      expect(all).toMatch(/installed 2\.0\.0 \(delta, .* payload\) into USR-B over 1\.0\.0 \(slot USR-A\)/);
      expect(all).toMatch(/reported: the update from 1\.0\.0 is running/);
      expect(all).toMatch(/states: complete 1/);
    } finally {
      background?.kill('SIGKILL');
      await removeDir(dir);
    }
  });
});
