// Delta payloads, property test: for seeded random image pairs (scattered edits, inserted and
// deleted runs, moved and zeroed blocks, copies, appends and truncations; sizes that are not a
// multiple of 4096; source and target of different sizes), applying generate(old, new) onto old
// gives new byte for byte, with both WASM builds. Each test names its seed; DELTA_SEED=<n> picks
// another range of pairs.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format, readPayloadChunks, type CoreBuild } from '../../dist/src/index.js';
import { blocksOf, buildDelta, extentsOf, opName, randomPair, targetRange, type BuiltDelta, type ImagePair } from '../helpers/delta.js';
import { BLOCK, BUILDS, blockListHashRef, firstDifference, makeKeyPair, patternBytes, removeDir, tempDir } from '../helpers/payloads.js';

const PAIRS_PER_BUILD = 24;
const BASE_SEED = Number(process.env.DELTA_SEED ?? 7100);
const signer = makeKeyPair();
let dir: string;
/** Operation types the generated payloads used, over all pairs. */
const typesSeen = new Set<string>();

beforeAll(async () => {
  dir = await tempDir('delta-roundtrip');
  console.log(`delta round trip: seeds ${BASE_SEED}.. (release) and ${BASE_SEED + 1000}.. (debug); DELTA_SEED=<n> picks others`);
});
afterAll(async () => {
  await removeDir(dir);
});

/**
 * What the operations say, checked against the two images without the applier: they write the
 * target's blocks in order; a SOURCE_COPY's source blocks hold exactly the bytes it writes; a ZERO
 * writes zeros; source extents lie inside the source and within the per-operation limit.
 */
function checkOperations(m: format.Manifest, pair: ImagePair, why: string): void {
  const sourceBlocks = Math.ceil(pair.source.length / BLOCK);
  let next = 0;
  const problems: string[] = [];
  m.operations.forEach((op, i) => {
    const what = `operation ${i} (${opName(op)})`;
    const [start, end] = targetRange(m, op);
    const written = pair.target.subarray(start, end);
    if (blocksOf(op.dstExtents).some((b, k) => b !== next + k)) problems.push(`${what}: not the next blocks`);
    next += blocksOf(op.dstExtents).length;
    const reads = blocksOf(op.srcExtents);
    if (reads.some((b) => b < 0 || b >= sourceBlocks)) problems.push(`${what}: reads outside the source`);
    if (reads.length > format.LIMITS.MAX_OP_SOURCE / BLOCK) problems.push(`${what}: reads ${reads.length} blocks`);
    switch (op.type) {
      case format.OpType.SOURCE_COPY:
        if (op.dataLength !== 0) problems.push(`${what}: carries data`);
        if (firstDifference(extentsOf(pair.source, op.srcExtents).subarray(0, written.length), written) !== -1) problems.push(`${what}: source blocks differ from the target`);
        break;
      case format.OpType.ZERO:
        if (written.some((b) => b !== 0)) problems.push(`${what}: target bytes are not zero`);
        break;
      case format.OpType.SOURCE_DIFF:
        if (op.dataLength === 0) problems.push(`${what}: no data`);
        break;
      case format.OpType.SOURCE_ZSTD:
        if (op.dataLength === 0) problems.push(`${what}: no data`);
        if (reads.length === 0 && !op.targetDictionary?.length) problems.push(`${what}: no dictionary`);
        for (const e of op.targetDictionary ?? []) {
          if (e.startBlock + e.blockCount > blocksOf(op.dstExtents)[0]!) problems.push(`${what}: target dictionary reaches block ${e.startBlock + e.blockCount - 1}, not before its output`);
        }
        break;
      case format.OpType.REPLACE:
      case format.OpType.REPLACE_DEFLATE:
      case format.OpType.REPLACE_ZSTD:
        if (reads.length > 0) problems.push(`${what}: has source extents`);
        break;
      default:
        problems.push(`${what}: unexpected type`);
    }
  });
  if (next !== Math.ceil(pair.target.length / BLOCK)) problems.push(`operations cover ${next} blocks`);
  expect(problems, why).toEqual([]);
}

