/**
 * Decompressing straight into a buffer the caller owns.
 *
 * node:zlib's one-shot calls (zstdDecompressSync, inflateRawSync) return a buffer of their own,
 * fresh for every call: for an operation of 16 MiB that is 4,096 pages the kernel maps on first
 * touch, and the output was then copied into the buffer the main thread lends (decode.ts). In a
 * 512 MiB full apply, those fresh outputs were most of the process's page faults and of its
 * system time. node:zlib has no public call that decompresses into a given buffer, but its streams
 * do it underneath: the native handle's writeSync(flush, in, inOffset, inLength, out, outOffset,
 * outLength), which the one-shot calls themselves loop on, reporting what is left of the output
 * and input in the stream's write state. This calls it once with the caller's buffer as output.
 * Where a Node release lays its streams out otherwise, the one-shot call and a copy do the same.
 */
import { InflateRaw, ZstdDecompress, inflateRawSync, zstdDecompressSync } from 'node:zlib';

export type ZlibCodec = 'deflate' | 'zstd';

/** What node:zlib's streams hold underneath (lib/zlib.js); checked before use. */
interface NativeStream {
  _handle: {
    writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, out: Uint8Array, outOffset: number, outLength: number): void;
    onerror: (message: string, errno: number, code?: string) => void;
  } | null;
  _writeState: Uint32Array;
  _finishFlushFlag: number;
  close(): void;
}

/** What decompressInto did: bytes written to `out` and bytes read from `input`. */
export interface Decompressed {
  written: number;
  read: number;
}

/**
 * Decompresses one raw deflate stream or one zstd frame from `input` into `out`, which must have
 * room for all of it: output beyond out.length is an error, not a second buffer. A zstd
 * `dictionary` is loaded as raw content (zstd's rule: unless it begins with the dictionary magic).
 * Input after the end of the stream is left unread (`read` says how much was). One frame that
 * fits `out` and is whole in `input` is decoded by zstd in one pass, with no window buffer.
 * @throws Error with zlib's message for data that does not decode, or for more than out.length
 *   bytes of output.
 */
export function decompressInto(codec: ZlibCodec, input: Uint8Array, out: Uint8Array, dictionary?: Uint8Array): Decompressed {
  // The stream's own output chunk is never used here: the smallest zlib allows.
  const options = { chunkSize: 64, ...(dictionary ? { dictionary } : {}) };
  const stream = (codec === 'zstd' ? new ZstdDecompress(options) : new InflateRaw(options)) as unknown as NativeStream;
  const handle = stream._handle;
  if (!handle || typeof handle.writeSync !== 'function' || !(stream._writeState instanceof Uint32Array)) {
    stream.close();
    return viaOneShot(codec, input, out, dictionary);
  }
  let failure: Error | undefined;
  // Called synchronously by the native side during writeSync; the stream's own handler would
  // destroy the stream and emit the error later.
  handle.onerror = (message, _errno, code) => void (failure ??= new Error(code ? `${message} (${code})` : message));
  const state = stream._writeState;
  const step = (inOffset: number, into: Uint8Array): Decompressed => {
    handle.writeSync(stream._finishFlushFlag, input, inOffset, input.length - inOffset, into, 0, into.length);
    if (failure) throw failure;
    return { written: into.length - state[0]!, read: input.length - inOffset - state[1]! };
  };
  try {
    const done = step(0, out);
    if (done.written === out.length) {
      // Full: the stream may have more. One byte more of room tells (zlib's loop does the same).
      const more = step(done.read, new Uint8Array(1));
      if (more.written > 0) throw new Error(`more than ${out.length} bytes of output`);
      done.read += more.read;
    }
    return done;
  } finally {
    stream.close();
  }
}

/** decompressInto through the one-shot call and a copy. */
function viaOneShot(codec: ZlibCodec, input: Uint8Array, out: Uint8Array, dictionary?: Uint8Array): Decompressed {
  // A byte to spare: with exactly out.length, zlib would allocate a second chunk after filling the first.
  const options = { maxOutputLength: Math.max(out.length, 1), chunkSize: Math.max(out.length + 1, 64), info: true as const };
  const { buffer, engine } = (codec === 'zstd' ? zstdDecompressSync(input, { ...options, ...(dictionary ? { dictionary } : {}) }) : inflateRawSync(input, options)) as unknown as {
    buffer: Buffer;
    engine: { bytesWritten: number };
  };
  out.set(buffer);
  return { written: buffer.length, read: engine.bytesWritten };
}
