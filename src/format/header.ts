import { FastPatchError } from '../errors.js';
import { FORMAT_VERSION, HEADER_SIZE, MIN_FORMAT_VERSION, LIMITS, MAGIC, SIGNATURE_ENTRY_SIZE } from './constants.js';

/**
 * The fixed 32-byte header (docs/FORMAT.md, "Header"), all integers little-endian:
 * magic[8] | u32 version | u32 manifestSize | u32 signaturesSize | u32 flags (0) | u64 dataSize
 */
export interface Header {
  version: number;
  manifestSize: number;
  signaturesSize: number;
  dataSize: number;
}

/** Serializes a header into a new 32-byte array. */
export function encodeHeader(h: Header): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  const v = new DataView(out.buffer);
  out.set(MAGIC, 0);
  v.setUint32(8, h.version, true);
  v.setUint32(12, h.manifestSize, true);
  v.setUint32(16, h.signaturesSize, true);
  v.setUint32(20, 0, true);
  v.setBigUint64(24, BigInt(h.dataSize), true);
  return out;
}

/**
 * Parses and bounds-checks the header from the first 32 bytes of `bytes`.
 * Returns the number of bytes still needed when fewer than 32 are given.
 * Throws FastPatchError('CORRUPT_PAYLOAD') on bad magic, version, flags or sizes.
 */
export function decodeHeader(bytes: Uint8Array): Header | { need: number } {
  if (bytes.length < HEADER_SIZE) return { need: HEADER_SIZE - bytes.length };
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new FastPatchError('CORRUPT_PAYLOAD', 'not a FastPatch payload (bad magic)');
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const version = v.getUint32(8, true);
  if (version < MIN_FORMAT_VERSION || version > FORMAT_VERSION) {
    const hint = version > FORMAT_VERSION ? ': it was made by a newer fastpatch; update fastpatch on this device to apply it' : '';
    throw new FastPatchError('CORRUPT_PAYLOAD', `unsupported payload format version ${version} (this build reads ${MIN_FORMAT_VERSION}..${FORMAT_VERSION})${hint}`);
  }
  const manifestSize = v.getUint32(12, true);
  const signaturesSize = v.getUint32(16, true);
  const flags = v.getUint32(20, true);
  const dataSize = v.getBigUint64(24, true);
  if (flags !== 0) throw new FastPatchError('CORRUPT_PAYLOAD', `unknown header flags 0x${flags.toString(16)}`);
  if (manifestSize === 0 || manifestSize > LIMITS.MAX_MANIFEST_SIZE) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `manifest size ${manifestSize} out of range (1..${LIMITS.MAX_MANIFEST_SIZE})`);
  }
  const sigCount = (signaturesSize - 4) / SIGNATURE_ENTRY_SIZE;
  if (!Number.isInteger(sigCount) || sigCount < 1 || sigCount > LIMITS.MAX_SIGNATURES) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `signature block size ${signaturesSize} is not 4 + 72 × (1..${LIMITS.MAX_SIGNATURES})`);
  }
  if (dataSize > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `data section size ${dataSize} out of range`);
  }
  return { version, manifestSize, signaturesSize, dataSize: Number(dataSize) };
}
