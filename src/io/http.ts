/**
 * Payload bytes from an http:// or https:// URL, streamed with bounded memory and resumed after
 * drops with Range requests. The behaviour (what is retried, backoff, Range, If-Range) is
 * documented in docs/HTTP.md; the comments here say why.
 */
import { FastPatchError } from '../errors.js';
import { readBody } from './http-body.js';
import { formatMs, retryable, shown } from './http-failures.js';
import { checkOptions, type HttpChunksOptions } from './http-options.js';
import { Exchange, getFollowing } from './http-request.js';
import { checkResponse, requestHeaders } from './http-response.js';
import { retryDelayAfter, sleep } from './http-retry.js';
import { Transfer } from './http-transfer.js';

export { HTTP_DEFAULTS, MAX_TIMER_MS, type HttpChunksOptions, type HttpRetryInfo } from './http-options.js';

/** True for the strings readPayloadChunks hands to httpChunks. */
export function isHttpUrl(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/** `signal` and `deadline` as one signal: aborted when either is. */
function eitherSignal(signal: AbortSignal | undefined, deadline: AbortSignal | undefined): AbortSignal | undefined {
  if (!signal || !deadline) return signal ?? deadline;
  return AbortSignal.any([signal, deadline]);
}

/**
 * The bytes of the resource at `url` from offset `from` to its end, as the server sends them
 * (chunks are fresh buffers owned by the consumer). Memory stays bounded: the body is read with
 * backpressure, chunk by chunk, and never accumulated.
 *
 * A dropped connection, a stall, a short body, a transfer slower than `minRateBytesPerSec` or a
 * 5xx/408/429 answer is retried with `Range: bytes=OFFSET-` and `If-Range`, after a doubling
 * backoff; `retries` failures in a row without progress end it with FastPatchError('IO'). A server
 * never reached (refused, unreachable) gets only `unreachableRetries`, a host name that does not
 * resolve none. A server that ignores Range is handled by discarding the bytes before OFFSET as
 * they arrive. A payload replaced on the server during the transfer (other ETag/Last-Modified, or
 * other size), 4xx answers, bad redirects, TLS verification failures and a passed `deadlineMs` are
 * FastPatchError('IO') at once. A URL that does not parse is FastPatchError('USAGE').
 */
export async function* httpChunks(url: string, options: HttpChunksOptions = {}): AsyncGenerator<Uint8Array> {
  let origin: URL;
  try {
    origin = new URL(url);
  } catch {
    throw new FastPatchError('USAGE', `not a valid URL: ${url}`);
  }
  if (origin.protocol !== 'http:' && origin.protocol !== 'https:') {
    throw new FastPatchError('USAGE', `not an http:// or https:// URL: ${shown(origin)}`);
  }
  const opts = checkOptions(options);
  const { onRetry } = options;

  // The deadline aborts like the caller's signal, with its own reason: a final error, never retried.
  const deadline = opts.deadlineMs === undefined ? undefined : new AbortController();
  const signal = eitherSignal(options.signal, deadline?.signal);
  const t = new Transfer(origin, opts, signal);
  const deadlineTimer = deadline && setTimeout(() => deadline.abort(deadlineError(url, opts.deadlineMs!, t.offset)), opts.deadlineMs);

  try {
    for (;;) {
      signal?.throwIfAborted();
      t.attempts++;
      const exchange = new Exchange();
      const onAbort = () => exchange.destroy(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        if (yield* requestAttempt(t, exchange)) return;
      } catch (err) {
        await sleep(retryDelayAfter(t, err, onRetry), signal);
      } finally {
        signal?.removeEventListener('abort', onAbort);
        exchange.destroy();
      }
    }
  } finally {
    clearTimeout(deadlineTimer);
  }
}

/**
 * One attempt of `t`: a GET for the bytes from `t.offset`, the checks of its answer, and its body,
 * whose new bytes it yields. Returns true when the payload is complete, false when a further
 * request must continue it (a server that sent less than the rest); throws as the steps do.
 */
async function* requestAttempt(t: Transfer, exchange: Exchange): AsyncGenerator<Uint8Array, boolean> {
  const res = await getFollowing(t.origin, requestHeaders(t), { stallTimeoutMs: t.opts.stallTimeoutMs, signal: t.signal }, exchange);
  t.answered = true;
  const plan = checkResponse(t, res);
  // A 416 for `from` exactly at the end: the payload is complete.
  if (plan === undefined) return true;
  const progressed = yield* readBody(t, res, plan);
  // A 200 of unknown length that ended cleanly is the whole payload. Otherwise a server may
  // send less than asked (a 206 of a smaller range) and the next request continues.
  if (t.total === undefined || t.offset >= t.total) {
    t.signal?.throwIfAborted();
    return true;
  }
  if (!progressed) throw retryable(`the server sent no bytes after offset ${t.offset}`);
  return false;
}

/**
 * The error of a passed deadline (final: not retried), for httpChunks and openPayload. `url` is
 * shown without credentials or query; `offset`, when known, is where the transfer stood.
 */
export function deadlineError(url: string, deadlineMs: number, offset?: number): FastPatchError {
  let name = url;
  try {
    name = shown(new URL(url));
  } catch {
    // Shown as given; httpChunks refuses it anyway.
  }
  const at = offset === undefined ? '' : ` (at byte ${offset})`;
  return new FastPatchError('IO', `download ${name}: not finished within the ${formatMs(deadlineMs)} deadline${at}; allow more time (--timeout), or use a faster link`);
}
