/** The download flags of apply, verify and update (--retries, --timeout, --min-rate) and the retry notes. */
import { FastPatchError } from '../errors.js';
import type { HttpChunksOptions, HttpRetryInfo } from '../io/http.js';
import { escapeText } from '../text.js';

/** The flags as commander hands them over (whole numbers, parsed by cli.ts). */
export interface HttpFlags {
  retries?: number;
  /** Seconds for the whole download. */
  timeout?: number;
  /** Bytes per second. */
  minRate?: number;
  verbose?: boolean;
}

/** setTimeout's largest delay: a longer one would fire at once. */
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * httpChunks options from the flags. A retry note goes to `stream` when it is a terminal or with
 * --verbose, so a bad URL or a flaky link is never minutes of silence.
 */
export function httpOptions(flags: HttpFlags, stream: NodeJS.WriteStream = process.stderr): HttpChunksOptions {
  if (flags.timeout !== undefined && (flags.timeout < 1 || flags.timeout > MAX_TIMEOUT_SECONDS)) {
    throw new FastPatchError('USAGE', `--timeout expects seconds from 1 to ${MAX_TIMEOUT_SECONDS}, got ${flags.timeout}`);
  }
  const notes = stream.isTTY === true || flags.verbose === true;
  return {
    ...(flags.retries !== undefined ? { retries: flags.retries } : {}),
    ...(flags.timeout !== undefined ? { deadlineMs: flags.timeout * 1000 } : {}),
    ...(flags.minRate !== undefined ? { minRateBytesPerSec: flags.minRate } : {}),
    ...(notes ? { onRetry: (info: HttpRetryInfo) => stream.write(`${stream.isTTY ? '\r\x1b[K' : ''}${retryNote(info)}\n`) } : {}),
  };
}

/** `fastpatch: retrying in 2.0 s after: connection refused (...) (retry 3 of 10, at byte 0)` */
export function retryNote(info: HttpRetryInfo): string {
  return `fastpatch: retrying in ${(info.delayMs / 1000).toFixed(1)} s after: ${escapeText(info.reason)} (retry ${info.failures} of ${info.limit}, at byte ${info.offset})`;
}
