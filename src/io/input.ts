import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { ioError } from '../errors.js';

/** Chunk size for reading payloads: large enough that per-chunk overhead vanishes, small enough to stay in cache. */
export const INPUT_CHUNK = 1024 * 1024;

/**
 * The bytes of a payload from a file path, or standard input for '-'. Chunks are fresh buffers
 * owned by the consumer. I/O failures become FastPatchError('IO').
 */
export async function* readPayloadChunks(path: string, stdin: Readable = process.stdin): AsyncGenerator<Uint8Array> {
  const stream = path === '-' ? stdin : createReadStream(path, { highWaterMark: INPUT_CHUNK });
  try {
    for await (const chunk of stream) yield chunk as Uint8Array;
  } catch (err) {
    throw ioError(`read payload ${path === '-' ? 'from standard input' : path}`, err);
  }
}
