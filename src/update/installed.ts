/**
 * Whether a slot already holds a payload's image: for `update --resume` after a power cut that
 * came after the slot was written and flipped. The payload's signature is checked first; then the
 * slot's first targetSize bytes are hashed and compared with the signed image hash. Only the
 * payload's head is read.
 */
import type { ApplyResult } from '../apply/applier.js';
import { inspectPayload } from '../apply/inspect.js';
import { imageRange, openImageForRead } from '../io/device.js';
import { hashOpenImage } from '../apply/hash-image.js';
import { isSeekable, type PayloadInput } from '../io/payload-source.js';
import { hex } from '../hex.js';
import type { PrivateKey, PublicKey } from '../sign/keys.js';
import { WasmCore, type CoreBuild } from '../wasm/core.js';

export async function alreadyInstalled(
  input: PayloadInput,
  options: { disk: string; trustedKeys: readonly (PublicKey | PrivateKey)[]; build?: CoreBuild },
  range: { offset: number; length: number },
): Promise<ApplyResult | undefined> {
  const started = performance.now();
  const info = await inspectPayload(isSeekable(input) ? input.read(0) : input, options.trustedKeys);
  if (info.targetSize > range.length) return undefined;
  const image = await openImageForRead(options.disk);
  try {
    const slot = imageRange(image, range.offset, range.length);
    const hash = hex(await hashOpenImage(WasmCore.load(options.build), slot, info.targetSize));
    if (hash !== info.targetHash) return undefined;
  } finally {
    await image.handle.close();
  }
  return {
    version: info.version,
    targetSize: info.targetSize,
    sourceSize: info.source?.size ?? 0,
    targetHash: info.targetHash,
    keyId: info.verifiedBy ?? '',
    operations: info.operations.total,
    payloadBytes: info.sizes.header + info.sizes.manifest + info.sizes.signatures,
    bytesWritten: 0,
    seconds: (performance.now() - started) / 1000,
    resumed: { operationsSkipped: info.operations.total, bytesSkipped: info.targetSize },
  };
}
