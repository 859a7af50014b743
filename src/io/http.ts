/**
 * Payload bytes from an http:// or https:// URL, streamed with bounded memory and resumed after
 * drops with Range requests. The behaviour (what is retried, backoff, Range, If-Range) is
 * documented in docs/HTTP.md; the comments here say why.
 */
import { FastPatchError } from '../errors.js';
import { formatMs, RetryableError, shown } from './http-failures.js';
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
      let progressed = false;
      try {
        const res = await getFollowing(origin, requestHeaders(t), { stallTimeoutMs: opts.stallTimeoutMs, signal }, exchange);
        t.answered = true;
        const plan = checkResponse(t, res);
        // A 416 for `from` exactly at the end: the payload is complete.
        if (plan === undefined) return;
        let { skip } = plan;

        let received = 0;
        const body = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        for (;;) {
          // The stall timer and the rate check run only while we wait for the server, not while the
          // consumer holds a chunk: a slow disk pauses the socket (backpressure) and is not the server's fault.
          const step = await watchServer(body.next(), opts.stallTimeoutMs, rateTickMs(opts.rateWindowMs, opts.stallTimeoutMs), () => t.checkRate(), (err) => res.destroy(err));
          if (step.done) break;
          let chunk: Buffer = step.value;
          received += chunk.length;
          if (skip > 0) {
            // Dropped as it streams: a server ignoring Range costs bandwidth, never memory.
            const drop = Math.min(skip, chunk.length);
            skip -= drop;
            chunk = chunk.subarray(drop);
            if (chunk.length === 0) continue;
          }
          t.offset += chunk.length;
          progressed = true;
          if (!t.slowStreak) t.failures = 0;
          const handedAt = performance.now();
          yield chunk;
          t.consumerMs += performance.now() - handedAt;
          // Judged after the chunk is handed on: a chunk received is never dropped.
          const slow = t.checkRate();
          if (slow) throw slow;
        }
        if (plan.expected !== undefined && received < plan.expected) {
          throw new RetryableError(`the body ended after ${received} of ${plan.expected} bytes`);
        }
        if (skip > 0) throw t.fail(`the server's payload is shorter than the start offset ${t.offset}`);
        // A 200 of unknown length that ended cleanly is the whole payload. Otherwise a server may
        // send less than asked (a 206 of a smaller range) and the next request continues.
        if (t.total === undefined || t.offset >= t.total) {
          signal?.throwIfAborted();
          return;
        }
        if (!progressed) throw new RetryableError(`the server sent no bytes after offset ${t.offset}`);
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

/** How often the rate is judged while waiting for the server: often enough to act within a fraction of the window. */
function rateTickMs(windowMs: number, stallTimeoutMs: number): number {
  return Math.max(1, Math.min(Math.ceil(windowMs / 8), stallTimeoutMs));
}

/**
 * Awaits `step` (a read from the server). After `stallMs` without it settling, or as soon as the
 * periodic `check` (every `tickMs`) returns an error, calls `abort` with that error, which must
 * make `step` settle.
 */
async function watchServer<T>(step: Promise<T>, stallMs: number, tickMs: number, check: () => Error | undefined, abort: (err: Error) => void): Promise<T> {
  const stall = setTimeout(() => abort(new RetryableError(`no data for ${stallMs} ms`)), stallMs);
  const ticker = setInterval(() => {
    const err = check();
    if (err) abort(err);
  }, tickMs);
  try {
    return await step;
  } finally {
    clearTimeout(stall);
    clearInterval(ticker);
  }
}
