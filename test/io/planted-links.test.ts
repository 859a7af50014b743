/**
 * A symbolic link another user plants in a shared folder (sticky, writable by all, as /tmp) on the
 * way to a path root writes must not be followed: a folder link in /tmp pointing at a folder of
 * root's would otherwise put root's payload, key, image or GPT change there. The kernel refuses
 * such links when fs.protected_symlinks is 1; FastPatch refuses them whatever the sysctl says.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plantedLink } from '../../dist/src/io/safe-files.js';
import { runCli } from '../helpers/cli.js';
import { removeDir, rootOrWarn, tempDir } from '../helpers/payloads.js';

const canRun = rootOrWarn('planted-link tests (they give a link to another user)');
const NOBODY = 65534;

describe.runIf(canRun)('a link planted in a shared folder is not followed', () => {
  let base: string;
  let shared: string;
  let prot: string;
  const at = (...p: string[]) => join(base, ...p);

  beforeAll(async () => {
    base = await tempDir('planted-');
    shared = at('shared');
    prot = at('prot');
    await fsp.mkdir(shared);
    await fsp.chmod(shared, 0o1777);
    await fsp.mkdir(prot, { mode: 0o700 });
    // Another user's link to root's folder, in the shared folder; and root's own link beside it.
    await fsp.symlink(prot, join(shared, 'd'));
    await fsp.lchown(join(shared, 'd'), NOBODY, NOBODY);
    await fsp.symlink(prot, join(shared, 'mine'));
    expect((await runCli(['keygen', '--out', at('k')])).code).toBe(0);
    await fsp.writeFile(at('img'), randomBytes(1 << 20));
    expect((await runCli(['generate', '--target', at('img'), '--key', at('k'), '--version', '1.0.0', '-o', at('p.fpay')])).code).toBe(0);
    expect((await runCli(['gpt', 'create', join(prot, 'disk.img'), '--size', '64M'])).code).toBe(0);
  });
  afterAll(() => removeDir(base));

  it('plantedLink names the link, its owner and the folder; root\'s own link is none', async () => {
    expect(await plantedLink(join(shared, 'd', 'x.fpay'))).toMatch(new RegExp(`/shared/d is a symbolic link that uid ${NOBODY} made in the shared folder .*/shared$`));
    expect(await plantedLink(join(shared, 'mine', 'x.fpay'))).toBeUndefined();
    // Through the link and back up: the kernel follows the link before `..`, and so does the check.
    expect(await plantedLink(`${shared}/d/../mine/x`)).toBeDefined();
  });

  it.each([
    ['generate -o', () => ['generate', '--target', at('img'), '--key', at('k'), '--version', '1.0.0', '-o', join(shared, 'd', 'x.fpay')]],
    ['keygen --out', () => ['keygen', '--out', join(shared, 'd', 'k2')]],
    ['apply --target', () => ['apply', at('p.fpay'), '--target', join(shared, 'd', 't.img'), '--pubkey', at('k.pub')]],
    ['gpt create', () => ['gpt', 'create', join(shared, 'd', 'new.img'), '--size', '64M']],
  ])('%s through it: usage error, nothing written in the folder it points to', async (_name, args) => {
    const before = (await fsp.readdir(prot)).sort();
    const run = await runCli(args());
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/symbolic link that uid 65534 made in the shared folder .*give the real path/);
    expect((await fsp.readdir(prot)).sort()).toEqual(before);
  });

  it('gpt set-next through it: refused, the disk unchanged', async () => {
    const disk = join(prot, 'disk.img');
    const before = await fsp.readFile(disk);
    const run = await runCli(['gpt', 'set-next', join(shared, 'd', 'disk.img'), '--slot', 'USR-B', '--running', 'USR-A']);
    expect(run.code, run.stderr).toBe(2);
    expect(Buffer.compare(await fsp.readFile(disk), before)).toBe(0);
  });

  it("root's own link in the shared folder is followed", async () => {
    const run = await runCli(['generate', '--target', at('img'), '--key', at('k'), '--version', '1.0.0', '-o', join(shared, 'mine', 'ok.fpay')]);
    expect(run.code, run.stderr).toBe(0);
    await fsp.stat(join(prot, 'ok.fpay'));
  });
});
