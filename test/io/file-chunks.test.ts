// Payload files are read into two reused buffers: every byte arrives in order, ranges are exact,
// a chunk stays valid until the next is requested, and a reader that stops early closes the file.
import { spawn, execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPayloadChunks } from '../../dist/src/index.js';
import { fileChunks } from '../../dist/src/io/input.js';
import { INPUT_CHUNK } from '../../dist/src/io/input.js';

let dir: string;
let path: string;
const data = new Uint8Array(INPUT_CHUNK * 3 + 12345);
for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'fastpatch-chunks-'));
  path = join(dir, 'payload.bin');
  await fsp.writeFile(path, data);
});
afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; buffers: Set<ArrayBufferLike>; count: number }> {
  const parts: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let count = 0;
  for await (const chunk of chunks) {
    parts.push(Buffer.from(chunk)); // copied: the chunk is valid until the next is requested
    buffers.add(chunk.buffer);
    count++;
  }
  return { bytes: Buffer.concat(parts), buffers, count };
}

async function openFds(): Promise<number> {
  return (await fsp.readdir('/proc/self/fd')).length;
}

describe('fileChunks', () => {
  it('reads the whole file in INPUT_CHUNK pieces through two buffers', async () => {
    const { bytes, buffers, count } = await collect(readPayloadChunks(path));
    expect(Buffer.compare(bytes, data)).toBe(0);
    expect(count).toBe(4);
    expect(buffers.size).toBe(2);
  });

  it('reads exactly [from, to), and [from, end) without `to`', async () => {
    for (const [from, to] of [[0, 1], [5, INPUT_CHUNK + 7], [INPUT_CHUNK, 2 * INPUT_CHUNK], [data.length - 3, data.length], [100, data.length + 500]] as const) {
      const { bytes } = await collect(fileChunks(path, from, to));
      expect(Buffer.compare(bytes, data.subarray(from, Math.min(to, data.length)))).toBe(0);
    }
    expect((await collect(fileChunks(path, INPUT_CHUNK + 1))).bytes.length).toBe(data.length - INPUT_CHUNK - 1);
    expect((await collect(fileChunks(path, 10, 10))).count).toBe(0);
    expect((await collect(fileChunks(path, data.length + 10))).count).toBe(0);
  });

  it('a chunk is not overwritten while the caller holds it (the next is read into the other buffer)', async () => {
    const chunks = fileChunks(path, 0);
    const first = (await chunks.next()).value as Uint8Array;
    const copy = Buffer.from(first);
    await new Promise((r) => setTimeout(r, 20)); // the read-ahead lands meanwhile
    expect(Buffer.compare(first, copy)).toBe(0);
    await chunks.return(undefined);
  });

  it('closes the file when the reader stops early, with a read still in flight', async () => {
    const before = await openFds();
    for (let i = 0; i < 20; i++) {
      for await (const chunk of fileChunks(path, 0)) {
        expect(chunk.length).toBe(INPUT_CHUNK);
        break;
      }
    }
    expect(await openFds()).toBe(before);
  });

  it('a pipe (process substitution, /dev/stdin) is read from where it is, to its end', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', `cat "${path}" > "${fifo}"`]);
    try {
      const { bytes } = await collect(readPayloadChunks(fifo));
      expect(Buffer.compare(bytes, data)).toBe(0);
    } finally {
      writer.kill();
    }
  });

  it('a missing file is one IO error naming it', async () => {
    const err = await collect(readPayloadChunks(join(dir, 'missing.fpay'))).catch((e: { code: string; message: string }) => e);
    expect(err).toMatchObject({ code: 'IO' });
    expect((err as Error).message).toMatch(/^payload .*missing\.fpay does not exist: give a payload file/);
  });
});
