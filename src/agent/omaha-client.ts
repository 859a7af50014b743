/**
 * One Omaha exchange from the device: POST a request body, read the answer. Bounded like every
 * peer FastPatch talks to: the answer must come within `timeoutMs` and be at most
 * MAX_RESPONSE_BYTES, or the exchange fails with FastPatchError('IO') naming why.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FastPatchError } from '../errors.js';
import { MAX_RESPONSE_BYTES } from '../omaha/response.js';
import { escapeText } from '../text.js';

export const OMAHA_TIMEOUT_MS = 30_000;

/** POSTs `body` to the Omaha endpoint `url`; returns the response body of a 200. */
export function postOmaha(url: string, body: string, timeoutMs = OMAHA_TIMEOUT_MS): Promise<string> {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new FastPatchError('USAGE', `update server ${escapeText(url)} is not an http:// or https:// URL`);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown) => reject(new FastPatchError('IO', `update server ${escapeText(target.origin + target.pathname)}: ${why}`, cause ? { cause } : undefined));
    const req = send(target, { method: 'POST', headers: { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      const parts: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > MAX_RESPONSE_BYTES) {
          req.destroy();
          fail(`answer larger than ${MAX_RESPONSE_BYTES} bytes`);
        } else parts.push(chunk);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode}: ${escapeText(Buffer.concat(parts).toString('utf8').split('\n')[0]!.slice(0, 200))}`);
        resolve(Buffer.concat(parts).toString('utf8'));
      });
      res.on('error', (err) => fail(err.message, err));
    });
    // A deadline for the whole exchange, not only for silence: a server that drips a byte every
    // few seconds must not hold the device's cycle for days.
    const deadline = setTimeout(() => {
      req.destroy();
      fail(`no whole answer within ${timeoutMs / 1000} s`);
    }, timeoutMs);
    req.once('close', () => clearTimeout(deadline));
    req.on('error', (err) => fail(err.message, err));
    req.end(body);
  });
}
