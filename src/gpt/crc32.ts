/**
 * CRC-32/ISO-HDLC (the zlib/Ethernet CRC), as the UEFI GPT headers and entry arrays use it:
 * reflected polynomial 0xEDB88320, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF.
 * crc32("123456789") = 0xCBF43926. Stored on disk as a little-endian u32.
 */

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * Continues a CRC over `bytes`: pass the previous result as `crc` (0 to start). Returns an unsigned
 * 32-bit number. `crc32Update(crc32Update(0, a), b)` equals `crc32(a ++ b)`.
 */
export function crc32Update(crc: number, bytes: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    c = (TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  }
  return ~c >>> 0;
}

/** CRC-32 of `bytes` (an unsigned 32-bit number). The buffer is only read. */
export function crc32(bytes: Uint8Array): number {
  return crc32Update(0, bytes);
}
