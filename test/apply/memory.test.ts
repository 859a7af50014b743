// Memory stays bounded by what the format allows, whatever the payload's shape: a large blob
// followed by thousands of tiny ones must not make the reader allocate a large buffer per tiny blob,
// and a big manifest must not be copied into the workers once per operation.
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { applyPayload, format } from '../../dist/src/index.js';
import { assemblePayload, BLOCK, blockListHashRef, chunksOf, makeKeyPair, MiB, randomBytes } from '../helpers/payloads.js';

const signer = makeKeyPair();
const hash = (data: Uint8Array) => Buffer.from(blockListHashRef(data), 'hex');

function op(type: number, startBlock: number, blockCount: number, blob: Uint8Array, output: Uint8Array, dataOffset: number): format.Operation {
  return { type, dataOffset, dataLength: blob.length, dataHash: hash(blob), outputHash: hash(output), sourceHash: undefined, srcExtents: [], dstExtents: [{ startBlock, blockCount }] };
}

describe('applier memory', () => {
  // Memory is asserted, not time (a test must not depend on the machine's speed): a generous timeout.
  it('one 16 MiB blob then 20,000 one-block operations: array buffers stay far below one buffer per operation', { timeout: 300_000 }, async () => {
    const big = randomBytes(16 * MiB, 7);
    const small = new Uint8Array(BLOCK).fill(0x61);
    const smallBlob = deflateRawSync(small);
    const count = 20_000;
    const bigBlocks = (16 * MiB) / BLOCK;
    const ops = [op(format.OpType.REPLACE, 0, bigBlocks, big, big, 0)];
    const blobs: Uint8Array[] = [big];
    for (let i = 0; i < count; i++) {
      ops.push(op(format.OpType.REPLACE_DEFLATE, bigBlocks + i, 1, smallBlob, small, big.length + i * smallBlob.length));
      blobs.push(smallBlob);
    }
    const image = Buffer.concat([big, ...Array.from({ length: count }, () => small)]);
    const manifest: format.Manifest = { blockSize: BLOCK, targetSize: image.length, targetHash: hash(image), sourceSize: 0, sourceHash: new Uint8Array(32), version: '1.0', operations: ops };
    const payload = assemblePayload(manifest, blobs, [signer.key]);
    let peak = 0;
    const result = await applyPayload(chunksOf(payload, 1 * MiB), {
      trustedKeys: [signer.pub],
      onProgress: () => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers)),
    });
    expect(result.operations).toBe(count + 1);
    // Before the fix each tiny blob got a 16 MiB buffer (and each job a copy of the 2 MiB manifest):
    // gigabytes. The bound is the pipeline's: a few 16 MiB buffers plus this test's own payload.
    expect(peak - payload.length - image.length).toBeLessThan(200 * MiB);
    // No time limit asserted here: a hang is the test timeout's to catch; speed is npm run bench's.
  });
});
