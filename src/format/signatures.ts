import { FastPatchError } from '../errors.js';
import { KEY_ID_SIZE, LIMITS, SIGNATURE_ENTRY_SIZE, SIGNATURE_SIZE } from './constants.js';

/** One entry of the signature block: which key signed, and the ed25519 signature (RFC 8032). */
export interface SignatureEntry {
  keyId: Uint8Array;
  signature: Uint8Array;
}

/** Size in bytes of a signature block holding `count` signatures. */
export function signaturesSize(count: number): number {
  return 4 + count * SIGNATURE_ENTRY_SIZE;
}

/** Serializes the signature block: u16 count, u16 reserved (0), then the entries. */
export function encodeSignatures(entries: readonly SignatureEntry[]): Uint8Array {
  if (entries.length < 1 || entries.length > LIMITS.MAX_SIGNATURES) {
    throw new RangeError(`entries: 1..${LIMITS.MAX_SIGNATURES} signatures, got ${entries.length}`);
  }
  const out = new Uint8Array(signaturesSize(entries.length));
  new DataView(out.buffer).setUint16(0, entries.length, true);
  entries.forEach((e, i) => {
    if (e.keyId.length !== KEY_ID_SIZE || e.signature.length !== SIGNATURE_SIZE) throw new RangeError('entries: bad key id or signature length');
    out.set(e.keyId, 4 + i * SIGNATURE_ENTRY_SIZE);
    out.set(e.signature, 4 + i * SIGNATURE_ENTRY_SIZE + KEY_ID_SIZE);
  });
  return out;
}

/** Parses a signature block whose size the header already bounded. Entries are views into `bytes`. */
export function decodeSignatures(bytes: Uint8Array): SignatureEntry[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = v.getUint16(0, true);
  if (v.getUint16(2, true) !== 0) throw new FastPatchError('CORRUPT_PAYLOAD', 'signature block reserved field is not zero');
  if (signaturesSize(count) !== bytes.length) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `signature block holds ${bytes.length} bytes but counts ${count} signatures`);
  }
  const entries: SignatureEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = 4 + i * SIGNATURE_ENTRY_SIZE;
    entries.push({ keyId: bytes.subarray(at, at + KEY_ID_SIZE), signature: bytes.subarray(at + KEY_ID_SIZE, at + SIGNATURE_ENTRY_SIZE) });
  }
  return entries;
}
