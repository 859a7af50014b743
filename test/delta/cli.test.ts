// Delta payloads through the fastpatch command: generate --source, inspect, verify and apply
// --source / --check-source, exit codes and one-line errors.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lines, runCli, stackLines, type CliRun } from '../helpers/cli.js';
import { manifestOf, opName, proseBytes, xorByte } from '../helpers/delta.js';
import { BLOCK, blockListHashRef, firstDifference, patternBytes, randomBytes, removeDir, tempDir } from '../helpers/payloads.js';

let dir: string;
const at = (name: string) => join(dir, name);
let oldImage: Uint8Array;
let newImage: Uint8Array;
/** Operation counts by type name, from the payload's manifest. */
let counts: Record<string, number>;

function ok(run: CliRun): CliRun {
  expect(run.stderr, 'stderr').toBe('');
  expect(run.code, run.stderr).toBe(0);
  return run;
}

/** Asserts a refusal: the exit code, one `fastpatch: CODE: ...` line on stderr, no stack trace, nothing on stdout. */
function refused(run: CliRun, code: string, exit: number): string {
  expect(run.code, run.stderr).toBe(exit);
  expect(lines(run.stderr)).toHaveLength(1);
  expect(run.stderr).toMatch(new RegExp(`^fastpatch: ${code}: \\S.*\\n$`));
  expect(stackLines(run.stderr)).toEqual([]);
  expect(run.stdout).toBe('');
  return run.stderr;
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

beforeAll(async () => {
  dir = await tempDir('delta-cli');
  const a = randomBytes(96 * BLOCK, 81);
  const b = proseBytes(64 * BLOCK, 82);
  oldImage = concat(a, b, randomBytes(2000, 83));
  const edited = b.slice();
  edited.set(new TextEncoder().encode('Release 2 changed this sentence.'), 10_000);
  newImage = concat(a, edited, randomBytes(1000, 84)); // smaller than the old image: it fits a copy of it
  await fsp.writeFile(at('old.img'), oldImage);
  await fsp.writeFile(at('new.img'), newImage);
  const bad = oldImage.slice();
  xorByte(bad, 10, 1); // inside the first SOURCE_COPY's source blocks
  await fsp.writeFile(at('bad-source.img'), bad);
  await fsp.writeFile(at('short-source.img'), oldImage.subarray(0, oldImage.length - 1));
  ok(await runCli(['keygen', '--out', at('k')]));
  ok(await runCli(['generate', '--source', at('old.img'), '--target', at('new.img'), '--key', at('k'), '--version', '2.1.0', '-o', at('delta.fpay')]));
  counts = {};
  for (const op of manifestOf(await fsp.readFile(at('delta.fpay'))).operations) counts[opName(op)] = (counts[opName(op)] ?? 0) + 1;
});
afterAll(async () => {
  await removeDir(dir);
});

/** A new target file holding a pattern; returns its path and bytes. */
let n = 0;
async function patternTarget(): Promise<{ path: string; before: Uint8Array }> {
  const path = at(`target-${n++}.img`);
  const before = patternBytes(newImage.length + 777, n);
  await fsp.writeFile(path, before);
  return { path, before };
}

it('generate --source --json reports the source and SOURCE_COPY and SOURCE_DIFF operations', async () => {
  const run = ok(await runCli(['generate', '--source', at('old.img'), '--target', at('new.img'), '--key', at('k'), '--version', '2.1.0', '-o', at('again.fpay'), '--json']));
  const result = JSON.parse(run.stdout);
  expect(result).toMatchObject({ sourceSize: oldImage.length, sourceHash: blockListHashRef(oldImage), targetSize: newImage.length, targetHash: blockListHashRef(newImage) });
  expect(result.operations.SOURCE_COPY.count).toBeGreaterThan(0);
  expect(result.operations.SOURCE_DIFF.count).toBeGreaterThan(0);
  expect(counts['SOURCE_COPY']).toBe(result.operations.SOURCE_COPY.count);
});

describe('inspect', () => {
  it('shows the source size and hash and the operations by type', async () => {
    const run = ok(await runCli(['inspect', at('delta.fpay')]));
    const out = lines(run.stdout);
    expect(out[0]).toBe('payload format v1, release 2.1.0, delta');
    expect(out).toContain(`source: ${oldImage.length} bytes, hash ${blockListHashRef(oldImage)}`);
    for (const [type, count] of Object.entries(counts)) {
      expect(out.find((l) => l.trim().startsWith(`${type} `)), type).toMatch(new RegExp(`^\\s+${type}\\s+${count} ops`));
    }
    expect(Object.keys(counts)).toEqual(expect.arrayContaining(['SOURCE_COPY', 'SOURCE_DIFF']));
  });

  it('--json carries the same', async () => {
    const info = JSON.parse(ok(await runCli(['inspect', at('delta.fpay'), '--json'])).stdout);
    expect(info.source).toEqual({ size: oldImage.length, hash: blockListHashRef(oldImage), version: null }); // made without --source-version
    expect(Object.fromEntries(Object.entries(info.operations.byType).map(([t, s]) => [t, (s as { count: number }).count]))).toEqual(counts);
  });
});

describe('apply', () => {
  it('apply --source --target --pubkey: exit 0, the target holds the new image', async () => {
    const { path, before } = await patternTarget();
    const run = ok(await runCli(['apply', at('delta.fpay'), '--source', at('old.img'), '--target', path, '--pubkey', at('k.pub')]));
    expect(run.stdout).toContain(`every source block read checked against ${at('old.img')}`);
    const after = await fsp.readFile(path);
    expect(firstDifference(after.subarray(0, newImage.length), newImage)).toBe(-1);
    expect(firstDifference(after.subarray(newImage.length), before.subarray(newImage.length))).toBe(-1);
  });

  it('apply --json onto a new file reports the source', async () => {
    const path = at(`new-${n++}.img`);
    const result = JSON.parse(ok(await runCli(['apply', at('delta.fpay'), '--source', at('old.img'), '--target', path, '--pubkey', at('k.pub'), '--json'])).stdout);
    expect(result).toMatchObject({ source: at('old.img'), sourceSize: oldImage.length, targetHash: blockListHashRef(newImage) });
    expect(firstDifference(await fsp.readFile(path), newImage)).toBe(-1);
  });

  it('with a modified source: exit 8, one SOURCE_MISMATCH line naming the operation, nothing written from it on', async () => {
    const { path, before } = await patternTarget();
    const stderr = refused(await runCli(['apply', at('delta.fpay'), '--source', at('bad-source.img'), '--target', path, '--pubkey', at('k.pub')]), 'SOURCE_MISMATCH', 8);
    expect(stderr).toMatch(/operation 0 \(SOURCE_COPY\): source blocks 0\+\d+/);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
  });

  it('--verbose adds the stack trace', async () => {
    const run = await runCli(['apply', at('delta.fpay'), '--source', at('bad-source.img'), '--target', at(`v-${n++}.img`), '--pubkey', at('k.pub'), '--verbose']);
    expect(run.code).toBe(8);
    expect(stackLines(run.stderr).length).toBeGreaterThan(0);
  });

  it.each([
    ['--check-source and a modified source', 'SOURCE_MISMATCH', 8, ['--source', 'bad-source.img', '--check-source']],
    ['a source one byte short', 'SOURCE_MISMATCH', 8, ['--source', 'short-source.img']],
    ['no --source', 'USAGE', 2, []],
    ['a source that does not exist', 'IO', 6, ['--source', 'missing.img']],
  ] as const)('%s: %s (exit %i), refused before any write', async (_name, code, exit, extra) => {
    const { path, before } = await patternTarget();
    const args = extra.map((a) => (a.endsWith('.img') ? at(a) : a));
    refused(await runCli(['apply', at('delta.fpay'), ...args, '--target', path, '--pubkey', at('k.pub')]), code, exit);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
  });

  it('--source and --target naming the same file: USAGE (exit 2), the file unchanged', async () => {
    const slot = at('slot.img');
    await fsp.writeFile(slot, oldImage);
    refused(await runCli(['apply', at('delta.fpay'), '--source', slot, '--target', slot, '--pubkey', at('k.pub')]), 'USAGE', 2);
    expect(firstDifference(await fsp.readFile(slot), oldImage)).toBe(-1);
  });
});

describe('verify', () => {
  it('with --source: exit 0; without: USAGE (exit 2); with a modified source: exit 8', async () => {
    ok(await runCli(['verify', at('delta.fpay'), '--source', at('old.img'), '--pubkey', at('k.pub')]));
    refused(await runCli(['verify', at('delta.fpay'), '--pubkey', at('k.pub')]), 'USAGE', 2);
    refused(await runCli(['verify', at('delta.fpay'), '--source', at('bad-source.img'), '--pubkey', at('k.pub')]), 'SOURCE_MISMATCH', 8);
  });
});
