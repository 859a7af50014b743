/** Lower-case hex of bytes: how hashes and key ids are printed everywhere (no imports: any layer may use it). */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
