/**
 * Omaha v3's numbers and status strings as CoreOS's update_engine and Nebraska use them
 * (../shared/reference/fleet-updates.md §1.3-§1.4; docs/OMAHA.md).
 */

/** The OS app id CoreOS and Flatcar send (`app@appid`); FastPatch devices send their own. */
export const COREOS_APP_ID = '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}';

/** `event@eventtype`: the ones update_engine sends. */
export const EVENT_TYPE = {
  UPDATE_COMPLETE: 3,
  UPDATE_DOWNLOAD_STARTED: 13,
  UPDATE_DOWNLOAD_FINISHED: 14,
} as const;

/** `event@eventresult`. */
export const EVENT_RESULT = {
  ERROR: 0,
  SUCCESS: 1,
  SUCCESS_REBOOT: 2,
  UPDATE_DEFERRED: 9,
} as const;

/** `event@errorcode` update_engine sends with 3/0 when it booted back into the release it updated from. */
export const ERROR_CODE_ROLLBACK = 44;

/** `app@status` values a server answers. */
export const APP_STATUS = ['ok', 'restricted', 'error-unknownApplication', 'error-invalidAppId', 'error-invalidVersion', 'error-internal'] as const;
export type AppStatus = (typeof APP_STATUS)[number];

/** `updatecheck@status` values; update_engine takes anything but `ok` and `noupdate` as a failed check. */
export const UPDATECHECK_STATUS = ['ok', 'noupdate', 'error-osnotsupported', 'error-unsupportedProtocol', 'error-hash', 'error-internal'] as const;
export type UpdateCheckStatus = (typeof UPDATECHECK_STATUS)[number];
