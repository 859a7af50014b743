// Fixed memory layout of the FastPatch core: the ABI shared with src/wasm/layout.ts.
//
// The module never allocates: every buffer it reads or writes is one of the fixed regions
// below, and JS finds them through the exported getters instead of hard-coding offsets.
// Change any offset or size here and bump ABI_VERSION, so a stale JS wrapper refuses to run.
//
//   0x000000  static data (K table, padding schedule), at most STATIC_LIMIT bytes
//   0x010000  STATE     streaming SHA-256 state slot (JS copies a hasher's state in and out)
//   0x011000  SCHEDULE  scratch: message schedules, lane states, an internal state slot
//   0x020000  WINDOW    4 MiB input window (64 KiB aligned)
//   0x420000  DIGEST    one 32-byte digest per 4096-byte block of the window
//   0x428000  FLAGS     one byte per 4096-byte block of the window
//   0x428400  end; memory is 67 pages (asconfig.json initialMemory = maximumMemory = 67)

/** Version of this layout and of the exports' meaning; JS refuses a module with another one. */
export const ABI_VERSION: i32 = 1;

/** Bytes per block: the unit of per-block hashing and zero detection. */
export const BLOCK_SIZE: usize = 4096;

/** Bytes of one SHA-256 digest. */
export const DIGEST_SIZE: usize = 32;

/** Static data (AS data segments) must end below this offset; checked by JS via layoutStaticEnd(). */
export const STATIC_LIMIT: usize = 0x10000;

/**
 * SHA-256 state slot, STATE_SIZE bytes (104 used), all fields little-endian:
 *   [0, 32)    H[0..7]  u32 chaining value
 *   [32, 96)   pending  up to 63 bytes of input not yet compressed
 *   [96, 104)  count    u64 total bytes absorbed; pending length = count % 64
 */
export const STATE_OFFSET: usize = 0x10000;
export const STATE_SIZE: usize = 128;
/** Field offsets inside a state slot. */
export const STATE_H: usize = 0;
export const STATE_PENDING: usize = 32;
export const STATE_COUNT: usize = 96;
/** Bytes of a state slot that carry information (what JS must save and restore). */
export const STATE_USED: usize = 104;

/**
 * Scratch for the message schedule and per-call temporaries; contents are undefined between calls.
 * The four-block and the eight-block kernel (sha256x4.ts) each have their own layout of [0, 2304);
 * a call runs one kernel at a time, so the two overlap.
 *   four blocks:
 *   [0, 1024)      W[0..63] as v128 (lane k = block k)
 *   [1024, 2048)   W[i] + K[i] as v128, what the rounds consume
 *   [2048, 2176)   H[0..7] as v128, the four lanes' chaining values
 *   [2176, 2304)   working variables a..h as v128 between the two halves of a compression
 *   eight blocks (two groups of four lanes):
 *   [0, 2048)      W[0..63] as v128 of group 0 (blocks 0-3), then of group 1 (blocks 4-7)
 *   [2048, 2304)   H[0..7] as v128 of group 0, then of group 1
 *   both:
 *   [2304, 2432)   internal scalar state slot (hashBlocks' leftover and short pieces)
 *   [2432, 2496)   where each v128 round stores its new a and e (written, never read: the stores
 *                  fix V8's instruction order, see sha256x4.ts)
 * These sub-offsets are internal: JS only sees SCHEDULE_OFFSET and SCHEDULE_SIZE.
 */
export const SCHEDULE_OFFSET: usize = 0x11000;
export const SCHEDULE_SIZE: usize = 0x1000;
export const SCHED_W: usize = SCHEDULE_OFFSET;
export const SCHED_KW: usize = SCHEDULE_OFFSET + 1024;
export const SCHED_LANE_H: usize = SCHEDULE_OFFSET + 2048;
export const SCHED_LANE_WORK: usize = SCHEDULE_OFFSET + 2176;
export const SCHED_STATE: usize = SCHEDULE_OFFSET + 2304;
/** Eight-block kernel: W of both groups (group g at SCHED_W8 + 1024 g). */
export const SCHED_W8: usize = SCHEDULE_OFFSET;
/** Eight-block kernel: H of both groups (group g at SCHED_LANE_H8 + 128 g). */
export const SCHED_LANE_H8: usize = SCHEDULE_OFFSET + 2048;
/** Both v128 kernels: the rounds' ordering stores (group g's a at +32 g, its e at +32 g + 16). */
export const SCHED_PIN: usize = SCHEDULE_OFFSET + 2432;

/** Input window: JS writes data here (or reads files straight into it). */
export const WINDOW_OFFSET: usize = 0x20000;
export const WINDOW_SIZE: usize = 4 << 20;

/** Per-block digests of the window: (WINDOW_SIZE / BLOCK_SIZE) * 32 bytes. */
export const DIGEST_OFFSET: usize = WINDOW_OFFSET + WINDOW_SIZE;
export const DIGEST_REGION_SIZE: usize = (WINDOW_SIZE / BLOCK_SIZE) * DIGEST_SIZE;

/** Per-block flags of the window: WINDOW_SIZE / BLOCK_SIZE bytes. */
export const FLAGS_OFFSET: usize = DIGEST_OFFSET + DIGEST_REGION_SIZE;
export const FLAGS_SIZE: usize = WINDOW_SIZE / BLOCK_SIZE;

/** First byte past the last region; must fit the module's fixed memory. */
export const LAYOUT_END: usize = FLAGS_OFFSET + FLAGS_SIZE;

/** ABI version of this module (see ABI_VERSION). */
export function abiVersion(): i32 { return ABI_VERSION; }
/** Bytes per block (4096). */
export function layoutBlockSize(): usize { return BLOCK_SIZE; }
/** End of static data; JS checks it is at most layoutStateOffset(). */
export function layoutStaticEnd(): usize { return __heap_base; }
/** Byte offset of the SHA-256 state slot. */
export function layoutStateOffset(): usize { return STATE_OFFSET; }
/** Bytes of the state slot JS must copy to save or restore a hasher (104). */
export function layoutStateSize(): usize { return STATE_USED; }
/** Byte offset of the schedule scratch region. */
export function layoutScheduleOffset(): usize { return SCHEDULE_OFFSET; }
/** Bytes of the schedule scratch region. */
export function layoutScheduleSize(): usize { return SCHEDULE_SIZE; }
/** Byte offset of the input window (a multiple of 65536). */
export function layoutWindowOffset(): usize { return WINDOW_OFFSET; }
/** Bytes of the input window (4 MiB). */
export function layoutWindowSize(): usize { return WINDOW_SIZE; }
/** Byte offset of the digest region. */
export function layoutDigestOffset(): usize { return DIGEST_OFFSET; }
/** Bytes of the digest region (32 per window block). */
export function layoutDigestSize(): usize { return DIGEST_REGION_SIZE; }
/** Byte offset of the flags region. */
export function layoutFlagsOffset(): usize { return FLAGS_OFFSET; }
/** Bytes of the flags region (1 per window block). */
export function layoutFlagsSize(): usize { return FLAGS_SIZE; }
/** First byte past the layout. */
export function layoutEnd(): usize { return LAYOUT_END; }
