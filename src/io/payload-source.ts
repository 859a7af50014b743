/**
 * A payload that can be read from any offset: a file or an HTTP(S) URL. A resumed apply reads the
 * head, checks the target, then fetches only the data the target still needs, range by range,
 * instead of streaming the payload from the start (apply/applier.ts, `resume`). Standard input
 * cannot seek and stays a plain stream (readPayloadChunks).
 */
import type { Readable } from 'node:stream';
import { FastPatchError } from '../errors.js';
import { deadlineError, HTTP_DEFAULTS, httpChunks, isHttpUrl, MAX_TIMER_MS, type HttpChunksOptions } from './http.js';
import { fileChunks, readPayloadChunks } from './input.js';

export interface SeekablePayload {
  readonly seekable: true;
  /** The file or URL, for messages. */
  readonly name: string;
  /**
   * Bytes [from, to) of the payload (`to` omitted: to its end), in chunks each valid until the
   * next is requested (a file's are read into reused buffers). Stops early at the payload's end;
   * the caller checks the count.
   */
  read(from: number, to?: number): AsyncIterable<Uint8Array>;
}

/** What apply reads a payload from. */
export type PayloadInput = AsyncIterable<Uint8Array> | SeekablePayload;

export function isSeekable(input: PayloadInput): input is SeekablePayload {
  return (input as Partial<SeekablePayload>).seekable === true;
}

/**
 * A file path or URL as a seekable payload; '-' as standard input, a plain stream. `http` goes to
 * every request of a URL (httpChunks), with two differences that make the reads of one apply one
 * download: `deadlineMs` counts from the first read and ends them all, and once the server has
 * sent a byte, a later read that finds it refused or unreachable retries `retries` times (the URL
 * is right; the server went away for a moment), not `unreachableRetries`.
 */
export function openPayload(spec: string, options: { stdin?: Readable; http?: HttpChunksOptions } = {}): PayloadInput {
  if (spec === '-') return readPayloadChunks('-', options.stdin ?? process.stdin);
  if (isHttpUrl(spec)) return httpPayload(spec, options.http ?? {});
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new FastPatchError('USAGE', `payload ${spec}: only http:// and https:// URLs are supported; give one of those, a file path, or - for standard input`);
  }
  return {
    seekable: true,
    name: spec,
    read: (from, to) => fileChunks(spec, from, to),
  };
}

function httpPayload(url: string, http: HttpChunksOptions): SeekablePayload {
  const { deadlineMs, ...perRead } = http;
  let deadline: AbortController | undefined;
  let reached = false;
  async function* read(from: number): AsyncGenerator<Uint8Array> {
    if (deadlineMs !== undefined && deadline === undefined) {
      if (!Number.isSafeInteger(deadlineMs) || deadlineMs < 1 || deadlineMs > MAX_TIMER_MS) {
        throw new RangeError(`openPayload: deadlineMs must be an integer from 1 to ${MAX_TIMER_MS}, got ${deadlineMs}`);
      }
      const controller = new AbortController();
      deadline = controller;
      // unref: a deadline left pending after the last read must not keep the process alive.
      setTimeout(() => controller.abort(deadlineError(url, deadlineMs)), deadlineMs).unref();
    }
    const signal = deadline && perRead.signal ? AbortSignal.any([perRead.signal, deadline.signal]) : (deadline?.signal ?? perRead.signal);
    const unreachableRetries = reached ? (perRead.retries ?? HTTP_DEFAULTS.retries) : perRead.unreachableRetries;
    const chunks = httpChunks(url, { ...perRead, from, ...(signal ? { signal } : {}), ...(unreachableRetries !== undefined ? { unreachableRetries } : {}) });
    for await (const chunk of chunks) {
      reached = true;
      yield chunk;
    }
  }
  return { seekable: true, name: url, read: (from, to) => cut(read(from), to === undefined ? Infinity : to - from) };
}

/** The first `limit` bytes of a stream; stops (and so closes) the stream there. */
async function* cut(chunks: AsyncIterable<Uint8Array>, limit: number): AsyncGenerator<Uint8Array> {
  if (limit <= 0) return;
  let left = limit;
  for await (const chunk of chunks) {
    if (chunk.length >= left) {
      yield chunk.subarray(0, left);
      return;
    }
    left -= chunk.length;
    yield chunk;
  }
}

/**
 * All of bytes [from, from + length) of `input`, chunk by chunk, or FastPatchError
 * ('TRUNCATED_PAYLOAD') when the payload ends first: a short range must not let the next range's
 * bytes be taken for the rest of this one.
 */
export async function* readRange(input: SeekablePayload, from: number, length: number): AsyncGenerator<Uint8Array> {
  let got = 0;
  for await (const chunk of input.read(from, from + length)) {
    got += chunk.length;
    yield chunk;
  }
  if (got < length) {
    throw new FastPatchError('TRUNCATED_PAYLOAD', `payload ${input.name} ends at byte ${from + got}; bytes up to ${from + length} were expected`);
  }
}
