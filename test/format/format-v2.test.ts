// Format version 2 (the zstd operations) beside version 1: payloads written by fastpatch 0.1 still
// apply byte for byte; the header's version decides which operation types a payload may carry,
// and a newer version is refused before anything is written; zstd data is checked like deflate's.
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { constants as zlibConstants, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyPayload, format, formatPublicKey, inspectPayload, loadPublicKeyFile, readPayloadChunks, type PublicKey } from '../../dist/src/index.js';
import { fixtureImages } from '../fixtures/v1/images.js';
import { lines, runCli, stackLines, type CliRun } from '../helpers/cli.js';
import { codeOf } from '../helpers/errors.js';
import {
  BLOCK,
  applyBytes,
  blockListHashRef,
  chunksOf,
  expectFastPatchError,
  extentsOf,
  firstDifference,
  handPayload as signedHandPayload,
  makeKeyPair,
  outcome,
  randomBytes,
  rejectionOf,
  removeDir,
  sameBytes,
  tempDir,
  textBytes,
  writePatternFile,
  type HandOp,
} from '../helpers/payloads.js';

// Most tests run the CLI a few times: on a busy 2-core machine that can pass vitest's 5 s default.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const { OpType } = format;
const FIXTURES = fileURLToPath(new URL('../fixtures/v1/', import.meta.url));
const A = makeKeyPair();
let dir: string;
/** delta.source as a file. */
let sourcePath: string;
let n = 0;
const at = (name: string) => join(dir, name);
const fresh = (name: string) => at(`${n++}-${name}`);
/** A's public key as a file, for the CLI. */
let pubPath: string;

beforeAll(async () => {
  dir = await tempDir('format-v2');
  pubPath = at('a.pub');
  await fsp.writeFile(pubPath, formatPublicKey(A.pub));
  sourcePath = at('source.img');
  await fsp.writeFile(sourcePath, delta.source);
});
afterAll(async () => {
  await removeDir(dir);
});

function ok(run: CliRun): CliRun {
  expect(run.stderr, 'stderr').toBe('');
  expect(run.code, run.stderr).toBe(0);
  return run;
}

