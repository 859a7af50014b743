/**
 * Payload bytes from an http:// or https:// URL, streamed with bounded memory and resumed after
 * drops with Range requests. The behaviour (what is retried, backoff, Range, If-Range) is
 * documented in docs/HTTP.md; the comments here say why.
 */
import type { IncomingMessage } from 'node:http';
import { FastPatchError } from '../errors.js';
import { codeOf, formatMs, isRetryable, reasonOf, RetryableError, shown, UNREACHED_CODE } from './http-failures.js';
import { checkOptions, type HttpChunksOptions } from './http-options.js';
import { decimal, Exchange, getFollowing, header } from './http-request.js';

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

/** ETag and Last-Modified of a response: what identifies one version of the payload on the server. */
interface Validators {
  etag?: string;
  lastModified?: string;
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

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
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

/**
 * The transfer's rate over a sliding window of a clock that excludes the consumer's time.
 * Samples are kept at most every window/32, so memory stays constant whatever the chunk rate.
 */
class RateWindow {
  private samples: { t: number; bytes: number }[] = [];
  private start = 0;
  constructor(
    private readonly minRate: number,
    private readonly windowMs: number,
  ) {}

  /** Starts a new window at clock `t`, with `bytes` delivered so far. */
  restart(t: number, bytes: number): void {
    this.samples = [{ t, bytes }];
    this.start = t;
  }

  /**
   * Records `bytes` delivered by clock `t` and judges the last window: 'filling' until one has
   * passed since the (re)start, then 'ok', or the rate in bytes per second when below the minimum.
   */
  check(t: number, bytes: number): 'off' | 'filling' | 'ok' | number {
    if (this.minRate === 0) return 'off';
    const last = this.samples[this.samples.length - 1]!;
    if (t - last.t >= this.windowMs / 32) this.samples.push({ t, bytes });
    if (t - this.start < this.windowMs) return 'filling';
    // The base is the newest sample at least a window old; older ones are no longer needed.
    let base = 0;
    while (base + 1 < this.samples.length && this.samples[base + 1]!.t <= t - this.windowMs) base++;
    if (base > 0) this.samples.splice(0, base);
    const from = this.samples[0]!;
    const rate = ((bytes - from.bytes) * 1000) / Math.max(t - from.t, 1);
    return rate < this.minRate ? rate : 'ok';
  }
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
  const name = shown(origin);
  const fail = (what: string) => new FastPatchError('IO', `download ${name}: ${what}`);

  let offset = opts.from;
  // The deadline aborts like the caller's signal, with its own reason: a final error, never retried.
  const deadline = opts.deadlineMs === undefined ? undefined : new AbortController();
  const deadlineTimer = deadline && setTimeout(() => deadline.abort(deadlineError(url, opts.deadlineMs!, offset)), opts.deadlineMs);
  const signal = eitherSignal(options.signal, deadline?.signal);

  /** Size of the whole payload, once a response told it. */
  let total: number | undefined;
  /** Validators of the first response: every later one must be the same version. */
  let first: Validators | undefined;
  /** Whether the server answered once (a response head): before that, a failure is likely a wrong URL. */
  let answered = false;
  let attempts = 0;
  let failures = 0;
  /** A too-slow verdict since the last full window at the minimum rate: progress alone then does not reset `failures`. */
  let slowStreak = false;

  // The rate clock leaves out the time the consumer holds a chunk (a slow disk pauses the socket).
  let consumerMs = 0;
  const clock = () => performance.now() - consumerMs;
  const rate = new RateWindow(opts.minRateBytesPerSec, opts.rateWindowMs);
  rate.restart(clock(), offset);
  /** Judges the rate now; returns the error that ends this connection, if too slow. */
  const checkRate = (): RetryableError | undefined => {
    const verdict = rate.check(clock(), offset);
    if (verdict === 'ok' && slowStreak) {
      slowStreak = false;
      failures = 0;
    }
    if (typeof verdict !== 'number') return undefined;
    const seconds = formatMs(opts.rateWindowMs);
    return new RetryableError(`too slow: ${Math.floor(verdict)} B/s over the last ${seconds}, below the minimum of ${opts.minRateBytesPerSec} B/s`, undefined, true);
  };

  try {
    for (;;) {
      signal?.throwIfAborted();
      attempts++;
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
        if (offset > 0) {
          headers.range = `bytes=${offset}-`;
          const ifRange = first && ifRangeOf(first);
          if (ifRange) headers['if-range'] = ifRange;
        }
        const res = await getFollowing(origin, headers, { stallTimeoutMs: opts.stallTimeoutMs, signal }, exchange);
        answered = true;
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
          skip = offset;
          expected = length;
          bodyTotal = length;
        } else if (status === 206) {
          const range = contentRange(header(res.headers, 'content-range'));
          if (range?.start === undefined || range.end === undefined || range.end < range.start) {
            throw fail(`HTTP 206 without a usable Content-Range (${header(res.headers, 'content-range') ?? 'none'})`);
          }
          if (range.start !== offset) throw fail(`asked for bytes from ${offset}, the server sent bytes from ${range.start}`);
          expected = range.end - range.start + 1;
          bodyTotal = range.total;
          if (bodyTotal !== undefined && range.end >= bodyTotal) throw fail(`Content-Range ${header(res.headers, 'content-range')} ends past the total`);
        } else if (status === 416) {
          res.destroy();
          const range = contentRange(header(res.headers, 'content-range'));
          // `from` exactly at the end: nothing left to send, which is not an error.
          if (range?.total === offset && (total === undefined || total === offset)) return;
          throw fail(`HTTP 416 Range Not Satisfiable for bytes from ${offset}${range?.total !== undefined ? ` (size ${range.total})` : ''}`);
        } else if (status >= 500 || status === 408 || status === 429) {
          res.destroy();
          const after = decimal(header(res.headers, 'retry-after'));
          throw new RetryableError(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), after !== undefined ? after * 1000 : undefined);
        } else {
          res.destroy();
          // 404, 403, 410 and the like: the URL is wrong, or not ours to read; asking again will not help.
          throw fail(`HTTP ${status} ${res.statusMessage ?? ''}`.trim() + (status >= 400 && status < 500 ? '; check the URL' : ''));
        }

