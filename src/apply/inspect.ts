import { FastPatchError } from '../errors.js';
import { HEADER_SIZE } from '../format/constants.js';
import { operationStats, type OperationStats } from '../format/manifest.js';
import { hex } from '../hex.js';
import { type PrivateKey, type PublicKey } from '../sign/keys.js';
import { verifyPayload } from '../sign/signer.js';
import { PayloadReader, type PayloadHead } from './reader.js';

export interface PayloadInfo {
  formatVersion: number;
  version: string;
  blockSize: number;
  targetSize: number;
  targetHash: string;
  /** null for a full payload. */
  source: { size: number; hash: string; version: string | null } | null;
  /**
   * Key ids the payload claims to be signed by, as read: NOT verified (anyone can write any key
   * id). Only verifiedBy says a signature was checked.
   */
  signatures: { keyId: string }[];
  /** Key id whose signature verified, when trusted keys were given; null when nothing was checked. */
  verifiedBy: string | null;
  sizes: { header: number; manifest: number; signatures: number; data: number; total: number };
  operations: { total: number; byType: Record<string, OperationStats> };
}

/**
 * Reads only the head of a payload (header, manifest, signatures) and describes it. With
 * trustedKeys, the signature is verified too. Throws FastPatchError.
 */
export async function inspectPayload(chunks: AsyncIterable<Uint8Array>, trustedKeys: readonly (PublicKey | PrivateKey)[] = []): Promise<PayloadInfo> {
  let verifiedBy: string | null = null;
  const reader = new PayloadReader(
    trustedKeys.length === 0
      ? undefined
      : (header, manifest, signatures) => void (verifiedBy = verifyPayload(header, manifest, signatures, trustedKeys).keyId),
  );
  let head: PayloadHead | undefined;
  for await (const chunk of chunks) {
    // Feed only up to the end of the head: inspect never reads the data section.
    let at = 0;
    while (!head && at < chunk.length) {
      const n = Math.min(reader.need, chunk.length - at);
      for (const e of reader.push(chunk.subarray(at, at + n))) if (e.kind === 'head') head = e.head;
      at += n;
    }
    if (head) break;
  }
  if (!head) {
    throw new FastPatchError('TRUNCATED_PAYLOAD', `payload ends at byte ${reader.offset}, inside its header, manifest or signatures`);
  }
  return describeHead(head, verifiedBy);
}

function describeHead(head: PayloadHead, verifiedBy: string | null): PayloadInfo {
  const m = head.manifest;
  const h = head.header;
  return {
    formatVersion: h.version,
    version: m.version,
    blockSize: m.blockSize,
    targetSize: m.targetSize,
    targetHash: hex(m.targetHash),
    source: m.sourceSize > 0 ? { size: m.sourceSize, hash: hex(m.sourceHash), version: m.sourceVersion || null } : null,
    signatures: head.signatures.map((s) => ({ keyId: hex(s.keyId) })),
    verifiedBy,
    sizes: {
      header: HEADER_SIZE,
      manifest: h.manifestSize,
      signatures: h.signaturesSize,
      data: h.dataSize,
      total: HEADER_SIZE + h.manifestSize + h.signaturesSize + h.dataSize,
    },
    operations: { total: m.operations.length, byType: operationStats(m) },
  };
}
