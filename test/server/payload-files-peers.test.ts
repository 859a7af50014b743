// sendFile against real peers: curl, and FastPatch's own resumable client (openPayload over
// httpChunks, docs/HTTP.md "Resume: Range and If-Range") through a proxy that drops a connection
// mid-body; and a big file streamed at the pace of a slow client with bounded memory.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, renameSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { isSeekable, openPayload, type HttpChunksOptions, type HttpRetryInfo } from '../../dist/src/index.js';
import { withCuttingProxy, withFileServer, withTempDir } from '../helpers/file-server.js';
import { expectFastPatchError, firstDifference, MiB, randomBytes, rejectionOf } from '../helpers/payloads.js';

const run = promisify(execFile);
const DATA = Buffer.from(randomBytes(MiB + 12_345, 11));
const SHA_ETAG = `"${createHash('sha256').update(DATA).digest('hex')}"`;

/** Why curl cannot run here, or undefined when it can. */
const curlMissing: string | undefined = await run('curl', ['--version']).then(
  () => undefined,
  (err: Error) => `curl is not available (${err.message})`,
);

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Asserts byte equality without a megabyte diff. */
function expectSame(actual: Uint8Array, expected: Uint8Array): void {
  expect({ length: actual.length, firstDifference: firstDifference(actual, expected) }).toEqual({ length: expected.length, firstDifference: -1 });
}

/** Quick retries for tests, and a log of them. */
function fast(): HttpChunksOptions & { retriesSeen: HttpRetryInfo[] } {
  const retriesSeen: HttpRetryInfo[] = [];
  return { backoffMs: 1, maxBackoffMs: 5, stallTimeoutMs: 5_000, onRetry: (info) => retriesSeen.push(info), retriesSeen };
}

describe('sendFile and curl', () => {
  it('curl -r 100-199 gets those bytes (206); curl -C - completes a partial download byte-identical', async (ctx) => {
    if (curlMissing) {
      console.warn(`skipped: ${curlMissing}`);
      ctx.skip();
    }
    await withTempDir(async (dir) => {
      await fsp.writeFile(join(dir, 'payload'), DATA);
      await withFileServer(dir, { etag: SHA_ETAG }, async (s) => {
        const part = join(dir, 'part');
        const ranged = await run('curl', ['-sS', '-r', '100-199', '-o', part, '-w', '%{http_code}', s.url()]);
        expect(ranged.stdout).toBe('206');
        expectSame(await fsp.readFile(part), DATA.subarray(100, 200));

        const partial = join(dir, 'partial');
        await fsp.writeFile(partial, DATA.subarray(0, 400_000));
        const resumed = await run('curl', ['-sS', '-C', '-', '-o', partial, '-w', '%{http_code}', s.url()]);
        expect(resumed.stdout).toBe('206');
        expect(s.seen.at(-1)?.headers.range).toBe('bytes=400000-');
        expectSame(await fsp.readFile(partial), DATA);

        const head = await run('curl', ['-sS', '-I', s.url()]);
        expect(head.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        expect(head.stdout.toLowerCase()).toContain(`\r\ncontent-length: ${DATA.length}\r\n`);
        expect(head.stdout.toLowerCase()).toContain(`\r\netag: ${SHA_ETAG}\r\n`);
      });
    });
  });
});

describe('sendFile and FastPatch’s resumable client (openPayload)', () => {
  it.each([
    ['a content-addressed ETag', { etag: SHA_ETAG }],
    ['the default ETag', undefined],
  ])('with %s: a connection dropped mid-body is resumed with Range and If-Range (206), byte-identical', async (_, options) => {
    await withTempDir(async (dir) => {
      await fsp.writeFile(join(dir, 'payload'), DATA);
      await withFileServer(dir, options, async (s) => {
        await withCuttingProxy(s.port, [300_000], () => undefined, async (proxyPort) => {
          const o = fast();
          const input = openPayload(`http://127.0.0.1:${proxyPort}/payload`, { http: o });
          if (!isSeekable(input)) throw new Error('an http URL must give a seekable payload');
          expectSame(await collect(input.read(0)), DATA);
          expect(o.retriesSeen).toHaveLength(1);
          const offset = o.retriesSeen[0]!.offset;
          expect(offset).toBeGreaterThan(0);
          expect(offset).toBeLessThan(300_000);
          // The client sent back, in If-Range, the strong ETag sendFile gave it, and it held.
          const etag = s.seen[0]!.etag!;
          if (options) expect(etag).toBe(options.etag);
          expect(s.seen.map((r) => [r.headers.range, r.headers['if-range']])).toEqual([
            [undefined, undefined],
            [`bytes=${offset}-`, etag],
          ]);
          expect(s.seen.map((r) => r.status)).toEqual([200, 206]);
          // A read from the middle asks for its range from the first request.
          expectSame(await collect(input.read(500_000, 600_000)), DATA.subarray(500_000, 600_000));
          expect(s.seen.at(-1)?.headers.range).toBe('bytes=500000-');
        });
      });
    });
  });

  it('a new file renamed over the payload between two tries: If-Range fails, sendFile sends the new file whole (200), and the client refuses to mix', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'payload');
      await fsp.writeFile(path, DATA);
      const changed = Buffer.from(DATA);
      changed[700_000] = changed[700_000]! ^ 0xff; // same size, one byte different: only the ETag tells
      await fsp.writeFile(join(dir, 'next'), changed);
      await withFileServer(dir, undefined, async (s) => {
        const replace = () => renameSync(join(dir, 'next'), path);
        await withCuttingProxy(s.port, [300_000], replace, async (proxyPort) => {
          const o = fast();
          const input = openPayload(`http://127.0.0.1:${proxyPort}/payload`, { http: o });
          if (!isSeekable(input)) throw new Error('an http URL must give a seekable payload');
          const err = await rejectionOf(collect(input.read(0)));
          expectFastPatchError(err, 'IO', 6);
          expect(err.message).toMatch(/the payload changed on the server during the download \(ETag "[^"]+" became "[^"]+"\)/);
          expect(s.seen).toHaveLength(2);
          expect(s.seen[1]!.headers['if-range']).toMatch(/^"/);
          expect(s.seen.map((r) => r.status)).toEqual([200, 200]);
        });
      });
    });
  });
});

