/**
 * README.md's library example, run as a user would: the ```js block after
 * `<!-- library-example -->` saved as example.mjs in an empty folder whose node_modules holds
 * this package, then `node example.mjs`. It once was TypeScript and failed pasted into a .mjs.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

it("README's library example runs as plain JavaScript (.mjs) and does what it says", async () => {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('<!-- library-example -->');
  expect(start).toBeGreaterThan(0);
  const code = /```js\n([\s\S]*?)```/.exec(readme.slice(start))![1]!;
  const dir = await mkdtemp(join(tmpdir(), 'fastpatch-example-'));
  try {
    await mkdir(join(dir, 'node_modules'));
    await symlink(root, join(dir, 'node_modules', 'fastpatch'));
    await writeFile(join(dir, 'example.mjs'), code);
    const { stdout } = await promisify(execFile)(process.execPath, ['example.mjs'], { cwd: dir });
    expect(stdout).toMatch(/^applied release 1\.0\.0, image hash [0-9a-f]{64}$/m);
    expect(stdout).toMatch(/^USR-B holds 2\.0\.0; next boot: \{"bootable":true,"index":4,"label":"USR-B"\}$/m);
    expect(stdout).toMatch(/^refused: DOWNGRADE \(exit 10\)$/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 180_000);
