/** Reused 1 MiB of zeros for writing ZERO operations. */
export const ZERO_CHUNK = new Uint8Array(1024 * 1024);
