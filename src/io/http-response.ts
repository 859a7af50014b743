/**
 * The request headers of a resume (Range, If-Range) and the checks of the answer: its status,
 * Content-Range, Content-Encoding and validators, before a byte of its body is read.
 * docs/HTTP.md ("Resume: Range and If-Range") documents what each answer is taken as.
 */
import type { IncomingMessage } from 'node:http';
import { retryable } from './http-failures.js';
import { decimal, header } from './http-request.js';
import type { Transfer, Validators } from './http-transfer.js';

/** How to read the body of an answer that passed its checks. */
export interface BodyPlan {
  /** Bytes of this body to drop before `offset` (a server that ignored Range). */
  skip: number;
  /** Bytes this body must carry; fewer is a drop. Undefined for a body of unknown length. */
  expected: number | undefined;
  /** Size of the whole payload as this answer tells it, if it does. */
  bodyTotal: number | undefined;
}

/** The headers of the next request of `t`: from `t.offset` on, and only from the same version. */
export function requestHeaders(t: Transfer): Record<string, string> {
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
  return headers;
}

/**
 * Checks the answer `res` to a request for the bytes from `t.offset`, and records what it tells
 * of the payload (`t.first`, `t.total`). Returns how to read its body, or undefined when nothing
 * is left to read (a 416 for `from` exactly at the end). Throws a `retryable` error for 5xx, 408 and
 * 429, and a final FastPatchError('IO') for any other answer that asking again will not change.
 */
export function checkResponse(t: Transfer, res: IncomingMessage): BodyPlan | undefined {
  const validators = validatorsOf(res);
  const plan = planBody(t, res);
  if (plan === undefined) return undefined;

  const encoding = header(res.headers, 'content-encoding');
  if (encoding && encoding.toLowerCase() !== 'identity') throw t.fail(`unexpected Content-Encoding ${encoding}`);

  checkSameVersion(t, validators, plan.bodyTotal);
  t.total ??= plan.bodyTotal;
  if (t.total !== undefined && t.offset > t.total) throw t.fail(`start offset ${t.offset} is past the end of the ${t.total}-byte payload`);
  return plan;
}

/** The status of `res` taken as in docs/HTTP.md: a body to read, nothing left (undefined), or an error to throw. */
function planBody(t: Transfer, res: IncomingMessage): BodyPlan | undefined {
  const status = res.statusCode ?? 0;
  const length = decimal(header(res.headers, 'content-length'));
  if (status === 200) {
    // The whole payload: the first answer, a server that does not do ranges, or (If-Range) a
    // payload that changed, which the validators tell apart.
    return { skip: t.offset, expected: length, bodyTotal: length };
  } else if (status === 206) {
    const range = contentRange(header(res.headers, 'content-range'));
    if (range?.start === undefined || range.end === undefined || range.end < range.start) {
      throw t.fail(`HTTP 206 without a usable Content-Range (${header(res.headers, 'content-range') ?? 'none'})`);
    }
    if (range.start !== t.offset) throw t.fail(`asked for bytes from ${t.offset}, the server sent bytes from ${range.start}`);
    const bodyTotal = range.total;
    if (bodyTotal !== undefined && range.end >= bodyTotal) throw t.fail(`Content-Range ${header(res.headers, 'content-range')} ends past the total`);
    return { skip: 0, expected: range.end - range.start + 1, bodyTotal };
  } else if (status === 416) {
    res.destroy();
    const range = contentRange(header(res.headers, 'content-range'));
    // `from` exactly at the end: nothing left to send, which is not an error.
    if (range?.total === t.offset && (t.total === undefined || t.total === t.offset)) return undefined;
    throw t.fail(`HTTP 416 Range Not Satisfiable for bytes from ${t.offset}${range?.total !== undefined ? ` (size ${range.total})` : ''}`);
  } else if (status >= 500 || status === 408 || status === 429) {
    res.destroy();
    const after = decimal(header(res.headers, 'retry-after'));
    throw retryable(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), { retryAfterMs: after !== undefined ? after * 1000 : undefined });
  } else {
    res.destroy();
    // 404, 403, 410 and the like: the URL is wrong, or not ours to read; asking again will not help.
    throw t.fail(`HTTP ${status} ${res.statusMessage ?? ''}`.trim() + (status >= 400 && status < 500 ? '; check the URL' : ''));
  }
}

/** Throws unless `validators` and `bodyTotal` show the same version as the first answer; the first answer's become `t.first`. */
function checkSameVersion(t: Transfer, validators: Validators, bodyTotal: number | undefined): void {
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
 * whole new payload (200) otherwise, which `checkSameVersion` catches.
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
