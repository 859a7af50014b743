/**
 * One GET of an attempt, redirects followed, on a connection of its own; and the reading of the
 * headers of its answer. docs/HTTP.md ("Requests") documents what is sent and followed.
 */
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { FastPatchError } from '../errors.js';
import { retryable, shown } from './http-failures.js';
import { HTTP_DEFAULTS } from './http-options.js';

const REDIRECT = new Set([301, 302, 303, 307, 308]);

/** The first value of header `name` (lower case), or undefined when absent. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A non-negative decimal header value, or undefined when absent or malformed. */
export function decimal(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The requests of one attempt (a redirect chain), so they can all be torn down at once. */
export class Exchange {
  private readonly parts: (ClientRequest | IncomingMessage)[] = [];
  add(part: ClientRequest | IncomingMessage): void {
    // A response destroyed with a reason while nobody reads it must not become an uncaught 'error';
    // a reader (the body's iterator) still sees the error.
    if (part instanceof http.IncomingMessage) part.on('error', () => undefined);
    this.parts.push(part);
  }
  /**
   * Closes every connection; a response destroyed this way emits no 'error' nobody listens to.
   * With `reason`, a read in progress fails with it (rather than ending as if the body were whole).
   */
  destroy(reason?: unknown): void {
    for (const part of this.parts) part.destroy(reason instanceof Error ? reason : undefined);
  }
}

/** What every request of an attempt is given: the stall timeout, ms, and the transfer's signal. */
export interface RequestOptions {
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
    const timer = setTimeout(() => req.destroy(retryable(`no response within ${options.stallTimeoutMs} ms`, { noResponse: true })), options.stallTimeoutMs);
    // Also swallows the errors a request emits after it resolved (its response is read elsewhere).
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** GET following up to HTTP_DEFAULTS.maxRedirects redirects; each retry starts again at `origin`. */
export async function getFollowing(origin: URL, headers: Record<string, string>, options: RequestOptions, exchange: Exchange): Promise<IncomingMessage> {
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
