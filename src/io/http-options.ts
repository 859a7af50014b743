/**
 * The options of httpChunks: their defaults, what each means, and the check of their ranges.
 * docs/HTTP.md ("Options of `httpChunks`") documents them.
 */

/** Defaults of HttpChunksOptions. */
export const HTTP_DEFAULTS = {
  retries: 10,
  /** Retries for a server not reached yet (refused, unreachable): a wrong URL must fail in seconds. */
  unreachableRetries: 3,
  backoffMs: 500,
  maxBackoffMs: 30_000,
  stallTimeoutMs: 30_000,
  // 1 KiB/s is 8 kbit/s: below what any cellular data link sustains (GPRS gives 20-50 kbit/s),
  // yet a thousand times a 1-byte-a-second trickle. The window is twice the stall timeout so that
  // a handover or a fade of tens of seconds is averaged out, not taken for a slow link.
  minRateBytesPerSec: 1024,
  rateWindowMs: 60_000,
  maxRedirects: 5,
} as const;

/** What `onRetry` is told before each retry. */
export interface HttpRetryInfo {
  /** Requests made so far (redirects not counted), the failed one included. */
  attempt: number;
  /** Failed requests in a row without a byte of progress, the failed one included (1..retries). */
  failures: number;
  /** Payload offset the next request resumes from. */
  offset: number;
  /** Milliseconds until the next request. */
  delayMs: number;
  /** Why the request failed. */
  error: Error;
  /** The same in a few words for people (`connection refused`, `too slow: 12 B/s ...`); no URL, one line. */
  reason: string;
  /** Failures in a row allowed before giving up (`retries`, or `unreachableRetries` for a server never reached). */
  limit: number;
}

export interface HttpChunksOptions {
  /** First payload byte to yield (a resume from the middle). Default 0. */
  from?: number;
  /**
   * Retries allowed in a row without progress: a request that delivers at least one new byte
   * resets the count, so a transfer dropped any number of times completes as long as every
   * connection moves it forward. Default 10; 0 fails at the first drop.
   */
  retries?: number;
  /** Delay before the first retry of a streak, doubling on each further failure (with jitter). Default 500. */
  backoffMs?: number;
  /** Cap of the doubling delay, and of a server's Retry-After. Default 30,000. */
  maxBackoffMs?: number;
  /** No response headers, or no body byte while we wait for one, for this long is a drop. Default 30,000. */
  stallTimeoutMs?: number;
  /**
   * Retries allowed while the server has not answered once in this call (connection refused, host
   * or network unreachable): most often a wrong URL or port, which must fail in seconds, not after
   * minutes of backoff. Default min(retries, 3). A host name that does not resolve (ENOTFOUND) is
   * not retried at all before the first answer.
   */
  unreachableRetries?: number;
  /**
   * Slowest acceptable transfer, bytes per second, averaged over the last `rateWindowMs` of the
   * transfer (time the consumer holds a chunk excluded; connects, waits and backoffs included).
   * Slower is a drop, resumed with Range; it counts against `retries` until a whole window passes
   * at the minimum rate (delivering bytes alone does not reset the count, or a server sending a
   * byte per connection would never be given up on). Default 1024; 0 turns the check off.
   */
  minRateBytesPerSec?: number;
  /** Window of the rate check, ms. Default 60,000. */
  rateWindowMs?: number;
  /**
   * The whole transfer must end within this many ms of the first request, consumer time
   * included; then FastPatchError('IO') at once, not retried. Default: no deadline (the minimum
   * rate already bounds the time by the payload's size; the right deadline depends on the size and
   * the link, which only the caller knows).
   */
  deadlineMs?: number;
  /** Aborts the transfer (including a backoff wait); the generator then throws the signal's reason. */
  signal?: AbortSignal;
  /** Called before each retry's backoff wait, e.g. to log it. */
  onRetry?: (info: HttpRetryInfo) => void;
}

/** setTimeout's largest delay (2^31 - 1 ms, about 24.8 days): a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** HttpChunksOptions with every default filled in and every range checked. */
export type CheckedOptions = Required<Omit<HttpChunksOptions, 'signal' | 'onRetry' | 'deadlineMs'>> & { deadlineMs: number | undefined };

/** Fills in the defaults; throws RangeError naming an option that is not an integer in its range. */
export function checkOptions(options: HttpChunksOptions): CheckedOptions {
  type Name = 'from' | 'retries' | 'unreachableRetries' | 'backoffMs' | 'maxBackoffMs' | 'stallTimeoutMs' | 'minRateBytesPerSec' | 'rateWindowMs' | 'deadlineMs';
  const pick = (name: Name, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = options[name] ?? fallback;
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`httpChunks: ${name} must be an integer from ${min} to ${max}, got ${v}`);
    return v;
  };
  const retries = pick('retries', HTTP_DEFAULTS.retries, 0);
  return {
    from: pick('from', 0, 0),
    retries,
    unreachableRetries: pick('unreachableRetries', Math.min(retries, HTTP_DEFAULTS.unreachableRetries), 0),
    backoffMs: pick('backoffMs', HTTP_DEFAULTS.backoffMs, 0),
    maxBackoffMs: pick('maxBackoffMs', HTTP_DEFAULTS.maxBackoffMs, 0, MAX_TIMER_MS),
    stallTimeoutMs: pick('stallTimeoutMs', HTTP_DEFAULTS.stallTimeoutMs, 1, MAX_TIMER_MS),
    minRateBytesPerSec: pick('minRateBytesPerSec', HTTP_DEFAULTS.minRateBytesPerSec, 0),
    rateWindowMs: pick('rateWindowMs', HTTP_DEFAULTS.rateWindowMs, 1, MAX_TIMER_MS),
    deadlineMs: options.deadlineMs === undefined ? undefined : pick('deadlineMs', 0, 1, MAX_TIMER_MS),
  };
}
