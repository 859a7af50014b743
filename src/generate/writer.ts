import { promises as fsp } from 'node:fs';
import { FastPatchError, ioError } from '../errors.js';
import { writeAllAt } from '../io/device.js';
import { commitTemp, createTempBeside, discardTemp, type TempFile } from '../io/safe-files.js';
import { formatVersionFor } from '../format/constants.js';
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
 * Refuses an existing `outPath` unless `force` (an existing symlink, even a dangling one, counts),
 * then creates the temporary file the data section is written to, beside `outPath` (same
 * filesystem), exclusively and under an unguessable name (io/safe-files.ts). Checking first means a
 * refused run costs nothing and a missing folder is reported, naming `outPath`, before any work;
 * writePayload checks again atomically. The caller writes through `temp.handle` and always calls
 * discardTemp. Throws FastPatchError('IO').
 */
export async function createDataTemp(outPath: string, force: boolean): Promise<TempFile> {
  if (!force) {
    const exists = await fsp.lstat(outPath).then(() => true, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw ioError(`check ${outPath}`, err);
    });
    // A folder is a wrong name, not a file to keep: createTempBeside says so (USAGE).
    const folder = exists && (await fsp.stat(outPath).then((s) => s.isDirectory(), () => false));
    if (exists && !folder) throw new FastPatchError('IO', `refusing to overwrite ${outPath}: it exists (use --force to replace it)`);
  }
  return createTempBeside(outPath, 0o600);
}

/**
 * Writes the payload (writePayload) and describes it; `started` is the performance.now() at which
 * generating began.
 */
export async function writeAndDescribe(outPath: string, manifest: Manifest, data: fsp.FileHandle, dataSize: number, keys: readonly PrivateKey[], started: number, force: boolean): Promise<GenerateResult> {
  const payload = await writePayload(outPath, manifest, data, dataSize, keys, force);
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

/** Bytes copied from the data file per read. */
const COPY_CHUNK = 4 << 20;

/**
 * Writes header, manifest and signature block, then the first `dataSize` bytes read from `data`
 * (through the handle, never reopened by name), to a new temporary file beside `outPath`
 * (io/safe-files.ts: exclusive, unguessable name), fsyncs it and renames it into place. Unless
 * `force`, an existing `outPath` is refused atomically (at the rename). Throws FastPatchError('IO').
 */
export async function writePayload(outPath: string, manifest: Manifest, data: fsp.FileHandle, dataSize: number, keys: readonly PrivateKey[], force = false): Promise<PayloadLayout> {
  const manifestBytes = encodeManifest(manifest);
  const sigSize = signaturesSize(keys.length);
  const header = encodeHeader({ version: formatVersionFor(manifest.operations.map((op) => op.type)), manifestSize: manifestBytes.length, signaturesSize: sigSize, dataSize });
  const signatures = encodeSignatures(signPayload(header, manifestBytes, keys));
  const head = header.length + manifestBytes.length + sigSize;
  const temp = await createTempBeside(outPath, 0o644);
  try {
    await writeAllAt(temp.handle, header, 0, outPath);
    await writeAllAt(temp.handle, manifestBytes, header.length, outPath);
    await writeAllAt(temp.handle, signatures, header.length + manifestBytes.length, outPath);
    const buffer = new Uint8Array(Math.min(COPY_CHUNK, Math.max(dataSize, 1)));
    for (let done = 0; done < dataSize;) {
      const want = Math.min(buffer.length, dataSize - done);
      const { bytesRead } = await data.read(buffer, 0, want, done);
      if (bytesRead === 0) throw new FastPatchError('IO', `write payload ${outPath}: the data file ended at ${done} of ${dataSize} bytes`);
      await writeAllAt(temp.handle, buffer.subarray(0, bytesRead), head + done, outPath);
      done += bytesRead;
    }
  } catch (err) {
    await discardTemp(temp);
    throw err instanceof FastPatchError ? err : ioError(`write payload ${outPath}`, err);
  }
  await commitTemp(temp, force ? {} : { noReplace: true });
  return { headerSize: header.length, manifestSize: manifestBytes.length, signaturesSize: sigSize, dataSize, totalSize: head + dataSize };
}