/** A CLI refusal: the exit code and one `fastpatch: CODE: ...` line, no stack trace. Returns that line. */
function refused(run: CliRun, code: string, exit: number): string {
  expect(run.code, run.stderr).toBe(exit);
  expect(lines(run.stderr)).toHaveLength(1);
  expect(run.stderr).toMatch(new RegExp(`^fastpatch: ${code}: \\S`));
  expect(stackLines(run.stderr)).toEqual([]);
  return run.stderr;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------------------------
// 1. Payloads made by the previous release

interface FixtureInfo {
  keyId: string;
  image1: { size: number; sha256: string; blockListHash: string };
  image2: { size: number; sha256: string; blockListHash: string };
  full: { file: string; version: string; operations: Record<string, number> };
  delta: { file: string; version: string; sourceVersion: string; operations: Record<string, number> };
}

describe('payloads made by fastpatch 0.1 (test/fixtures/v1) apply with this build', () => {
  let info: FixtureInfo;
  let image1: Uint8Array;
  let image2: Uint8Array;
  let pub: PublicKey;
  const fixture = (name: string) => join(FIXTURES, name);
  const image1Path = () => at('v1-image-1.img');

  beforeAll(async () => {
    info = JSON.parse(await fsp.readFile(fixture('fixtures.json'), 'utf8')) as FixtureInfo;
    ({ image1, image2 } = fixtureImages());
    await fsp.writeFile(image1Path(), image1);
    pub = await loadPublicKeyFile(fixture('release.key.pub'));
  });

  it('images.ts still makes the images the payloads were made from', () => {
    // Checked first: if this fails, the script changed, not the applier (README.md says what to redo).
    expect({ size: image1.length, sha256: sha256(image1), blockListHash: blockListHashRef(image1) }).toEqual(info.image1);
    expect({ size: image2.length, sha256: sha256(image2), blockListHash: blockListHashRef(image2) }).toEqual(info.image2);
  });

  it.each(['full', 'delta'] as const)('inspect (library and CLI) says the %s payload is format v1, signed by the fixture key', async (kind) => {
    const path = fixture(info[kind].file);
    const lib = await inspectPayload(readPayloadChunks(path), [pub]);
    expect(lib.formatVersion).toBe(1);
    expect(lib.verifiedBy).toBe(info.keyId);
    expect(lib.version).toBe(info[kind].version);
    expect(lib.targetHash).toBe(info.image2.blockListHash);
    expect(Object.fromEntries(Object.entries(lib.operations.byType).map(([name, s]) => [name, s.count]))).toEqual(info[kind].operations);
    expect(lib.source).toEqual(kind === 'full' ? null : { size: info.image1.size, hash: info.image1.blockListHash, version: info.delta.sourceVersion });

    const text = ok(await runCli(['inspect', path, '--pubkey', fixture('release.key.pub')])).stdout;
    expect(lines(text)[0]).toBe(`payload format v1, release ${info[kind].version}, ${kind}`);
    const json = JSON.parse(ok(await runCli(['inspect', path, '--json'])).stdout) as { formatVersion: number };
    expect(json.formatVersion).toBe(1);
  });

  it('the full payload applies through the library, byte for byte, in whole and in 1000-byte chunks', async () => {
    const payload = await fsp.readFile(fixture(info.full.file));
    for (const chunking of ['whole', 1000] as const) {
      const target = fresh('v1-full.img');
      const result = await applyBytes(payload, { trustedKeys: [pub], target }, chunking);
      expect(result.keyId).toBe(info.keyId);
      expect(firstDifference(await fsp.readFile(target), image2)).toBe(-1);
    }
  });

  it('the delta applies through the library from image 1, byte for byte', async () => {
    const target = fresh('v1-delta.img');
    const result = await applyPayload(readPayloadChunks(fixture(info.delta.file)), { trustedKeys: [pub], source: image1Path(), target });
    expect(result.keyId).toBe(info.keyId);
    expect(firstDifference(await fsp.readFile(target), image2)).toBe(-1);
  });

  it('both apply through the CLI onto a used target larger than the image: the image in front, the rest untouched', async () => {
    for (const [kind, extra] of [
      ['full', []],
      ['delta', ['--source', image1Path(), '--check-source']],
    ] as const) {
      const target = fresh(`v1-cli-${kind}.img`);
      const before = await writePatternFile(target, image2.length + 3 * BLOCK);
      ok(await runCli(['apply', fixture(info[kind].file), '--target', target, '--pubkey', fixture('release.key.pub'), ...extra]));
      const after = await fsp.readFile(target);
      expect(firstDifference(after.subarray(0, image2.length), image2), kind).toBe(-1);
      expect(sameBytes(after.subarray(image2.length), before.subarray(image2.length)), kind).toBe(true);
      ok(await runCli(['verify', fixture(info[kind].file), '--pubkey', fixture('release.key.pub'), ...(kind === 'delta' ? ['--source', image1Path()] : [])]));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-built payloads: any header version, any operation, signed like the generator signs.


/** The bytes `extents` ([start, count] in blocks) read from `source`, whole blocks, in order. */
const sourceData = (source: Uint8Array, extents: ReadonlyArray<readonly [number, number]>) => extentsOf(source, extents.map(([startBlock, blockCount]) => ({ startBlock, blockCount })));

/** A payload with header `version` over `image` (and `source` for a delta), signed by A (helpers/payloads.ts). */
const handPayload = (version: number, image: Uint8Array, ops: readonly HandOp[], source?: Uint8Array) => signedHandPayload(version, image, ops, [A.key], source);

const zstd = (data: Uint8Array, dictionary?: Uint8Array) => zstdCompressSync(data, dictionary ? { dictionary } : {});

/** An 8-block image: text, a zero block, text; its three parts as REPLACE, ZERO and REPLACE_ZSTD. */
const image8 = (() => {
  const image = new Uint8Array(8 * BLOCK);
  image.set(textBytes(2 * BLOCK, 201), 0);
  image.set(textBytes(5 * BLOCK, 202), 3 * BLOCK);
  return image;
})();
const head2 = image8.subarray(0, 2 * BLOCK);
const zero1 = image8.subarray(2 * BLOCK, 3 * BLOCK);
const tail5 = image8.subarray(3 * BLOCK);
const zstdOps: HandOp[] = [
  { type: OpType.REPLACE, start: 0, output: head2, blob: head2 },
  { type: OpType.ZERO, start: 2, output: zero1 },
  { type: OpType.REPLACE_ZSTD, start: 3, output: tail5, blob: zstd(tail5) },
];

/** A 16-block source and a target made from it: copied, edited and moved blocks, and a short tail. */
const delta = (() => {
  const source = new Uint8Array(16 * BLOCK);
  source.set(textBytes(12 * BLOCK, 211), 0);
  source.set(randomBytes(4 * BLOCK, 212), 12 * BLOCK);
  // Target blocks 0-3: source 0-3; 4-11: source 12-15 then 4-7, with bytes changed; 12: new short tail.
  const edited = Buffer.concat([source.subarray(12 * BLOCK, 16 * BLOCK), source.subarray(4 * BLOCK, 8 * BLOCK)]);
  for (let i = 500; i < edited.length; i += 3000) edited[i] = 0x21;
  const tail = textBytes(1234, 213);
  const target = new Uint8Array(Buffer.concat([source.subarray(0, 4 * BLOCK), edited, tail]));
  return { source, target, edited: new Uint8Array(edited), tail };
})();
const DICT_SRC = [[12, 4], [4, 4]] as const;

/** SOURCE_COPY, SOURCE_ZSTD (the source's blocks as its dictionary) and REPLACE_ZSTD, over `source`. */
function sourceZstdOps(source: Uint8Array, blob?: Uint8Array): HandOp[] {
  const dictionary = sourceData(source, DICT_SRC);
  return [
    { type: OpType.SOURCE_COPY, start: 0, output: delta.target.subarray(0, 4 * BLOCK), src: [[0, 4]] },
    { type: OpType.SOURCE_ZSTD, start: 4, output: delta.edited, blob: blob ?? zstd(delta.edited, dictionary), src: DICT_SRC },
    { type: OpType.REPLACE_ZSTD, start: 12, output: delta.tail, blob: zstd(delta.tail) },
  ];
}

let targets = 0;
/** A target file holding a pattern, `extra` bytes longer than `size`. */
async function patternTarget(size: number, extra = 1000): Promise<{ path: string; before: Uint8Array }> {
  const path = at(`target-${targets++}.img`);
  return { path, before: await writePatternFile(path, size + extra, targets & 0xff) };
}

// ---------------------------------------------------------------------------------------------
// 2. Format versions

describe('the header version', () => {
  const header = (version: number) => format.encodeHeader({ version, manifestSize: 100, signaturesSize: format.signaturesSize(1), dataSize: 0 });

  it('this build reads versions 1 and 2 and writes 2', () => {
    expect([format.MIN_FORMAT_VERSION, format.FORMAT_VERSION]).toEqual([1, 2]);
    for (const version of [1, 2]) expect(format.decodeHeader(header(version))).toMatchObject({ version });
  });

  it.each([
    [0, false],
    [3, true],
    [0xffffffff, true],
  ])('version %i is refused (CORRUPT_PAYLOAD); "update fastpatch": %s', (version, newer) => {
    let message = '';
    try {
      format.decodeHeader(header(version));
    } catch (err) {
      expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
      message = err.message;
    }
    expect(message).toMatch(new RegExp(`version ${version}\\b`));
    expect(/made by a newer fastpatch; update fastpatch/.test(message)).toBe(newer);
  });

  it('a v2 payload applies; the same operations signed under version 3 are refused before the target is opened, saying to update fastpatch', async () => {
    const target = fresh('v2.img');
    await applyBytes(handPayload(2, image8, zstdOps), { trustedKeys: [A.pub], target });
    expect(sameBytes(await fsp.readFile(target), image8)).toBe(true);

    const v3 = handPayload(3, image8, zstdOps);
    for (const chunking of ['whole', 7] as const) {
      const { path, before } = await patternTarget(image8.length);
      const mtime = (await fsp.stat(path)).mtimeMs;
      const err = await rejectionOf(applyBytes(v3, { trustedKeys: [A.pub], target: path }, chunking));
      expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
      expect(err.message).toMatch(/format version 3 .*made by a newer fastpatch; update fastpatch/);
      expect(sameBytes(await fsp.readFile(path), before)).toBe(true);
      expect((await fsp.stat(path)).mtimeMs).toBe(mtime);
    }
    const missing = fresh('never-created.img');
    expectFastPatchError(await rejectionOf(applyBytes(v3, { trustedKeys: [A.pub], target: missing })), 'CORRUPT_PAYLOAD', 4);
    expect(existsSync(missing)).toBe(false);
    expectFastPatchError(await rejectionOf(inspectPayload(chunksOf(v3))), 'CORRUPT_PAYLOAD', 4);
  });

  it('the CLI refuses a version 3 payload with exit 4 and one line saying to update fastpatch; the target keeps its bytes', async () => {
    const payload = fresh('v3.fpay');
    await fsp.writeFile(payload, handPayload(3, image8, zstdOps));
    const { path, before } = await patternTarget(image8.length);
    const line = refused(await runCli(['apply', payload, '--target', path, '--pubkey', pubPath]), 'CORRUPT_PAYLOAD', 4);
    expect(line).toMatch(/update fastpatch/);
    expect(sameBytes(await fsp.readFile(path), before)).toBe(true);
    expect(refused(await runCli(['inspect', payload]), 'CORRUPT_PAYLOAD', 4)).toMatch(/update fastpatch/);
    // From standard input too: the header is refused as soon as it arrives.
    const fromStdin = await runCli(['apply', '-', '--target', path, '--pubkey', pubPath], { input: await fsp.readFile(payload) });
    expect(refused(fromStdin, 'CORRUPT_PAYLOAD', 4)).toMatch(/update fastpatch/);
    expect(sameBytes(await fsp.readFile(path), before)).toBe(true);
  });
});

describe('operation types by format version', () => {
  const v1Types = [OpType.REPLACE, OpType.REPLACE_DEFLATE, OpType.ZERO, OpType.SOURCE_COPY, OpType.SOURCE_DIFF];

  it('OPS_OF_VERSION and formatVersionFor: zstd operations need version 2, the others stay version 1', () => {
    expect([...format.OPS_OF_VERSION.get(1)!].sort()).toEqual([...v1Types].sort());
    expect([...format.OPS_OF_VERSION.get(2)!].sort()).toEqual([...v1Types, OpType.REPLACE_ZSTD, OpType.SOURCE_ZSTD].sort());
    expect(format.formatVersionFor([])).toBe(1);
    expect(format.formatVersionFor(v1Types)).toBe(1);
    expect(format.formatVersionFor([OpType.ZERO, OpType.REPLACE_ZSTD, OpType.REPLACE])).toBe(2);
    expect(format.formatVersionFor([OpType.SOURCE_COPY, OpType.SOURCE_ZSTD])).toBe(2);
  });

  it('validateManifest refuses a zstd operation in a version 1 manifest, and takes it in a version 2 one', () => {
    const manifestOf = (payload: Buffer) => {
      const h = format.decodeHeader(payload) as format.Header;
      return { m: format.decodeManifest(payload.subarray(format.HEADER_SIZE, format.HEADER_SIZE + h.manifestSize)), dataSize: h.dataSize };
    };
    for (const payload of [handPayload(2, image8, zstdOps), handPayload(2, delta.target, sourceZstdOps(delta.source), delta.source)]) {
      const { m, dataSize } = manifestOf(payload);
      expect(() => format.validateManifest(m, dataSize, 2)).not.toThrow();
      expect(() => format.validateManifest(m, dataSize)).not.toThrow(); // defaults to FORMAT_VERSION
      expect(codeOf(() => format.validateManifest(m, dataSize, 1))).toBe('CORRUPT_PAYLOAD');
      expect(() => format.validateManifest(m, dataSize, 1)).toThrow(/(REPLACE_ZSTD|SOURCE_ZSTD)\): unsupported operation type in a format version 1 payload/);
      expect(codeOf(() => format.validateManifest(m, dataSize, 3))).toBe('CORRUPT_PAYLOAD');
    }
  });

  it.each([
    ['REPLACE_ZSTD', () => handPayload(1, image8, zstdOps), undefined],
    ['SOURCE_ZSTD', () => handPayload(1, delta.target, sourceZstdOps(delta.source).slice(0, 2).concat({ type: OpType.REPLACE, start: 12, output: delta.tail, blob: delta.tail }), delta.source), 'source'],
  ] as const)('a validly signed version 1 payload holding %s is refused as unsupported before the target is touched', async (name, build, needsSource) => {
    const payload = build();
    const image = needsSource ? delta.target : image8;
    const options = needsSource ? { source: sourcePath } : {};
    const { path, before } = await patternTarget(image.length);
    const err = await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub], target: path, ...options }));
    expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
    expect(err.message).toMatch(new RegExp(`${name}\\): unsupported operation type in a format version 1 payload`));
    expect(sameBytes(await fsp.readFile(path), before)).toBe(true);
    const file = fresh('v1-zstd.fpay');
    await fsp.writeFile(file, payload);
    const line = refused(await runCli(['apply', file, '--target', path, '--pubkey', pubPath, ...(needsSource ? ['--source', sourcePath] : [])]), 'CORRUPT_PAYLOAD', 4);
    expect(line).toMatch(/unsupported operation type in a format version 1 payload/);
    expect(sameBytes(await fsp.readFile(path), before)).toBe(true);
  });
});

describe('generate --format-version', () => {
  let image: Uint8Array;
  let keyPath: string;
  const v1Names = new Set(['REPLACE', 'REPLACE_DEFLATE', 'ZERO', 'SOURCE_COPY', 'SOURCE_DIFF']);

  beforeAll(async () => {
    // Text, random data, a long zero run, more text: every full-payload operation type but REPLACE.
    image = new Uint8Array(Buffer.concat([textBytes(600 * 1024, 221), randomBytes(100 * 1024, 222), new Uint8Array(40 * BLOCK), textBytes(300 * 1024 + 77, 223)]));
    await fsp.writeFile(at('gen.img'), image);
    keyPath = at('gen.key');
    ok(await runCli(['keygen', '--out', keyPath]));
  });

  async function inspectJson(payload: string): Promise<{ formatVersion: number; operations: { byType: Record<string, unknown> } }> {
    return JSON.parse(ok(await runCli(['inspect', payload, '--json'])).stdout);
  }

  async function appliesByCli(payload: string, expected: Uint8Array, extra: string[] = []): Promise<void> {
    const target = fresh('gen-target.img');
    ok(await runCli(['apply', payload, '--target', target, '--pubkey', `${keyPath}.pub`, ...extra]));
    expect(firstDifference(await fsp.readFile(target), expected)).toBe(-1);
  }

  it('by default: a version 2 payload whose data is REPLACE_ZSTD; it applies byte for byte', async () => {
    const payload = fresh('default.fpay');
    ok(await runCli(['generate', '--target', at('gen.img'), '--key', keyPath, '--version', '2.0.0', '-o', payload]));
    const info = await inspectJson(payload);
    expect(info.formatVersion).toBe(2);
    expect(Object.keys(info.operations.byType)).toContain('REPLACE_ZSTD');
    expect(Object.keys(info.operations.byType)).not.toContain('REPLACE_DEFLATE');
    expect(lines(ok(await runCli(['inspect', payload])).stdout)[0]).toBe('payload format v2, release 2.0.0, full');
    await appliesByCli(payload, image);
  });

  it('--format-version 1: only version 1 operation types (deflate), inspect says v1, it applies byte for byte', async () => {
    const payload = fresh('v1.fpay');
    ok(await runCli(['generate', '--format-version', '1', '--target', at('gen.img'), '--key', keyPath, '--version', '2.0.0', '-o', payload]));
    const info = await inspectJson(payload);
    expect(info.formatVersion).toBe(1);
    expect(Object.keys(info.operations.byType)).toContain('REPLACE_DEFLATE');
    expect(Object.keys(info.operations.byType).filter((name) => !v1Names.has(name))).toEqual([]);
    expect(lines(ok(await runCli(['inspect', payload])).stdout)[0]).toBe('payload format v1, release 2.0.0, full');
    await appliesByCli(payload, image);
  });

  it('--format-version 1 with --source: a delta of version 1 operation types only', async () => {
    const next = image.slice();
    next.set(textBytes(50 * 1024, 224), 200 * 1024);
    next.set(image.subarray(0, 64 * 1024), 900 * 1024); // moved
    await fsp.writeFile(at('gen-next.img'), next);
    const payload = fresh('delta-v1.fpay');
    ok(await runCli(['generate', '--format-version', '1', '--source', at('gen.img'), '--target', at('gen-next.img'), '--key', keyPath, '--version', '2.0.1', '-o', payload]));
    const info = await inspectJson(payload);
    expect(info.formatVersion).toBe(1);
    expect(Object.keys(info.operations.byType).filter((name) => !v1Names.has(name))).toEqual([]);
    await appliesByCli(payload, next, ['--source', at('gen.img')]);
  });

  it.each(['0', '3'])('--format-version %s is a usage error (exit 2), no payload written', async (version) => {
    const payload = fresh('bad.fpay');
    refused(await runCli(['generate', '--format-version', version, '--target', at('gen.img'), '--key', keyPath, '--version', '2.0.0', '-o', payload]), 'USAGE', 2);
    expect(existsSync(payload)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. zstd data

describe('zstd data that lies (validly signed)', () => {
  /** Image8 with the REPLACE_ZSTD blob replaced. */
  const withBlob = (blob: Uint8Array) => handPayload(2, image8, [zstdOps[0]!, zstdOps[1]!, { ...zstdOps[2]!, blob }]);
  const checksummed = (data: Uint8Array) => zstdCompressSync(data, { params: { [zlibConstants.ZSTD_c_checksumFlag]: 1 } });

  const LIES: Array<[string, () => Uint8Array]> = [
    ['not a zstd frame (random bytes)', () => randomBytes(300, 231)],
    ['a frame cut short', () => zstd(tail5).subarray(0, zstd(tail5).length - 5)],
    ['a frame header alone', () => zstd(tail5).subarray(0, 6)],
    ['a frame of fewer bytes than the extents hold', () => zstd(tail5.subarray(0, 4 * BLOCK))],
    ['a frame of more bytes than the extents hold', () => zstd(Buffer.concat([tail5, tail5.subarray(0, 100)]))],
    ['two frames, each half the output', () => Buffer.concat([zstd(tail5.subarray(0, 2 * BLOCK)), zstd(tail5.subarray(2 * BLOCK))])],
    [
      'a frame whose content checksum does not match',
      () => {
        const frame = Buffer.from(checksummed(tail5));
        frame[frame.length - 1] = frame[frame.length - 1]! ^ 0x01;
        return frame;
      },
    ],
  ];

  it.each(LIES)('%s: CORRUPT_PAYLOAD (exit 4); the operations before it are written, the rest of the target is not', async (_name, blob) => {
    const payload = withBlob(blob());
    expectFastPatchError(await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub] })), 'CORRUPT_PAYLOAD', 4);
    const { path, before } = await patternTarget(image8.length);
    const err = await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub], target: path }));
    expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
    expect(err.message).toMatch(/operation 2 \(REPLACE_ZSTD\)/);
    const after = await fsp.readFile(path);
    const split = 3 * BLOCK; // operation 2 writes from block 3 on
    expect(firstDifference(after.subarray(0, split), image8.subarray(0, split))).toBe(-1);
    expect(firstDifference(after.subarray(split), before.subarray(split))).toBe(-1);
  });

  it('the baseline with a checksummed frame applies (the checksum case fails by its checksum alone)', async () => {
    const target = fresh('checksummed.img');
    await applyBytes(withBlob(checksummed(tail5)), { trustedKeys: [A.pub], target });
    expect(sameBytes(await fsp.readFile(target), image8)).toBe(true);
  });

  it('a frame that decodes to other bytes of the right length: HASH_MISMATCH (exit 4), by the output hash', async () => {
    const other = tail5.slice();
    other[5000] = other[5000]! ^ 0xff;
    const { path, before } = await patternTarget(image8.length);
    const err = await rejectionOf(applyBytes(withBlob(zstd(other)), { trustedKeys: [A.pub], target: path }));
    expectFastPatchError(err, 'HASH_MISMATCH', 4);
    expect(firstDifference((await fsp.readFile(path)).subarray(3 * BLOCK), before.subarray(3 * BLOCK))).toBe(-1);
  });

  it('the CLI: exit 4 and one line for a damaged frame', async () => {
    const file = fresh('bad-zstd.fpay');
    await fsp.writeFile(file, withBlob(zstd(tail5).subarray(0, 20)));
    const { path } = await patternTarget(image8.length);
    expect(refused(await runCli(['apply', file, '--target', path, '--pubkey', pubPath]), 'CORRUPT_PAYLOAD', 4)).toMatch(/REPLACE_ZSTD/);
  });
});

