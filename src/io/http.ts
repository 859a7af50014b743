/**
 * Payload bytes from an http:// or https:// URL, streamed with bounded memory and resumed after
 * drops with Range requests. The behaviour (what is retried, backoff, Range, If-Range) is
 * documented in docs/HTTP.md; the comments here say why.
 */
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { FastPatchError } from '../errors.js';

/** Defaults of HttpChunksOptions. */
export const HTTP_DEFAULTS = {
  retries: 10,
  backoffMs: 500,
  maxBackoffMs: 30_000,
  stallTimeoutMs: 30_000,
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
  /** Aborts the transfer (including a backoff wait); the generator then throws the signal's reason. */
  signal?: AbortSignal;
  /** Called before each retry's backoff wait, e.g. to log it. */
  onRetry?: (info: HttpRetryInfo) => void;
}

/** True for the strings readPayloadChunks hands to httpChunks. */
export function isHttpUrl(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/** A failure worth another request (drop, stall, short body, 5xx). */
class RetryableError extends Error {
  constructor(
    message: string,
    /** Server-requested wait (Retry-After), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

/**
 * Error codes retrying cannot fix: a certificate that does not verify today will not verify in
 * a second either, and retrying would only hide the reason behind "gave up after N attempts".
 */
const PERMANENT_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|ERR_INVALID_)/;

function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableError) return true;
  if (err instanceof FastPatchError) return false;
  // Node's network errors (ECONNRESET, "socket hang up", "aborted", ECONNREFUSED, EAI_AGAIN,
  // ERR_STREAM_PREMATURE_CLOSE, HPE_* parse errors of a garbled response) all carry a code.
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !PERMANENT_CODE.test(code);
}

const REDIRECT = new Set([301, 302, 303, 307, 308]);

