import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { FastPatchError, ioError } from '../errors.js';
import { writeAllAt } from '../io/device.js';
import { FORMAT_VERSION } from '../format/constants.js';
import { encodeHeader } from '../format/header.js';
import { encodeManifest, operationStats, type Manifest, type OperationStats } from '../format/manifest.js';
import { encodeSignatures, signaturesSize } from '../format/signatures.js';
import { hex } from '../hex.js';
import { type PrivateKey } from '../sign/keys.js';
import { signPayload } from '../sign/signer.js';

/** What generating a payload (full or delta) reports. */
export interface GenerateResult {
  version: string;
  targetSize: number;
  targetHash: string;
  payload: PayloadLayout;
  operations: Record<string, OperationStats>;
  keyIds: string[];
  seconds: number;
}

/**
 * Writes the payload (writePayload) and describes it; `started` is the performance.now() at which
 * generating began.
 */
export async function writeAndDescribe(outPath: string, manifest: Manifest, dataPath: string, dataSize: number, keys: readonly PrivateKey[], started: number): Promise<GenerateResult> {
  const payload = await writePayload(outPath, manifest, dataPath, dataSize, keys);
  return {
    version: manifest.version,
    targetSize: manifest.targetSize,
    targetHash: hex(manifest.targetHash),
    payload,
    operations: operationStats(manifest),
    keyIds: keys.map((k) => hex(k.keyId)),
    seconds: (performance.now() - started) / 1000,
  };
}

/** Sizes of the parts of a written payload. */
export interface PayloadLayout {
  headerSize: number;
  manifestSize: number;
  signaturesSize: number;
  dataSize: number;
  totalSize: number;
}

/**
 * Writes header, manifest and signature block, then the data section copied from `dataPath`, to
 * `outPath` atomically (a temporary file renamed into place after fsync). Throws FastPatchError('IO').
 */
export async function writePayload(outPath: string, manifest: Manifest, dataPath: string, dataSize: number, keys: readonly PrivateKey[]): Promise<PayloadLayout> {
  const manifestBytes = encodeManifest(manifest);
  const sigSize = signaturesSize(keys.length);
  const header = encodeHeader({ version: FORMAT_VERSION, manifestSize: manifestBytes.length, signaturesSize: sigSize, dataSize });
  const signatures = encodeSignatures(signPayload(header, manifestBytes, keys));
  const tmp = `${outPath}.tmp-${process.pid}`;
  try {
    const out = await fsp.open(tmp, 'w', 0o644);
    try {
      await writeAllAt(out, header, 0, tmp);
      await writeAllAt(out, manifestBytes, header.length, tmp);
      await writeAllAt(out, signatures, header.length + manifestBytes.length, tmp);
    } finally {
      await out.close();
    }
    await pipeline(createReadStream(dataPath, { highWaterMark: 4 << 20 }), createWriteStream(tmp, { flags: 'a' }));
    const done = await fsp.open(tmp, 'r+');
    try {
      await done.sync();
    } finally {
      await done.close();
    }
    await fsp.rename(tmp, outPath);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err instanceof FastPatchError ? err : ioError(`write payload ${outPath}`, err);
  }
  const totalSize = header.length + manifestBytes.length + sigSize + dataSize;
  return { headerSize: header.length, manifestSize: manifestBytes.length, signaturesSize: sigSize, dataSize, totalSize };
}
