/**
 * The `errorcode` of a failed update's event (3/0), in update_engine's numbering
 * (../shared/reference/fleet-updates.md §1.4), so a server's failure counts read as Nebraska's do.
 */
import { FastPatchError, type ErrorCode } from '../errors.js';

/** update_engine's action codes FastPatch's failures map to. */
export const UPDATE_ENGINE_CODES = {
  GENERIC: 1,
  DOWNLOAD_TRANSFER: 9,
  PAYLOAD_HASH_MISMATCH: 10,
  PAYLOAD_VERIFICATION: 12,
  NEW_ROOTFS_VERIFICATION: 15,
  RESPONSE_INVALID: 34,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  BAD_SIGNATURE: UPDATE_ENGINE_CODES.PAYLOAD_VERIFICATION,
  UNTRUSTED_KEY: UPDATE_ENGINE_CODES.PAYLOAD_VERIFICATION,
  HASH_MISMATCH: UPDATE_ENGINE_CODES.PAYLOAD_HASH_MISMATCH,
  CORRUPT_PAYLOAD: UPDATE_ENGINE_CODES.PAYLOAD_HASH_MISMATCH,
  TRUNCATED_PAYLOAD: UPDATE_ENGINE_CODES.DOWNLOAD_TRANSFER,
  IO: UPDATE_ENGINE_CODES.DOWNLOAD_TRANSFER,
  SOURCE_MISMATCH: UPDATE_ENGINE_CODES.NEW_ROOTFS_VERIFICATION,
};

/** The error code to report for `err` (GENERIC for anything unmapped). */
export function errorCodeOf(err: unknown): number {
  return err instanceof FastPatchError ? (BY_CODE[err.code] ?? UPDATE_ENGINE_CODES.GENERIC) : UPDATE_ENGINE_CODES.GENERIC;
}