        const encoding = header(res.headers, 'content-encoding');
        if (encoding && encoding.toLowerCase() !== 'identity') throw fail(`unexpected Content-Encoding ${encoding}`);

        // Never mix two versions of the payload: a different validator or size means it was replaced.
        if (first) {
          const change = versionChange(first, validators);
          if (change) throw fail(`the payload changed on the server during the download (${change})`);
        } else {
          first = validators;
        }
        if (total !== undefined && bodyTotal !== undefined && bodyTotal !== total) {
          throw fail(`the payload changed on the server during the download (size ${total} became ${bodyTotal})`);
        }
        total ??= bodyTotal;
        if (total !== undefined && offset > total) throw fail(`start offset ${offset} is past the end of the ${total}-byte payload`);

        let received = 0;
        const body = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        for (;;) {
          // The stall timer and the rate check run only while we wait for the server, not while the
          // consumer holds a chunk: a slow disk pauses the socket (backpressure) and is not the server's fault.
          const step = await watchServer(body.next(), opts.stallTimeoutMs, rateTickMs(opts.rateWindowMs, opts.stallTimeoutMs), checkRate, (err) => res.destroy(err));
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
          offset += chunk.length;
          progressed = true;
          if (!slowStreak) failures = 0;
          const handedAt = performance.now();
          yield chunk;
          consumerMs += performance.now() - handedAt;
          // Judged after the chunk is handed on: a chunk received is never dropped.
          const slow = checkRate();
          if (slow) throw slow;
        }
        if (expected !== undefined && received < expected) {
          throw new RetryableError(`the body ended after ${received} of ${expected} bytes`);
        }
        if (skip > 0) throw fail(`the server's payload is shorter than the start offset ${offset}`);
        // A 200 of unknown length that ended cleanly is the whole payload. Otherwise a server may
        // send less than asked (a 206 of a smaller range) and the next request continues.
        if (total === undefined || offset >= total) {
          signal?.throwIfAborted();
          return;
        }
        if (!progressed) throw new RetryableError(`the server sent no bytes after offset ${offset}`);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        const code = codeOf(err);
        const error = err as Error;
        // A host name that does not resolve, before the server ever answered: a typo, not an outage.
        if (!answered && code === 'ENOTFOUND') throw fail(`${reasonOf(error)}; check the host name in the URL`);
        if (!isRetryable(err)) {
          if (err instanceof FastPatchError) throw err;
          throw new FastPatchError('IO', `download ${name}: ${reasonOf(error)}`, { cause: err });
        }
        failures++;
        // A server that accepts connections but never answers (a wrong port, a firewall that
        // swallows them) is as unreached as one that refuses them.
        const unreached = !answered && ((code !== undefined && UNREACHED_CODE.has(code)) || (err instanceof RetryableError && err.noResponse));
        const limit = unreached ? opts.unreachableRetries : opts.retries;
        if (err instanceof RetryableError && err.slow) {
          slowStreak = true;
          rate.restart(clock(), offset);
        }
        if (failures > limit) {
          if (unreached) {
            throw new FastPatchError('IO', `download ${name}: ${reasonOf(error)}; gave up after ${plural(attempts, 'attempt')}: check the URL and that the server is up (--retries and --timeout set how long to try)`, { cause: err });
          }
          throw new FastPatchError(
            'IO',
            `download ${name}: gave up at byte ${offset} after ${plural(attempts, 'attempt')} (${plural(failures, 'failure')} in a row): last error: ${reasonOf(error)}; once the server answers again, the same command with --resume fetches only what is missing (--retries and --timeout set how long to try)`,
            { cause: err },
          );
        }
        // Doubling backoff with jitter (half fixed, half random) so that many devices dropped by
        // the same outage do not come back in lockstep; a server's Retry-After is honoured up to the cap.
        const base = Math.min(opts.backoffMs * 2 ** (failures - 1), opts.maxBackoffMs);
        const jittered = Math.round(base / 2 + Math.random() * (base / 2));
        const retryAfter = err instanceof RetryableError && err.retryAfterMs !== undefined ? Math.min(err.retryAfterMs, opts.maxBackoffMs) : 0;
        const delayMs = Math.max(jittered, retryAfter);
        onRetry?.({ attempt: attempts, failures, offset, delayMs, error, reason: reasonOf(error), limit });
        await sleep(delayMs, signal);
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

/** `1 attempt`, `4 attempts`. */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
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