async function roundTrip(build: CoreBuild, seed: number): Promise<void> {
  const pair = randomPair(seed);
  const why = `seed ${seed} (${build}): ${pair.edits.join('; ')}`;
  let d: BuiltDelta | undefined;
  try {
    d = await buildDelta(dir, `pair-${seed}`, pair.source, pair.target, { keys: [signer.key], build });
    expect(d.result, why).toMatchObject({
      sourceSize: pair.source.length,
      sourceHash: blockListHashRef(pair.source),
      targetSize: pair.target.length,
      targetHash: blockListHashRef(pair.target),
    });
    checkOperations(d.manifest, pair, why);
    for (const op of d.manifest.operations) typesSeen.add(opName(op));

    // Even seeds: onto a created file. Odd seeds: onto a larger file holding a pattern, which ZERO
    // operations must overwrite and whose bytes past the image must stay.
    const out = join(dir, `pair-${seed}.out`);
    const extra = seed % 2 === 1 ? 4321 : 0;
    if (extra > 0) await fsp.writeFile(out, patternBytes(pair.target.length + extra, seed & 0xff));
    const result = await applyPayload(readPayloadChunks(d.payloadPath), { trustedKeys: [signer.pub], source: d.sourcePath, target: out, build });
    expect(result, why).toMatchObject({ sourceSize: pair.source.length, targetSize: pair.target.length, targetHash: d.result.targetHash });
    const written = await fsp.readFile(out);
    expect(written.length, why).toBe(pair.target.length + extra);
    expect(firstDifference(written.subarray(0, pair.target.length), pair.target), why).toBe(-1);
    if (extra > 0) expect(firstDifference(written.subarray(pair.target.length), patternBytes(pair.target.length + extra, seed & 0xff).subarray(pair.target.length)), why).toBe(-1);
    // The source is only read.
    expect(firstDifference(await fsp.readFile(d.sourcePath), pair.source), why).toBe(-1);
  } catch (err) {
    console.error(`failing pair: ${why}`);
    throw err;
  } finally {
    for (const f of ['old.img', 'new.img', 'fpay', 'out']) await fsp.rm(join(dir, `pair-${seed}.${f}`), { force: true });
  }
}

describe.each(BUILDS)('%s build', (build) => {
  const first = BASE_SEED + (build === 'debug' ? 1000 : 0);
  const seeds = Array.from({ length: PAIRS_PER_BUILD }, (_, i) => first + i);
  it.each(seeds)('seed %i: apply(generate(old, new), old) is new, byte for byte', (seed) => roundTrip(build, seed));
});

// Runs after the round trips (tests of a file run in order).
it('the pairs cover what they should: every kind of edit and of operation, odd sizes, growth and shrinkage', () => {
  const pairs = BUILDS.flatMap((build) => Array.from({ length: PAIRS_PER_BUILD }, (_, i) => randomPair(BASE_SEED + (build === 'debug' ? 1000 : 0) + i)));
  const edits = pairs.flatMap((p) => p.edits.slice(1)).join('\n');
  for (const kind of ['byte changes', 'insert', 'delete', 'move blocks', 'zero blocks', 'copy', 'append', 'truncate']) {
    expect(edits, kind).toContain(kind);
  }
  expect(pairs.some((p) => p.source.length % BLOCK !== 0)).toBe(true);
  expect(pairs.some((p) => p.target.length % BLOCK !== 0)).toBe(true);
  expect(pairs.some((p) => p.target.length > p.source.length)).toBe(true);
  expect(pairs.some((p) => p.target.length < p.source.length)).toBe(true);
  expect(Math.min(...pairs.map((p) => p.source.length))).toBeLessThan(256 * 1024);
  expect(Math.max(...pairs.map((p) => p.source.length))).toBeGreaterThan(2 * 1024 * 1024);
  expect([...typesSeen].sort()).toEqual(expect.arrayContaining(['SOURCE_COPY', 'SOURCE_DIFF', 'SOURCE_ZSTD', 'ZERO']));
});
