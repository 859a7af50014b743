import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { ioError } from '../errors.js';
import { httpChunks, isHttpUrl, type HttpChunksOptions } from './http.js';

/** Chunk size for reading payloads: large enough that per-chunk overhead vanishes, small enough to stay in cache. */
export const INPUT_CHUNK = 1024 * 1024;

/**
 * The bytes of a payload from a file path, standard input for '-', or an http:// or https:// URL
 * (streamed and resumed after drops by httpChunks, with `http` as its options; docs/HTTP.md).
 * Chunks are fresh buffers owned by the consumer. I/O failures become FastPatchError('IO').
 */
export async function* readPayloadChunks(path: string, stdin: Readable = process.stdin, http: HttpChunksOptions = {}): AsyncGenerator<Uint8Array> {
  if (isHttpUrl(path)) {
    yield* httpChunks(path, http);
    return;
  }
  const stream = path === '-' ? stdin : createReadStream(path, { highWaterMark: INPUT_CHUNK });
  try {
    for await (const chunk of stream) yield chunk as Uint8Array;
  } catch (err) {
    throw ioError(`read payload ${path === '-' ? 'from standard input' : path}`, err);
  }
}
