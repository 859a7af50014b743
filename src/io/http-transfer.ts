/**
 * The state of one httpChunks call, shared by its steps (an attempt, the reading of a body, the
 * decision to retry): where the transfer stands, what the server told of the payload, the count
 * of failures, and the rate clock. docs/HTTP.md ("Minimum rate") documents the rate check.
 */
import { FastPatchError } from '../errors.js';
import { formatMs, retryable, shown } from './http-failures.js';
import type { CheckedOptions } from './http-options.js';

/** ETag and Last-Modified of a response: what identifies one version of the payload on the server. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/**
 * The transfer's rate over a sliding window of a clock that excludes the consumer's time.
 * Samples are kept at most every window/32, so memory stays constant whatever the chunk rate.
 */
export class RateWindow {
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

/** One transfer from `origin`: its options, its signal and the state its attempts share. */
export class Transfer {
  /** The URL for messages (see `shown`). */
  readonly name: string;
  /** The next payload byte to hand on: `from`, then one past the last byte yielded. */
  offset: number;
  /** Size of the whole payload, once a response told it. */
  total: number | undefined;
  /** Validators of the first response: every later one must be the same version. */
  first: Validators | undefined;
  /** Whether the server answered once (a response head): before that, a failure is likely a wrong URL. */
  answered = false;
  attempts = 0;
  failures = 0;
  /** A too-slow verdict since the last full window at the minimum rate: progress alone then does not reset `failures`. */
  slowStreak = false;
  // The rate clock leaves out the time the consumer holds a chunk (a slow disk pauses the socket).
  consumerMs = 0;
  readonly rate: RateWindow;

  constructor(
    readonly origin: URL,
    readonly opts: CheckedOptions,
    /** The caller's signal and the deadline's, as one. */
    readonly signal: AbortSignal | undefined,
  ) {
    this.name = shown(origin);
    this.offset = opts.from;
    this.rate = new RateWindow(opts.minRateBytesPerSec, opts.rateWindowMs);
    this.rate.restart(this.clock(), this.offset);
  }

  /** The rate clock, ms: performance.now() without the consumer's time. */
  clock(): number {
    return performance.now() - this.consumerMs;
  }

  /** Judges the rate now; returns the error that ends this connection, if too slow. */
  checkRate(): Error | undefined {
    const verdict = this.rate.check(this.clock(), this.offset);
    if (verdict === 'ok' && this.slowStreak) {
      this.slowStreak = false;
      this.failures = 0;
    }
    if (typeof verdict !== 'number') return undefined;
    const seconds = formatMs(this.opts.rateWindowMs);
    return retryable(`too slow: ${Math.floor(verdict)} B/s over the last ${seconds}, below the minimum of ${this.opts.minRateBytesPerSec} B/s`, { slow: true });
  }

  /** A final error of this transfer: `download URL: what`, not retried. */
  fail(what: string): FastPatchError {
    return new FastPatchError('IO', `download ${this.name}: ${what}`);
  }
}