/** The URL for messages: no user:password, no query string (signed URLs carry tokens there). */
function shown(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search ? '?…' : ''}`;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A non-negative decimal header value, or undefined when absent or malformed. */
function decimal(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
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

/** The requests of one attempt (a redirect chain), so they can all be torn down at once. */
class Exchange {
  private readonly parts: (ClientRequest | IncomingMessage)[] = [];
  add(part: ClientRequest | IncomingMessage): void {
    this.parts.push(part);
  }
  /** Closes every connection; a response destroyed this way emits no 'error' nobody listens to. */
  destroy(): void {
    for (const part of this.parts) part.destroy();
  }
}

interface RequestOptions {
  stallTimeoutMs: number;
  signal: AbortSignal | undefined;
}

/** One GET; resolves with the response head. No head within the stall timeout is a drop. */
function get(url: URL, headers: Record<string, string>, options: RequestOptions, exchange: Exchange): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    // agent: false gives each attempt its own connection, so a stalled or half-read one is never
    // reused, and nothing is left in a pool when the transfer ends.
    const req = mod.request(url, { method: 'GET', headers, agent: false, ...(options.signal ? { signal: options.signal } : {}) }, (res) => {
      clearTimeout(timer);
      exchange.add(res);
      resolve(res);
    });
    exchange.add(req);
    const timer = setTimeout(() => req.destroy(new RetryableError(`no response within ${options.stallTimeoutMs} ms`)), options.stallTimeoutMs);
    // Also swallows the errors a request emits after it resolved (its response is read elsewhere).
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** GET following up to HTTP_DEFAULTS.maxRedirects redirects; each retry starts again at `origin`. */
async function getFollowing(origin: URL, headers: Record<string, string>, options: RequestOptions, exchange: Exchange): Promise<IncomingMessage> {
  let url = origin;
  for (let hops = 0; ; hops++) {
    const res = await get(url, headers, options, exchange);
    const status = res.statusCode ?? 0;
    const location = header(res.headers, 'location');
    if (!REDIRECT.has(status) || !location) return res;
    res.destroy();
    if (hops >= HTTP_DEFAULTS.maxRedirects) {
      throw new FastPatchError('IO', `download ${shown(origin)}: more than ${HTTP_DEFAULTS.maxRedirects} redirects`);
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new FastPatchError('IO', `download ${shown(origin)}: redirect to an invalid URL "${location}"`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new FastPatchError('IO', `download ${shown(origin)}: redirect to unsupported ${next.protocol} URL`);
    }
    url = next;
  }
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

/** Awaits `step`; if it takes longer than `ms`, calls `onStall` (which must make `step` settle). */
async function withStallTimer<T>(step: Promise<T>, ms: number, onStall: () => void): Promise<T> {
  const timer = setTimeout(onStall, ms);
  try {
    return await step;
  } finally {
    clearTimeout(timer);
  }
}

function checkOptions(options: HttpChunksOptions): Required<Omit<HttpChunksOptions, 'signal' | 'onRetry'>> {
  const pick = (name: 'from' | 'retries' | 'backoffMs' | 'maxBackoffMs' | 'stallTimeoutMs', fallback: number, min: number) => {
    const v = options[name] ?? fallback;
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`httpChunks: ${name} must be an integer >= ${min}, got ${v}`);
    return v;
  };
  return {
    from: pick('from', 0, 0),
    retries: pick('retries', HTTP_DEFAULTS.retries, 0),
    backoffMs: pick('backoffMs', HTTP_DEFAULTS.backoffMs, 0),
    maxBackoffMs: pick('maxBackoffMs', HTTP_DEFAULTS.maxBackoffMs, 0),
    stallTimeoutMs: pick('stallTimeoutMs', HTTP_DEFAULTS.stallTimeoutMs, 1),
  };
}

/**
 * The bytes of the resource at `url` from offset `from` to its end, as the server sends them
 * (chunks are fresh buffers owned by the consumer). Memory stays bounded: the body is read with
 * backpressure, chunk by chunk, and never accumulated.
 *
 * A dropped connection, a stall, a short body or a 5xx/408/429 answer is retried with
 * `Range: bytes=OFFSET-` and `If-Range`, after a doubling backoff; `retries` failures in a row
 * without progress end it with FastPatchError('IO'). A server that ignores Range is handled by
 * discarding the bytes before OFFSET as they arrive. A payload replaced on the server during the
 * transfer (other ETag/Last-Modified, or other size), 4xx answers, bad redirects and TLS
 * verification failures are FastPatchError('IO') at once. A URL that does not parse is
 * FastPatchError('USAGE').
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
  const { signal, onRetry } = options;
  const name = shown(origin);
  const fail = (what: string) => new FastPatchError('IO', `download ${name}: ${what}`);

  let offset = opts.from;
  /** Size of the whole payload, once a response told it. */
  let total: number | undefined;
  /** Validators of the first response: every later one must be the same version. */
  let first: Validators | undefined;
  let attempts = 0;
  let failures = 0;

  for (;;) {
    signal?.throwIfAborted();
    attempts++;
    const exchange = new Exchange();
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
        throw fail(`HTTP ${status} ${res.statusMessage ?? ''}`.trim());
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
        // The stall timer runs only while we wait for the server, not while the consumer holds a
        // chunk: a slow disk pauses the socket (backpressure) and must not count as a stall.
        const step = await withStallTimer(body.next(), opts.stallTimeoutMs, () =>
          res.destroy(new RetryableError(`no data for ${opts.stallTimeoutMs} ms`)),
        );
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
        failures = 0;
        yield chunk;
      }
      if (expected !== undefined && received < expected) {
        throw new RetryableError(`the body ended after ${received} of ${expected} bytes`);
      }
      if (skip > 0) throw fail(`the server's payload is shorter than the start offset ${offset}`);
      // A 200 of unknown length that ended cleanly is the whole payload. Otherwise a server may
      // send less than asked (a 206 of a smaller range) and the next request continues.
      if (total === undefined || offset >= total) return;
      if (!progressed) throw new RetryableError(`the server sent no bytes after offset ${offset}`);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (!isRetryable(err)) {
        if (err instanceof FastPatchError) throw err;
        throw new FastPatchError('IO', `download ${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      const error = err as Error;
      failures++;
      if (failures > opts.retries) {
        throw new FastPatchError(
          'IO',
          `download ${name}: gave up at byte ${offset} after ${attempts} attempts (${failures} failures in a row): last error: ${error.message}`,
          { cause: err },
        );
      }
      // Doubling backoff with jitter (half fixed, half random) so that many devices dropped by
      // the same outage do not come back in lockstep; a server's Retry-After is honoured up to the cap.
      const base = Math.min(opts.backoffMs * 2 ** (failures - 1), opts.maxBackoffMs);
      const jittered = Math.round(base / 2 + Math.random() * (base / 2));
      const retryAfter = err instanceof RetryableError && err.retryAfterMs !== undefined ? Math.min(err.retryAfterMs, opts.maxBackoffMs) : 0;
      const delayMs = Math.max(jittered, retryAfter);
      onRetry?.({ attempt: attempts, failures, offset, delayMs, error });
      await sleep(delayMs, signal);
    } finally {
      exchange.destroy();
    }
  }
}
