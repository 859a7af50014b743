// The runtime: the tests themselves run on Node 24 or newer (npm puts node_modules/.bin, where the
// `node` package installed it, first on the PATH), and the CLI started by an older Node.js says so
// in one line instead of failing on a missing zstd export.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI_PATH } from '../helpers/cli.js';

const major = (version: string) => Number(version.replace(/^v/, '').split('.')[0]);

/** An installed Node.js older than 24 (this machine's own, when the project brought its 24), if any. */
function olderNode(): string | undefined {
  for (const path of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    if (!existsSync(path)) continue;
    const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
    if (major(version) < 24) return path;
  }
  return undefined;
}

describe('runtime', () => {
  it('tests run on Node.js 24 or newer', () => {
    expect(major(process.versions.node)).toBeGreaterThanOrEqual(24);
  });

  it('node_modules/.bin/node is the Node.js 24 that npm install brought', () => {
    const version = execFileSync('node_modules/.bin/node', ['--version'], { encoding: 'utf8' }).trim();
    expect(major(version)).toBe(24);
  });

  const old = olderNode();
  it.skipIf(!old)('an older Node.js gets one line and exit 2, not a SyntaxError', () => {
    const run = spawnSync(old!, [CLI_PATH, 'generate', '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^fastpatch: USAGE: needs Node\.js 24 or newer, this is 2\d\.[\d.]+ \(.*\); run it as `npx fastpatch/);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
  if (!old) console.log('runtime: no Node.js older than 24 installed here, so the refusal of one is not exercised');
});
