/**
 * Reading one response body: chunk by chunk with backpressure, bytes before the offset dropped,
 * the server watched for stalls and for a rate below the minimum while we wait for it.
 * docs/HTTP.md ("Memory", "Retries and backoff", "Minimum rate") documents the limits.
 */
import type { IncomingMessage } from 'node:http';
import { retryable } from './http-failures.js';
import type { BodyPlan } from './http-response.js';
import type { Transfer } from './http-transfer.js';

/**
 * Yields the new bytes of the body of `res` (chunks the consumer owns), advancing `t.offset` past
 * each. Returns whether it yielded any. Throws a `retryable` error for a stall, a rate below the
 * minimum or a body shorter than `plan.expected`, and a final error for a body that ends before
 * the offset (one that ignored Range).
 */
export async function* readBody(t: Transfer, res: IncomingMessage, plan: BodyPlan): AsyncGenerator<Uint8Array, boolean> {
  const { stallTimeoutMs, rateWindowMs } = t.opts;
  let { skip } = plan;
  let received = 0;
  let progressed = false;
  const body = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    // The stall timer and the rate check run only while we wait for the server, not while the
    // consumer holds a chunk: a slow disk pauses the socket (backpressure) and is not the server's fault.
    const step = await watchServer(body.next(), stallTimeoutMs, rateTickMs(rateWindowMs, stallTimeoutMs), () => t.checkRate(), (err) => res.destroy(err));
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
    throw retryable(`the body ended after ${received} of ${plan.expected} bytes`);
  }
  if (skip > 0) throw t.fail(`the server's payload is shorter than the start offset ${t.offset}`);
  return progressed;
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
  const stall = setTimeout(() => abort(retryable(`no data for ${stallMs} ms`)), stallMs);
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