/** The engine's gc(), exposed at run time (vitest's workers do not start with --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('sendFile: memory', () => {
  it('a 64 MiB file to a client that pauses: the server reads only as fast as the client takes (memory far below the size)', async () => {
    const gc = exposeGc();
    await withTempDir(async (dir) => {
      const size = 64 * MiB;
      const path = join(dir, 'payload');
      // Sparse, with data blocks here and there (the last one sets the size).
      const handle = await fsp.open(path, 'w');
      for (const [i, at] of [0, 8 * MiB + 5, 33 * MiB, size - 4096].entries()) await handle.write(Buffer.from(randomBytes(4096, i + 1)), 0, 4096, at);
      await handle.close();
      const expected = createHash('sha256');
      for await (const chunk of createReadStream(path)) expected.update(chunk as Buffer);

      await withFileServer(dir, undefined, async (s) => {
        gc();
        const before = process.memoryUsage();
        let paused: NodeJS.MemoryUsage | undefined;
        const got = createHash('sha256');
        let total = 0;
        await new Promise<void>((resolve, reject) => {
          http.get(s.url(), { agent: false }, (res) => {
            res.on('data', (b: Buffer) => {
              got.update(b);
              total += b.length;
              if (paused || total < MiB) return;
              // Long enough for a server that ignores backpressure to read the whole sparse file.
              res.pause();
              setTimeout(() => {
                gc();
                paused = process.memoryUsage();
                res.resume();
              }, 500);
            });
            res.on('end', resolve);
            res.on('error', reject);
          }).on('error', reject);
        });
        expect(total).toBe(size);
        expect(got.digest('hex')).toBe(expected.digest('hex'));
        expect(paused).toBeDefined();
        // A server holding the body (or writing it all into the socket's buffer) would show 64 MiB here.
        expect((paused!.arrayBuffers - before.arrayBuffers) / MiB).toBeLessThan(16);
        expect((paused!.rss - before.rss) / MiB).toBeLessThan(32);
      });
    });
  }, 60_000); // a hang guard only
});