describe('SOURCE_ZSTD', () => {
  it('made by hand with zstdCompressSync(output, { dictionary: source data }): applies byte for byte (library, in several chunkings, and CLI)', async () => {
    const ops = sourceZstdOps(delta.source);
    // The dictionary is what makes the blob small: compressed alone the output costs many times more.
    expect(ops[1]!.blob!.length * 4).toBeLessThan(zstd(delta.edited).length);
    const payload = handPayload(2, delta.target, ops, delta.source);
    for (const chunking of ['whole', 7, { seed: 5, max: 5000 }] as const) {
      const target = fresh('source-zstd.img');
      const result = await applyBytes(payload, { trustedKeys: [A.pub], source: sourcePath, target }, chunking);
      expect(result.operations).toBe(3);
      expect(firstDifference(await fsp.readFile(target), delta.target)).toBe(-1);
    }
    const file = fresh('source-zstd.fpay');
    await fsp.writeFile(file, payload);
    const info = JSON.parse(ok(await runCli(['inspect', file, '--json'])).stdout) as { formatVersion: number; operations: { byType: Record<string, unknown> } };
    expect(info.formatVersion).toBe(2);
    expect(Object.keys(info.operations.byType).sort()).toEqual(['REPLACE_ZSTD', 'SOURCE_COPY', 'SOURCE_ZSTD']);
    const target = fresh('source-zstd-cli.img');
    ok(await runCli(['apply', file, '--target', target, '--source', sourcePath, '--pubkey', pubPath]));
    expect(firstDifference(await fsp.readFile(target), delta.target)).toBe(-1);
  });

  it('a source that begins with zstd\'s dictionary magic (37 A4 30 EC) is refused: CORRUPT_PAYLOAD (exit 4), the operation not written', async () => {
    expect([...format.ZSTD_DICTIONARY_MAGIC]).toEqual([0x37, 0xa4, 0x30, 0xec]);
    // Source block 12 (the first the SOURCE_ZSTD reads) begins with the magic; block 0 does not.
    const source = delta.source.slice();
    source.set(format.ZSTD_DICTIONARY_MAGIC, 12 * BLOCK);
    const path = fresh('magic-source.img');
    await fsp.writeFile(path, source);
    // Its blob as a generator unaware of the rule could make it: compressed against the output alone.
    const payload = handPayload(2, delta.target, sourceZstdOps(source, zstd(delta.edited)), source);
    const { path: target, before } = await patternTarget(delta.target.length);
    const err = await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub], source: path, target }));
    expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
    expect(err.message).toMatch(/operation 1 \(SOURCE_ZSTD\): source data is not usable as a raw zstd dictionary/);
    const after = await fsp.readFile(target);
    expect(firstDifference(after.subarray(0, 4 * BLOCK), delta.target.subarray(0, 4 * BLOCK))).toBe(-1);
    expect(firstDifference(after.subarray(4 * BLOCK), before.subarray(4 * BLOCK))).toBe(-1);
    // The magic anywhere but at the start of the operation's source data is ordinary content.
    const later = delta.source.slice();
    later.set(format.ZSTD_DICTIONARY_MAGIC, 13 * BLOCK + 10);
    const laterPath = fresh('magic-later.img');
    await fsp.writeFile(laterPath, later);
    const fine = fresh('magic-later-target.img');
    const laterTarget = delta.target.slice();
    laterTarget.set(format.ZSTD_DICTIONARY_MAGIC, 5 * BLOCK + 10); // target block 5 is source block 13
    const laterEdited = laterTarget.subarray(4 * BLOCK, 12 * BLOCK);
    const ops = sourceZstdOps(later, zstd(laterEdited, sourceData(later, DICT_SRC))).map((op) => (op.start === 4 ? { ...op, output: laterEdited } : op));
    await applyBytes(handPayload(2, laterTarget, ops, later), { trustedKeys: [A.pub], source: laterPath, target: fine });
    expect(firstDifference(await fsp.readFile(fine), laterTarget)).toBe(-1);
  });

  it('a frame compressed against other data than the source decodes to other bytes: refused (exit 4), not written', async () => {
    const wrongDictionary = sourceData(delta.source, [[0, 8]]);
    const payload = handPayload(2, delta.target, sourceZstdOps(delta.source, zstd(delta.edited, wrongDictionary)), delta.source);
    const { path, before } = await patternTarget(delta.target.length);
    const err = await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub], source: sourcePath, target: path }));
    expect(outcome(err)).toMatch(/^(CORRUPT_PAYLOAD|HASH_MISMATCH)\/4$/);
    expect(firstDifference((await fsp.readFile(path)).subarray(4 * BLOCK), before.subarray(4 * BLOCK))).toBe(-1);
  });

  it('a frame made without a dictionary also applies (the dictionary is optional to use)', async () => {
    const target = fresh('no-dict.img');
    await applyBytes(handPayload(2, delta.target, sourceZstdOps(delta.source, zstd(delta.edited)), delta.source), { trustedKeys: [A.pub], source: sourcePath, target });
    expect(firstDifference(await fsp.readFile(target), delta.target)).toBe(-1);
  });
});
