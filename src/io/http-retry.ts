/**
 * What follows a failed attempt: the final error, or a retry after a doubling backoff.
 * docs/HTTP.md ("Retries and backoff", "A wrong URL fails in seconds") documents the policy.
 */
import { FastPatchError } from '../errors.js';
import { codeOf, isRetryable, reasonOf, retryHintsOf, UNREACHED_CODE } from './http-failures.js';
import type { CheckedOptions, HttpRetryInfo } from './http-options.js';
import type { Transfer } from './http-transfer.js';

/**
 * Decides what follows `err`, the failure of attempt `t.attempts`: throws the error that ends the
 * transfer (the signal's reason once it aborted, a failure another request cannot fix, or one
 * failure in a row too many); else counts the failure, tells `onRetry` and returns the wait before
 * the next request, ms.
 */
export function retryDelayAfter(t: Transfer, err: unknown, onRetry: ((info: HttpRetryInfo) => void) | undefined): number {
  if (t.signal?.aborted) throw t.signal.reason;
  const code = codeOf(err);
  const error = err as Error;
  const hints = retryHintsOf(err);
  // A host name that does not resolve, before the server ever answered: a typo, not an outage.
  if (!t.answered && code === 'ENOTFOUND') throw t.fail(`${reasonOf(error)}; check the host name in the URL`);
  if (!isRetryable(err)) {
    if (err instanceof FastPatchError) throw err;
    throw new FastPatchError('IO', `download ${t.name}: ${reasonOf(error)}`, { cause: err });
  }
  t.failures++;
  // A server that accepts connections but never answers (a wrong port, a firewall that
  // swallows them) is as unreached as one that refuses them.
  const unreached = !t.answered && ((code !== undefined && UNREACHED_CODE.has(code)) || hints?.noResponse === true);
  const limit = unreached ? t.opts.unreachableRetries : t.opts.retries;
  if (hints?.slow) {
    t.slowStreak = true;
    t.rate.restart(t.clock(), t.offset);
  }
  if (t.failures > limit) throw giveUpError(t, error, unreached);
  const delayMs = backoffMs(t.opts, t.failures, hints?.retryAfterMs);
  onRetry?.({ attempt: t.attempts, failures: t.failures, offset: t.offset, delayMs, error, reason: reasonOf(error), limit });
  return delayMs;
}

/** The final error after one failure in a row too many; `unreached` when the server never answered. */
function giveUpError(t: Transfer, err: Error, unreached: boolean): FastPatchError {
  if (unreached) {
    return new FastPatchError('IO', `download ${t.name}: ${reasonOf(err)}; gave up after ${plural(t.attempts, 'attempt')}: check the URL and that the server is up (--retries and --timeout set how long to try)`, { cause: err });
  }
  return new FastPatchError(
    'IO',
    `download ${t.name}: gave up at byte ${t.offset} after ${plural(t.attempts, 'attempt')} (${plural(t.failures, 'failure')} in a row): last error: ${reasonOf(err)}; once the server answers again, the same command with --resume fetches only what is missing (--retries and --timeout set how long to try)`,
    { cause: err },
  );
}

/** The wait before the next request after `failures` failures in a row, ms; `retryAfterMs` is the server's wish. */
function backoffMs(opts: CheckedOptions, failures: number, retryAfterMs: number | undefined): number {
  // Doubling backoff with jitter (half fixed, half random) so that many devices dropped by
  // the same outage do not come back in lockstep; a server's Retry-After is honoured up to the cap.
  const base = Math.min(opts.backoffMs * 2 ** (failures - 1), opts.maxBackoffMs);
  const jittered = Math.round(base / 2 + Math.random() * (base / 2));
  const retryAfter = retryAfterMs !== undefined ? Math.min(retryAfterMs, opts.maxBackoffMs) : 0;
  return Math.max(jittered, retryAfter);
}

/** `1 attempt`, `4 attempts`. */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
