/**
 * One payload file over HTTP, answered the way a CDN answers it, so that a device's resumable
 * download (src/io/http.ts) works against the update service itself: validators (ETag,
 * Last-Modified), conditional requests, and single byte ranges with If-Range (RFC 9110 §8.8, §13,
 * §14; caching headers per RFC 9111). docs/HTTP.md ("Serving payloads") lists every answer.
 *
 * The file is opened once and everything (size, validators, body) comes from that one handle: a
 * new payload renamed over the name while it is served leaves this answer on the old bytes, whole
 * and consistent with the headers already sent.
 */
import { constants, promises as fsp, type BigIntStats } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';

/** How sendFile describes the file. Header values must be valid field values (no CR, LF). */
export interface SendFileOptions {
  /**
   * The ETag to send, an entity-tag with its quotes: `"<sha256 hex>"` for a content-addressed
   * payload (a strong validator: same tag, same bytes). Default: a strong tag made from the file's
   * size, modification time (ms) and inode, which changes when a new file replaces the name.
   */
  etag?: string;
  /** Default `application/octet-stream`. */
  contentType?: string;
  /** Sent as `Cache-Control` (also on 304) when given; nothing by default. */
  cacheControl?: string;
}

// O_NOFOLLOW: a symlink at the name is refused (ELOOP), so a link planted among the payloads
// cannot publish another file. O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it
// changes nothing for a regular file.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** What opening a name that is not there, or not a plain file, fails with: all 404. */
const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);
/** An entity-tag (RFC 9110 §8.8.3): optional W/, then a quoted string without quotes or controls. */
const ENTITY_TAG = /^(W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/;
/** A decimal of up to 15 significant digits is below 2^53: it converts to an exact safe integer. */
const MAX_DIGITS = 15;

/** What the answers tell of the file, all from one fstat. */
interface Representation {
  size: number;
  etag: string;
  /** IMF-fixdate of the modification time, never later than now (RFC 9110 §8.8.2.1). */
  lastModified: string;
  /** `lastModified` in ms since the epoch (whole seconds). */
  lastModifiedMs: number;
  /** Last-Modified is a strong validator: at least a second old, so no change can hide in its second. */
  dateIsStrong: boolean;
}

/** A byte range to send, both ends included; `end` < `start` for an empty file. */
type Selection = { status: 200 | 206; start: number; end: number } | { status: 416 };

/**
 * Answers GET or HEAD for the file at `path` (never a symlink: 404) and resolves when the answer
 * has been sent or abandoned. Other methods: 405 with `Allow: GET, HEAD`. A missing name, a
 * folder, a device or a FIFO: 404. GET may get 200, 206 (one byte range), 304 (If-None-Match,
 * If-Modified-Since), 412 (If-Match, If-Unmodified-Since) or 416; the body streams from the open
 * file with backpressure, so memory does not grow with its size. Never rejects: a failure before
 * the headers went out answers 500 (also for an `options.etag` that is not an entity-tag), after
 * them it destroys the connection so the client sees a truncated body, never a short whole one. A
 * client that goes away ends the read; the file is closed in every case.
 */
export async function sendFile(req: IncomingMessage, res: ServerResponse, path: string, options: SendFileOptions = {}): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      plainAnswer(req, res, 405, { allow: 'GET, HEAD' });
      return;
    }
    if (options.etag !== undefined && !ENTITY_TAG.test(options.etag)) throw new TypeError(`sendFile: options.etag must be an entity-tag such as "abc" (with the quotes), got ${options.etag}`);
    handle = await openRegular(path);
    const stats = handle && (await handle.stat({ bigint: true }));
    if (!handle || !stats?.isFile()) {
      plainAnswer(req, res, 404);
      return;
    }
    await answer(req, res, handle, representation(stats, options.etag), options);
  } catch {
    // The caller is a request handler: an exception here would become an unhandled rejection.
    failed(req, res);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** A 500 while the headers can still be chosen; afterwards, a cut connection (the client sees a short body). */
function failed(req: IncomingMessage, res: ServerResponse): void {
  try {
    if (!res.headersSent) return plainAnswer(req, res, 500);
  } catch {
    // writeHead refused (a connection already gone): nothing more can be said on it.
  }
  res.destroy();
}

/** The handle of `path` opened for reading, or undefined when the name is not there or is a symlink. */
async function openRegular(path: string): Promise<fsp.FileHandle | undefined> {
  try {
    return await fsp.open(path, OPEN_FLAGS);
  } catch (err) {
    if (NOT_FOUND.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw err;
  }
}

/** The answer for an existing regular file: preconditions, then the range, then the body. */
async function answer(req: IncomingMessage, res: ServerResponse, handle: fsp.FileHandle, rep: Representation, options: SendFileOptions): Promise<void> {
  const validators: OutgoingHttpHeaders = {
    etag: rep.etag,
    'last-modified': rep.lastModified,
    ...(options.cacheControl !== undefined ? { 'cache-control': options.cacheControl } : {}),
  };
  const precondition = preconditionStatus(req, rep);
  if (precondition === 304) {
    // RFC 9110 §15.4.5: the validators and Cache-Control a 200 would carry, no content headers.
    res.writeHead(304, validators).end();
    return;
  }
  if (precondition === 412) {
    plainAnswer(req, res, 412);
    return;
  }
  const headers: OutgoingHttpHeaders = { 'accept-ranges': 'bytes', 'content-type': options.contentType ?? 'application/octet-stream', ...validators };
  const selection = selectRange(req, rep);
  if (selection.status === 416) {
    plainAnswer(req, res, 416, { ...headers, 'content-range': `bytes */${rep.size}` });
    return;
  }
  const length = selection.end - selection.start + 1;
  if (selection.status === 206) headers['content-range'] = `bytes ${selection.start}-${selection.end}/${rep.size}`;
  res.writeHead(selection.status, { ...headers, 'content-length': length });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  await sendBody(res, handle, selection.start, selection.end);
}

/**
 * Streams bytes [start, end] of `handle` into `res`, at the pace the client reads. A body shorter
 * than announced (the file was truncated in place) or a client gone away destroys the connection.
 */
async function sendBody(res: ServerResponse, handle: fsp.FileHandle, start: number, end: number): Promise<void> {
  // autoClose false: the handle belongs to sendFile, which closes it once, in its finally.
  const body = handle.createReadStream({ start, end, autoClose: false });
  // end: false, so that a short read is not sent as a complete body: the count is checked first.
  await pipeline(body, res, { end: false });
  if (body.bytesRead !== end - start + 1) throw new Error(`the file ended at byte ${start + body.bytesRead}, before byte ${end}`);
  res.end();
}

function representation(stats: BigIntStats, etag: string | undefined): Representation {
  const now = Date.now();
  const mtimeMs = Number(stats.mtimeMs);
  // Whole seconds: what the HTTP-date can say, so that comparisons with dates sent back agree.
  const lastModifiedMs = Math.floor(Math.min(mtimeMs, now) / 1000) * 1000;
  return {
    size: Number(stats.size),
    etag: etag ?? `"${stats.size.toString(16)}-${stats.mtimeMs.toString(16)}-${stats.ino.toString(16)}"`,
    lastModified: new Date(lastModifiedMs).toUTCString(),
    lastModifiedMs,
    // RFC 9110 §8.8.2.2: a date within the current second may be followed by another change in it.
    dateIsStrong: lastModifiedMs + 1000 <= Math.floor(now / 1000) * 1000,
  };
}

/**
 * RFC 9110 §13.2.2, in its order: If-Match, else If-Unmodified-Since (412 when false); then
 * If-None-Match, else If-Modified-Since (304 when false). Undefined: the request goes on.
 */
function preconditionStatus(req: IncomingMessage, rep: Representation): 304 | 412 | undefined {
  const ifMatch = req.headers['if-match'];
  const ifUnmodifiedSince = httpDate(req.headers['if-unmodified-since']);
  if (ifMatch !== undefined) {
    if (!listMatches(ifMatch, rep.etag, strongEqual)) return 412;
  } else if (ifUnmodifiedSince !== undefined && rep.lastModifiedMs > ifUnmodifiedSince) {
    return 412;
  }
  const ifNoneMatch = req.headers['if-none-match'];
  const ifModifiedSince = httpDate(req.headers['if-modified-since']);
  if (ifNoneMatch !== undefined) {
    if (listMatches(ifNoneMatch, rep.etag, weakEqual)) return 304;
  } else if (ifModifiedSince !== undefined && rep.lastModifiedMs <= ifModifiedSince) {
    return 304;
  }
  return undefined;
}

/** `*` or a comma-separated list of entity-tags containing one `equal` to `etag`. */
function listMatches(value: string, etag: string, equal: (a: string, b: string) => boolean): boolean {
  if (value.trim() === '*') return true;
  // An entity-tag's quoted string has no commas or quotes, so the tags are simply those matches.
  return (value.match(/(?:W\/)?"[^"]*"/g) ?? []).some((tag) => equal(tag, etag));
}

/** RFC 9110 §8.8.3.2: both strong and identical. */
function strongEqual(a: string, b: string): boolean {
  return !a.startsWith('W/') && !b.startsWith('W/') && a === b;
}

/** RFC 9110 §8.8.3.2: the opaque tags are identical, whether weak or not. */
function weakEqual(a: string, b: string): boolean {
  return a.replace(/^W\//, '') === b.replace(/^W\//, '');
}

/** An HTTP-date in ms since the epoch, or undefined when absent or not a date (then ignored, §13.1.3). */
function httpDate(value: string | undefined): number | undefined {
  // Date.parse reads all three HTTP-date forms (IMF-fixdate, RFC 850, asctime); bounded input.
  if (value === undefined || value.length > 64) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * What to send for the Range and If-Range of `req` (RFC 9110 §14.2, §13.1.5): one byte range
 * (206), the whole file (200) when there is no usable single range or If-Range does not hold, or
 * 416 for a range that starts past the end. Only GET has ranges; HEAD gets the 200 headers.
 */
function selectRange(req: IncomingMessage, rep: Representation): Selection {
  const whole: Selection = { status: 200, start: 0, end: rep.size - 1 };
  const range = req.method === 'GET' ? req.headers.range : undefined;
  if (range === undefined) return whole;
  const wanted = parseRange(range);
  if (wanted === undefined) return whole;
  const ifRange = req.headers['if-range'];
  // Node joins a repeated If-Range into one "a, b" string, which holds for no validator.
  if (ifRange !== undefined && !ifRangeHolds(String(ifRange).trim(), rep)) return whole;

  if ('suffix' in wanted) {
    if (wanted.suffix === 0) return { status: 416 };
    // An empty file has no byte to name in a Content-Range: its whole (nothing) is the answer.
    if (rep.size === 0) return whole;
    return { status: 206, start: Math.max(0, rep.size - wanted.suffix), end: rep.size - 1 };
  }
  if (wanted.first >= rep.size) return { status: 416 };
  return { status: 206, start: wanted.first, end: Math.min(wanted.last, rep.size - 1) };
}

/**
 * A `bytes=` header of exactly one range: `a-b`, `a-` (last Infinity) or `-n`. Undefined for
 * anything else, which is then ignored (§14.2 allows ignoring Range): several ranges (a 200 is
 * simpler and allowed), another unit, bad syntax, b < a. Numbers of more than 15 significant
 * digits are past any file: Infinity, never an inexact conversion.
 */
function parseRange(value: string): { first: number; last: number } | { suffix: number } | undefined {
  const m = /^\s*bytes\s*=(.*)$/i.exec(value);
  if (!m) return undefined;
  // Empty list elements are allowed (RFC 9110 §5.6.1) and mean nothing.
  const specs = m[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length !== 1) return undefined;
  const spec = /^(\d*)\s*-\s*(\d*)$/.exec(specs[0]!);
  if (!spec || (spec[1] === '' && spec[2] === '')) return undefined;
  if (spec[1] === '') return { suffix: decimal(spec[2]!) };
  const first = decimal(spec[1]!);
  const last = spec[2] === '' ? Infinity : decimal(spec[2]!);
  return last < first ? undefined : { first, last };
}

/** Digits as a number: exact up to MAX_DIGITS significant digits, Infinity beyond. */
function decimal(digits: string): number {
  const significant = digits.replace(/^0+/, '');
  return significant.length > MAX_DIGITS ? Infinity : Number(significant);
}

/**
 * If-Range (RFC 9110 §13.1.5): an entity-tag holds when it strongly equals the current ETag (a
 * weak tag never does); a date when it is exactly the Last-Modified sent and that is strong.
 */
function ifRangeHolds(value: string, rep: Representation): boolean {
  if (value.startsWith('"') || value.startsWith('W/')) return strongEqual(value, rep.etag);
  return rep.dateIsStrong && value === rep.lastModified;
}

/** A short answer without a file body (405, 404, 412, 416, 500): a line of text, none for HEAD. */
function plainAnswer(req: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders = {}): void {
  const text = `${status} ${messageOf(status)}\n`;
  res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function messageOf(status: number): string {
  const messages: Record<number, string> = {
    404: 'Not Found',
    405: 'Method Not Allowed',
    412: 'Precondition Failed',
    416: 'Range Not Satisfiable',
    500: 'Internal Server Error',
  };
  return messages[status] ?? 'Error';
}
