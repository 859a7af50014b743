/**
 * The heaviest valid delta payload the per-operation limits allow (issue 11, class 7): SOURCE_DIFF
 * operations that each read 16 MiB of source, carry a control stream and a difference stream of
 * 16 MiB each once decompressed (brotli, x86 filter), and write 16 MiB; with `storedControl` the
 * control stream is stored instead, so the blob itself is near its 16 MiB limit; with
 * `outputBytes` each operation reads and writes only that much, behind the same 16 MiB control. Every hash is
 * right: `fastpatch verify` runs it to the end, which is what makes its peak memory worth measuring.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants as zc, deflateRawSync } from 'node:zlib';
import { format, formatPublicKey } from '../../dist/src/index.js';
import { DeltaCore } from '../../dist/src/wasm/delta.js';
import { Codec, Filter, encodeDiffBlob } from '../../dist/src/format/diff.js';
import { BLOCK, MiB, assemblePayload, makeKeyPair, randomBytes, textBytes } from './payloads.js';

const OP_BYTES = 16 * MiB;

/** The control stream: `bytes` long exactly, no-op entries then one entry adding `outLen` bytes of difference to the source. */
function paddedControl(bytes: number, outLen: number): Uint8Array {
  const last = [...leb(outLen), 0x80, 0x00, 0x00]; // extra length 0 written in 2 bytes, distance 0
  let pad = bytes - last.length;
  const out = new Uint8Array(bytes); // zeros: (0, 0, 0) entries of 3 bytes each
  // Make the no-op part a multiple of 3 by widening the last entry's zero distance.
  const tail = [...last];
  while (pad % 3 !== 0) {
    tail.splice(tail.length - 1, 1, 0x80, 0x00);
    pad--;
  }
  if (tail.length + pad !== bytes) throw new Error('unreachable: control length');
  out.set(tail, pad);
  return out;
}

function leb(x: number): number[] {
  const out: number[] = [];
  while (x >= 0x80) {
    out.push((x & 0x7f) | 0x80);
    x = Math.floor(x / 128);
  }
  out.push(x);
  return out;
}

function brotli(data: Uint8Array): Uint8Array {
  return brotliCompressSync(data, { params: { [zc.BROTLI_PARAM_QUALITY]: 1, [zc.BROTLI_PARAM_LGWIN]: 24 } });
}

export interface HeavyDelta {
  sourcePath: string;
  payloadPath: string;
  pubkeyPath: string;
  operations: number;
}

/** Writes DIR/heavy-source.img, DIR/heavy.fpatch and DIR/heavy.pub; `operations` SOURCE_DIFF operations at every limit. */
export async function writeHeavyDelta(dir: string, operations = 12, options: { storedControl?: boolean; outputBytes?: number } = {}): Promise<HeavyDelta> {
  // With a small output (and source), the main thread's window counts almost nothing per
  // operation while each still decompresses a 16 MiB control stream in its worker.
  const outBytes = options.outputBytes ?? OP_BYTES;
  const signer = makeKeyPair();
  const source = randomBytes(OP_BYTES, 0xc1a55);
  const delta = new DeltaCore('release');
  const x86 = (raw: Uint8Array) => delta.x86Filter(raw, 'encode');
  // Control: as long as the limit allows (stored: as the blob allows); difference: all zeros, so
  // each output is its source; both through the x86 filter, which the applier undoes.
  const controlLength = options.storedControl ? OP_BYTES - MiB : OP_BYTES;
  const control = x86(paddedControl(controlLength, outBytes));
  const difference = x86(new Uint8Array(outBytes));
  const blob = encodeDiffBlob([
    { codec: options.storedControl ? Codec.STORED : Codec.BROTLI, filter: Filter.X86, rawLength: control.length, data: options.storedControl ? control : brotli(control) },
    { codec: Codec.BROTLI, filter: Filter.X86, rawLength: outBytes, data: brotli(difference) },
    { codec: Codec.STORED, filter: Filter.X86, rawLength: 0, data: new Uint8Array(0) },
  ]);
  const digests = blockDigests(source.subarray(0, outBytes));
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();
  const opHash = sha(digests);
  const blobHash = sha(blockDigests(blob));
  const blocks = outBytes / BLOCK;
  const ops: format.Operation[] = [];
  for (let i = 0; i < operations; i++) {
    ops.push({
      type: format.OpType.SOURCE_DIFF, dataOffset: i * blob.length, dataLength: blob.length, dataHash: blobHash, outputHash: opHash,
      sourceHash: opHash, srcExtents: [{ startBlock: 0, blockCount: blocks }], dstExtents: [{ startBlock: i * blocks, blockCount: blocks }],
    });
  }
  const image = createHash('sha256');
  for (let i = 0; i < operations; i++) image.update(digests);
  const manifest: format.Manifest = {
    blockSize: BLOCK, targetSize: operations * outBytes, targetHash: image.digest(), sourceSize: OP_BYTES, sourceHash: sha(blockDigests(source)),
    version: '7.0.0', sourceVersion: '', operations: ops,
  };
  const payload = assemblePayload(manifest, Array.from({ length: operations }, () => blob), [signer.key]);
  const out = { sourcePath: join(dir, 'heavy-source.img'), payloadPath: join(dir, 'heavy.fpatch'), pubkeyPath: join(dir, 'heavy.pub'), operations };
  await fsp.writeFile(out.sourcePath, source);
  await fsp.writeFile(out.payloadPath, payload);
  await fsp.writeFile(out.pubkeyPath, formatPublicKey(signer.pub));
  return out;
}

function blockDigests(data: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(data.length / BLOCK) * 32);
  for (let i = 0; i * BLOCK < data.length; i++) createHash('sha256').update(data.subarray(i * BLOCK, (i + 1) * BLOCK)).digest().copy(out, i * 32);
  return out;
}

/**
 * A full payload of REPLACE_DEFLATE operations that each inflate to 16 MiB (the output limit):
 * zlib's output is the workers' memory here. Writes DIR/deflate.fpatch and DIR/deflate.pub.
 */
export async function writeHeavyDeflate(dir: string, operations = 12): Promise<Omit<HeavyDelta, 'sourcePath'>> {
  const signer = makeKeyPair();
  const output = textBytes(OP_BYTES, 0xdef1a7e);
  const blob = deflateRawSync(output, { level: 1 });
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();
  const digests = blockDigests(output);
  const blocks = OP_BYTES / BLOCK;
  const ops: format.Operation[] = [];
  for (let i = 0; i < operations; i++) {
    ops.push({
      type: format.OpType.REPLACE_DEFLATE, dataOffset: i * blob.length, dataLength: blob.length, dataHash: sha(blockDigests(blob)), outputHash: sha(digests),
      sourceHash: undefined, srcExtents: [], dstExtents: [{ startBlock: i * blocks, blockCount: blocks }],
    });
  }
  const image = createHash('sha256');
  for (let i = 0; i < operations; i++) image.update(digests);
  const manifest: format.Manifest = {
    blockSize: BLOCK, targetSize: operations * OP_BYTES, targetHash: image.digest(), sourceSize: 0, sourceHash: new Uint8Array(32),
    version: '7.0.1', sourceVersion: '', operations: ops,
  };
  const out = { payloadPath: join(dir, 'deflate.fpatch'), pubkeyPath: join(dir, 'deflate.pub'), operations };
  await fsp.writeFile(out.payloadPath, assemblePayload(manifest, Array.from({ length: operations }, () => blob), [signer.key]));
  await fsp.writeFile(out.pubkeyPath, formatPublicKey(signer.pub));
  return out;
}
