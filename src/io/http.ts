/**
 * Payload bytes from an http:// or https:// URL, streamed with bounded memory and resumed after
 * drops with Range requests. The behaviour (what is retried, backoff, Range, If-Range) is
 * documented in docs/HTTP.md; the comments here say why.
 */
import type { IncomingMessage } from 'node:http';
import { FastPatchError } from '../errors.js';
import { formatMs, RetryableError, shown } from './http-failures.js';
import { checkOptions, type HttpChunksOptions } from './http-options.js';
import { decimal, Exchange, getFollowing, header } from './http-request.js';
import { retryDelayAfter, sleep } from './http-retry.js';
import { Transfer, type Validators } from './http-transfer.js';

export { HTTP_DEFAULTS, MAX_TIMER_MS, type HttpChunksOptions, type HttpRetryInfo } from './http-options.js';

/** True for the strings readPayloadChunks hands to httpChunks. */
export function isHttpUrl(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/** `bytes a-b/T`, `bytes a-b/*` or `bytes * /T` (unsatisfied); undefined if malformed. */
function contentRange(value: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const num = (s: string | undefined) => (s === undefined || s === '*' ? undefined : Number(s));
  return { start: num(m[1]), end: num(m[2]), total: num(m[3]) };
}

function validatorsOf(res: IncomingMessage): Validators {
  const etag = header(res.headers, 'etag');
  const lastModified = header(res.headers, 'last-modified');
  return { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

/**
 * The If-Range value for a resume: a strong ETag, else Last-Modified (RFC 9110 §13.1.5 forbids
 * weak ETags there). The server then answers 206 only if the payload is still the same, and the
 * whole new payload (200) otherwise, which `sameVersion` catches.
 */
function ifRangeOf(v: Validators): string | undefined {
  if (v.etag && !v.etag.startsWith('W/')) return v.etag;
  return v.lastModified;
}

/** Describes how `now` differs from `first`, or undefined when nothing shows a change. */
function versionChange(first: Validators, now: Validators): string | undefined {
  if (first.etag !== undefined && now.etag !== undefined && first.etag !== now.etag) return `ETag ${first.etag} became ${now.etag}`;
  if (first.etag === undefined && first.lastModified !== undefined && now.lastModified !== undefined && first.lastModified !== now.lastModified) {
    return `Last-Modified ${first.lastModified} became ${now.lastModified}`;
  }
  return undefined;
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
        const headers: Record<string, string> = {
          // Byte offsets must count payload bytes, not those of a compressed transfer encoding.
          'accept-encoding': 'identity',
          'user-agent': 'fastpatch',
        };
        if (t.offset > 0) {
          headers.range = `bytes=${t.offset}-`;
          const ifRange = t.first && ifRangeOf(t.first);
          if (ifRange) headers['if-range'] = ifRange;
        }
        const res = await getFollowing(origin, headers, { stallTimeoutMs: opts.stallTimeoutMs, signal }, exchange);
        t.answered = true;
        const status = res.statusCode ?? 0;
        const validators = validatorsOf(res);
        const length = decimal(header(res.headers, 'content-length'));

        /** Bytes of this body to drop before `offset` (a server that ignored Range). */
        let skip = 0;
        /** Bytes this body must carry; fewer is a drop. Undefined for a body of unknown length. */
        let expected: number | undefined;
        let bodyTotal: number | undefined;

        if (status === 200) {
          // The whole payload: the first answer, a server that does not do ranges, or (If-Range) a
          // payload that changed, which the validators tell apart.
          skip = t.offset;
          expected = length;
          bodyTotal = length;
        } else if (status === 206) {
          const range = contentRange(header(res.headers, 'content-range'));
          if (range?.start === undefined || range.end === undefined || range.end < range.start) {
            throw t.fail(`HTTP 206 without a usable Content-Range (${header(res.headers, 'content-range') ?? 'none'})`);
          }
          if (range.start !== t.offset) throw t.fail(`asked for bytes from ${t.offset}, the server sent bytes from ${range.start}`);
          expected = range.end - range.start + 1;
          bodyTotal = range.total;
          if (bodyTotal !== undefined && range.end >= bodyTotal) throw t.fail(`Content-Range ${header(res.headers, 'content-range')} ends past the total`);
        } else if (status === 416) {
          res.destroy();
          const range = contentRange(header(res.headers, 'content-range'));
          // `from` exactly at the end: nothing left to send, which is not an error.
          if (range?.total === t.offset && (t.total === undefined || t.total === t.offset)) return;
          throw t.fail(`HTTP 416 Range Not Satisfiable for bytes from ${t.offset}${range?.total !== undefined ? ` (size ${range.total})` : ''}`);
        } else if (status >= 500 || status === 408 || status === 429) {
          res.destroy();
          const after = decimal(header(res.headers, 'retry-after'));
          throw new RetryableError(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), after !== undefined ? after * 1000 : undefined);
        } else {
          res.destroy();
          // 404, 403, 410 and the like: the URL is wrong, or not ours to read; asking again will not help.
          throw t.fail(`HTTP ${status} ${res.statusMessage ?? ''}`.trim() + (status >= 400 && status < 500 ? '; check the URL' : ''));
        }

        const encoding = header(res.headers, 'content-encoding');
        if (encoding && encoding.toLowerCase() !== 'identity') throw t.fail(`unexpected Content-Encoding ${encoding}`);

        // Never mix two versions of the payload: a different validator or size means it was replaced.
        if (t.first) {
          const change = versionChange(t.first, validators);
          if (change) throw t.fail(`the payload changed on the server during the download (${change})`);
        } else {
          t.first = validators;
        }
        if (t.total !== undefined && bodyTotal !== undefined && bodyTotal !== t.total) {
          throw t.fail(`the payload changed on the server during the download (size ${t.total} became ${bodyTotal})`);
        }
        t.total ??= bodyTotal;
        if (t.total !== undefined && t.offset > t.total) throw t.fail(`start offset ${t.offset} is past the end of the ${t.total}-byte payload`);

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
        if (expected !== undefined && received < expected) {
          throw new RetryableError(`the body ended after ${received} of ${expected} bytes`);
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
