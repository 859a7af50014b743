import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { FastPatchError, ioError } from '../errors.js';
import { httpChunks, isHttpUrl, type HttpChunksOptions } from './http.js';

/** Chunk size for reading payloads: large enough that per-chunk overhead vanishes, small enough to stay in cache. */
export const INPUT_CHUNK = 1024 * 1024;

/**
 * The bytes of a payload from a file path, standard input for '-', or an http:// or https:// URL
 * (streamed and resumed after drops by httpChunks, with `http` as its options; docs/HTTP.md).
 * A file's chunks are read into reused buffers (fileChunks): each is valid until the next is
 * requested; copy what you keep. I/O failures become FastPatchError('IO').
 */
export async function* readPayloadChunks(path: string, stdin: Readable = process.stdin, http: HttpChunksOptions = {}): AsyncGenerator<Uint8Array> {
  if (isHttpUrl(path)) {
    yield* httpChunks(path, http);
    return;
  }
  if (path !== '-') {
    yield* fileChunks(path, 0);
    return;
  }
  try {
    for await (const chunk of stdin) yield chunk as Uint8Array;
  } catch (err) {
    throw ioError('read payload from standard input', err);
  }
}

/**
 * Bytes [from, to) of a file (`to` omitted: to its end), read INPUT_CHUNK at a time into two
 * buffers in turn, the next chunk read while the caller works on this one. A chunk is valid until
 * the next is requested. Reused buffers, not fresh ones per chunk: a payload of hundreds of
 * megabytes read into fresh buffers left as many megabyte-sized blocks to the C allocator, whose
 * arenas fragment and keep freed memory resident (an apply's peak memory then grows with the
 * payload; measured with `npm run rss`: a full payload's apply, 8 GiB image, 127 -> 113 MiB).
 *
 * A caller that knows where the next bytes belong passes that buffer to next() (`it.next(into)`):
 * from then on, the bytes are read straight into it (up to into.length of them; the chunk yielded
 * is a view of `into`), with no read-ahead and no copy. The apply reads each operation's data
 * into the buffer it is checked and decoded from this way (apply/applier.ts): the main thread
 * then copies nothing. The chunk read ahead before the caller first passed a buffer is yielded as
 * it is, in one of this generator's own buffers.
 */
export async function* fileChunks(path: string, from: number, to = Infinity): AsyncGenerator<Uint8Array, void, Uint8Array | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FastPatchError('IO', `payload ${path} does not exist: give a payload file, an http(s):// URL, or - for standard input`, { cause: err });
    if (code === 'EISDIR') throw new FastPatchError('IO', `payload ${path} is a folder: give the payload file in it`, { cause: err });
    throw ioError(`read payload ${path}`, err);
  }
  // A pipe (`fastpatch apply <(curl ...)`, /dev/stdin) is read from where it is; it cannot seek,
  // so only a read from its start works there.
  let seekable = true;
  try {
    const stat = await handle.stat();
    seekable = stat.isFile() || stat.isBlockDevice();
  } catch {
    // Unknown: read by position, and let the read say what is wrong.
  }
  const buffers = [new Uint8Array(INPUT_CHUNK), new Uint8Array(INPUT_CHUNK)];
  const readInto = async (buffer: Uint8Array, at: number): Promise<Uint8Array> => {
    const length = Math.min(buffer.length, to - at);
    if (length <= 0) return buffer.subarray(0, 0);
    try {
      return buffer.subarray(0, (await handle.read(buffer, 0, length, seekable || from > 0 ? at : null)).bytesRead);
    } catch (err) {
      throw ioError(`read payload ${path}`, err);
    }
  };
  let at = from;
  let turn = 0;
  /** A read into this generator's own buffers, issued before the caller asked for it. */
  let ahead: Promise<Uint8Array> | undefined = readInto(buffers[0]!, at);
  let into: Uint8Array | undefined;
  try {
    for (;;) {
      let chunk: Uint8Array;
      if (ahead) {
        chunk = await ahead;
        ahead = undefined;
      } else {
        chunk = await readInto(into!, at);
      }
      if (chunk.length === 0) return;
      at += chunk.length;
      // Read ahead unless the caller has been saying where the next bytes go.
      const lends = into !== undefined && into.length > 0;
      if (!lends) {
        turn ^= 1;
        ahead = readInto(buffers[turn]!, at);
      }
      into = yield chunk;
      if (!ahead && !(into !== undefined && into.length > 0)) ahead = readInto(buffers[turn]!, at);
    }
  } finally {
    // A caller that stops early leaves a read in flight: it finishes before the file is closed.
    await ahead?.catch(() => undefined);
    await handle.close();
  }
}
