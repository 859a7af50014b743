/**
 * Why a request failed, in kind and in words: which failures another request may fix, which
 * mean a server never reached, and the few words and the URL that messages show.
 */
import { FastPatchError } from '../errors.js';

/** What the retry decision knows of a retryable failure besides its message. */
export interface RetryHints {
  /** Server-requested wait (Retry-After), in ms. */
  retryAfterMs?: number | undefined;
  /** A transfer below the minimum rate (progress does not reset the failure count). */
  slow?: boolean;
  /** No response head in time: before the server ever answered, as likely a wrong URL as a refusal. */
  noResponse?: boolean;
}

/**
 * A failure worth another request (drop, stall, short body, 5xx, too slow). Not exported, so that
 * FastPatchError stays the library's one error class: the other files make one with `retryable`
 * and read its hints with `retryHintsOf`.
 */
class RetryableError extends Error {
  constructor(
    message: string,
    /** Server-requested wait (Retry-After), in ms. */
    readonly retryAfterMs?: number,
    /** A transfer below the minimum rate (progress does not reset the failure count). */
    readonly slow = false,
    /** No response head in time: before the server ever answered, as likely a wrong URL as a refusal. */
    readonly noResponse = false,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

/** A failure worth another request, with `message` and what the retry decision should know of it. */
export function retryable(message: string, hints: RetryHints = {}): Error {
  return new RetryableError(message, hints.retryAfterMs, hints.slow ?? false, hints.noResponse ?? false);
}

/** The hints of a failure made by `retryable`; undefined for any other error. */
export function retryHintsOf(err: unknown): RetryHints | undefined {
  return err instanceof RetryableError ? err : undefined;
}

/**
 * Error codes retrying cannot fix: a certificate that does not verify today will not verify in
 * a second either, and retrying would only hide the reason behind "gave up after N attempts".
 */
const PERMANENT_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|ERR_INVALID_)/;

/** Codes of a server not reached at all: most often a wrong host or port in the URL. */
export const UNREACHED_CODE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);

/** Node's error codes in words, for messages and retry notes. */
const CODE_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_NONAME: 'host not found',
  EAI_FAIL: 'host name lookup failed',
  EAI_AGAIN: 'host name lookup failed for now (DNS)',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
};

/** The `code` of a Node error (ECONNRESET, ERR_TLS_...), or undefined when it has none. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A few words for why a request failed: `connection refused (connect ECONNREFUSED 127.0.0.1:1)`. */
export function reasonOf(err: Error): string {
  const code = codeOf(err);
  const text = code === undefined ? undefined : CODE_TEXT[code];
  const message = err.message.split('\n')[0] ?? '';
  return text === undefined ? message : `${text} (${message})`;
}

/** Whether another request may fix `err`: a failure made by `retryable`, or a Node error with a code other than a permanent one. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableError) return true;
  if (err instanceof FastPatchError) return false;
  // Node's network errors (ECONNRESET, "socket hang up", "aborted", ECONNREFUSED, EAI_AGAIN,
  // ERR_STREAM_PREMATURE_CLOSE, HPE_* parse errors of a garbled response) all carry a code.
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !PERMANENT_CODE.test(code);
}

/** The URL for messages: no user:password, no query string (signed URLs carry tokens there). */
export function shown(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search ? '?…' : ''}`;
}

/** 1500 -> "1.5 s", 60000 -> "60 s". */
export function formatMs(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`;
}
