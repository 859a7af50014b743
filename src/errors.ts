/**
 * Errors with a stable string code per failure and the process exit code of its class.
 *
 * The library throws these (and TypeError/RangeError for bad arguments); only the CLI prints them
 * and turns them into exit codes. The table is the one in README.md, "Exit codes".
 */

/** Exit code per failure class; documented in README.md and stable across releases. */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  BAD_SIGNATURE: 3,
  CORRUPT: 4,
  TRUNCATED: 5,
  IO: 6,
  TARGET_TOO_SMALL: 7,
  SOURCE_MISMATCH: 8,
  DISK: 9,
  DOWNGRADE: 10,
  RELEASE_REFUSED: 11,
  LOCK_REFUSED: 12,
} as const;

/** Stable error codes, each mapped to the exit code of its class. */
export const ERROR_CODES = {
  USAGE: EXIT.USAGE,
  BAD_KEY_FILE: EXIT.USAGE,
  /** The payload is signed, but by no key the caller trusts. */
  UNTRUSTED_KEY: EXIT.BAD_SIGNATURE,
  /** A signature by a trusted key does not verify: the header or manifest changed. */
  BAD_SIGNATURE: EXIT.BAD_SIGNATURE,
  /** Malformed structure: bad magic, unknown version, a length or offset out of bounds. */
  CORRUPT_PAYLOAD: EXIT.CORRUPT,
  /** An operation's data or output does not match its signed hash. */
  HASH_MISMATCH: EXIT.CORRUPT,
  /** A release repository's document (repository.json, a release record, a channel) is malformed. */
  CORRUPT_DOCUMENT: EXIT.CORRUPT,
  /** The payload ended before every byte the manifest announced arrived. */
  TRUNCATED_PAYLOAD: EXIT.TRUNCATED,
  IO: EXIT.IO,
  TARGET_TOO_SMALL: EXIT.TARGET_TOO_SMALL,
  /** A delta's source image is not the one it was made from (size, or the blocks an operation reads). */
  SOURCE_MISMATCH: EXIT.SOURCE_MISMATCH,
  /** The disk's GPT is corrupt, or its two copies disagree: nothing is changed until it is repaired. */
  GPT_CORRUPT: EXIT.DISK,
  /** A GPT structure shorter than its header says (an entry array or header sector cut short). */
  GPT_TRUNCATED: EXIT.DISK,
  /** A GPT FastPatch will not write: a header size other than 92 bytes or a revision other than 1.0. */
  GPT_UNSUPPORTED: EXIT.DISK,
  /** A slot change was refused because it would leave no bootable slot or drop the running one's fallback. */
  GPT_UNSAFE: EXIT.DISK,
  /**
   * The payload's release is older than the one the device runs (update without --allow-downgrade),
   * or the running release is unknown (no status record, under UNKNOWN_RELEASE=refuse) or its record is unreadable.
   */
  DOWNGRADE: EXIT.DOWNGRADE,
  /**
   * A release repository refused a change: a promotion from a channel that never carried the
   * release, a channel moved backwards without --force, a version added twice, an add to a
   * channel other than the lowest.
   */
  RELEASE_REFUSED: EXIT.RELEASE_REFUSED,
  /**
   * The reboot semaphore refused a change: no slot free for `lock acquire`, or `lock release
   * --since` of a holder that took its slot again since. A state, not a fault: wait, or look first.
   */
  LOCK_REFUSED: EXIT.LOCK_REFUSED,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A failure caused by data (payload, key, device), not by a bug. `code` is stable; `message` is one line. */
export class FastPatchError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FastPatchError';
    this.code = code;
  }
  /** The process exit code for this error's class. */
  get exitCode(): number {
    return ERROR_CODES[this.code];
  }
}

/** Wraps a Node I/O error (ENOENT, EACCES, EIO...) as FastPatchError('IO') naming what was being done. */
export function ioError(what: string, cause: unknown): FastPatchError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new FastPatchError('IO', `${what}: ${detail}`, { cause });
}
