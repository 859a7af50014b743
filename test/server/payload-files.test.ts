// sendFile against a real HTTP server on 127.0.0.1: statuses and headers per case (docs/HTTP.md,
// "Serving payloads"), refusals, aborts and replacement. Real peers (curl, FastPatch's own
// resumable client) and the memory bound are in payload-files-peers.test.ts.
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openDescriptorsOf, request, withFileServer, withTempDir } from '../helpers/file-server.js';
import { MiB, randomBytes } from '../helpers/payloads.js';

const DATA = Buffer.from(randomBytes(100_000, 7));
const SIZE = DATA.length;
const HOUR = 3_600_000;

async function writePayload(dir: string, data: Uint8Array = DATA, name = 'payload'): Promise<string> {
  const path = join(dir, name);
  await fsp.writeFile(path, data);
  return path;
}

/** Sets the file's times an hour back: its Last-Modified is then a strong validator (RFC 9110 §8.8.2.2). */
async function age(path: string): Promise<void> {
  const t = new Date(Date.now() - HOUR);
  await fsp.utimes(path, t, t);
}

const httpDate = (ms: number) => new Date(ms).toUTCString();

describe('sendFile: whole file, HEAD, methods', () => {
  it('GET: 200 with the bytes, Content-Length, Accept-Ranges, Last-Modified and a strong ETag that a new file changes', async () => {
    await withTempDir(async (dir) => {
      const path = await writePayload(dir);
      const stats = await fsp.stat(path);
      await withFileServer(dir, undefined, async (s) => {
        const a = await request(s.url());
        expect(a.status).toBe(200);
        expect(a.body.equals(DATA)).toBe(true);
        expect(a.headers).toMatchObject({
          'accept-ranges': 'bytes',
          'content-length': String(SIZE),
          'content-type': 'application/octet-stream',
          'last-modified': httpDate(stats.mtimeMs),
        });
        expect(a.headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
        expect(a.headers['cache-control']).toBeUndefined();
        expect(a.headers['content-range']).toBeUndefined();
        expect((await request(s.url())).headers.etag).toBe(a.headers.etag);
        // Same bytes, new file (new inode and time): a new tag, since the default cannot know.
        await writePayload(dir, DATA, 'next');
        await fsp.rename(join(dir, 'next'), path);
        expect((await request(s.url())).headers.etag).not.toBe(a.headers.etag);
      });
    });
  });

  it('options: the given ETag, Content-Type and Cache-Control are sent', async () => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      const etag = `"${'ab'.repeat(32)}"`;
      await withFileServer(dir, { etag, contentType: 'application/vnd.fastpatch', cacheControl: 'public, max-age=31536000, immutable' }, async (s) => {
        const a = await request(s.url());
        expect(a.status).toBe(200);
        expect(a.headers).toMatchObject({ etag, 'content-type': 'application/vnd.fastpatch', 'cache-control': 'public, max-age=31536000, immutable' });
      });
    });
  });

  it('HEAD: the headers GET sends, no body; Range does not apply to HEAD (RFC 9110 §14.2)', async () => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      await withFileServer(dir, { cacheControl: 'no-cache' }, async (s) => {
        const get = await request(s.url());
        const head = await request(s.url(), { method: 'HEAD' });
        const pick = (h: http.IncomingHttpHeaders) => [h['content-length'], h['accept-ranges'], h.etag, h['last-modified'], h['content-type'], h['cache-control']];
        expect(head.status).toBe(200);
        expect(pick(head.headers)).toEqual(pick(get.headers));
        expect(head.body.length).toBe(0);
        const ranged = await request(s.url(), { method: 'HEAD', headers: { range: 'bytes=0-9' } });
        expect([ranged.status, ranged.headers['content-length'], ranged.headers['content-range']]).toEqual([200, String(SIZE), undefined]);
        const missing = await request(s.url('nothing'), { method: 'HEAD' });
        expect([missing.status, missing.body.length]).toEqual([404, 0]);
      });
    });
  });

  it('other methods: 405 with Allow: GET, HEAD, and the file is not touched', async () => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      await withFileServer(dir, undefined, async (s) => {
        for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
          const a = await request(s.url(), { method });
          expect([method, a.status, a.headers.allow], a.body.toString()).toEqual([method, 405, 'GET, HEAD']);
        }
      });
      expect((await fsp.readFile(join(dir, 'payload'))).equals(DATA)).toBe(true);
    });
  });
});

describe('sendFile: Range', () => {
  const satisfied: [string, number, number][] = [
    ['bytes=100-199', 100, 199],
    ['bytes=100-', 100, SIZE - 1],
    ['bytes=-100', SIZE - 100, SIZE - 1],
    ['bytes=0-0', 0, 0],
    [`bytes=${SIZE - 1}-`, SIZE - 1, SIZE - 1],
    ['bytes=99990-200000', 99990, SIZE - 1], // the end is clamped to the last byte
    ['bytes=-1000000', 0, SIZE - 1], // a suffix longer than the file is the whole file
    ['bytes=5-123456789012345678901234', 5, SIZE - 1], // an end of 24 digits: past any file
    ['bytes=0000000000000000000010-19', 10, 19], // leading zeros are not significant digits
    ['Bytes=10-19, ', 10, 19], // the unit is case-insensitive; empty list elements mean nothing
  ];
  it.each(satisfied)('%s: 206 with Content-Range bytes %i-%i/size and those bytes', async (range, start, end) => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      await withFileServer(dir, undefined, async (s) => {
        const a = await request(s.url(), { headers: { range } });
        expect(a.status).toBe(206);
        expect(a.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
        expect(a.headers['content-length']).toBe(String(end - start + 1));
        expect(a.body.equals(DATA.subarray(start, end + 1))).toBe(true);
      });
    });
  });

  it('unsatisfiable (start at or past the end, suffix 0): 416 with Content-Range bytes */size', async () => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      await writePayload(dir, new Uint8Array(0), 'empty');
      await withFileServer(dir, undefined, async (s) => {
        for (const range of [`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`, 'bytes=-0', 'bytes=123456789012345678901234-']) {
          const a = await request(s.url(), { headers: { range } });
          expect([range, a.status, a.headers['content-range']]).toEqual([range, 416, `bytes */${SIZE}`]);
        }
        const empty = await request(s.url('empty'), { headers: { range: 'bytes=0-' } });
        expect([empty.status, empty.headers['content-range']]).toEqual([416, 'bytes */0']);
        // An empty file has no byte a 206 could name: its (empty) whole answers a suffix.
        const suffix = await request(s.url('empty'), { headers: { range: 'bytes=-5' } });
        expect([suffix.status, suffix.headers['content-length'], suffix.body.length]).toEqual([200, '0', 0]);
      });
    });
  });

  it('several ranges, or a Range that does not parse, is ignored: 200 with the whole file', async () => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      await withFileServer(dir, undefined, async (s) => {
        const ignored = ['bytes=0-1,5-6', 'bytes=0-1, 999999-', 'bytes=abc', 'bytes=5-2', 'items=0-5', 'bytes=-', 'bytes=1-2-3', 'bytes=0x10-20', 'bytes=1.5-2', 'bytes=+1-2', 'bytes 0-5', ''];
        for (const range of ignored) {
          const a = await request(s.url(), { headers: { range } });
          expect([range, a.status, a.headers['content-range'], a.body.length]).toEqual([range, 200, undefined, SIZE]);
        }
      });
    });
  });
});

describe('sendFile: If-Range, If-None-Match and the other preconditions', () => {
  it('If-Range: the same strong ETag or Last-Modified gives the range; another, weak or stale one the whole file', async () => {
    await withTempDir(async (dir) => {
      const path = await writePayload(dir);
      await age(path);
      await withFileServer(dir, undefined, async (s) => {
        const { etag, 'last-modified': lastModified } = (await request(s.url(), { method: 'HEAD' })).headers;
        const cases: [string, number][] = [
          [etag!, 206],
          ['"another"', 200],
          [`W/${etag}`, 200], // a weak tag never matches in If-Range
          [lastModified!, 206],
          [httpDate(Date.parse(lastModified!) - 1000), 200],
          [httpDate(Date.parse(lastModified!) + 1000), 200], // only exactly the date sent
          ['yesterday', 200],
        ];
        for (const [ifRange, status] of cases) {
          const a = await request(s.url(), { headers: { range: 'bytes=1000-', 'if-range': ifRange } });
          expect([ifRange, a.status, a.body.length]).toEqual([ifRange, status, status === 206 ? SIZE - 1000 : SIZE]);
        }
      });
    });
  });

  it('If-Range with a Last-Modified not a second old is not trusted (a change could hide in that second): 200', async () => {
    await withTempDir(async (dir) => {
      const path = await writePayload(dir);
      // Modified "in the future": Last-Modified is then now (RFC 9110 §8.8.2.1), never a second old.
      const later = new Date(Date.now() + HOUR);
      await fsp.utimes(path, later, later);
      await withFileServer(dir, undefined, async (s) => {
        // Retry until both requests fall in the same second, so the date sent is the one the server has.
        for (let tries = 0; ; tries++) {
          const sent = httpDate(Date.now());
          const a = await request(s.url(), { headers: { range: 'bytes=1000-', 'if-range': sent } });
          if (a.headers['last-modified'] !== sent && tries < 5) continue;
          expect(a.headers['last-modified']).toBe(sent);
          expect(a.status).toBe(200);
          break;
        }
      });
    });
  });

  it('If-None-Match (weak comparison, lists, *) and If-Modified-Since give 304 with the validators and no body; If-Match and If-Unmodified-Since give 412', async () => {
    await withTempDir(async (dir) => {
      const path = await writePayload(dir);
      await age(path);
      await withFileServer(dir, { cacheControl: 'max-age=60' }, async (s) => {
        const { etag, 'last-modified': lm } = (await request(s.url(), { method: 'HEAD' })).headers as { etag: string; 'last-modified': string };
        const ms = Date.parse(lm);
        const cases: [Record<string, string>, number][] = [
          [{ 'if-none-match': etag }, 304],
          [{ 'if-none-match': `W/${etag}` }, 304],
          [{ 'if-none-match': `"x", ${etag}` }, 304],
          [{ 'if-none-match': '*' }, 304],
          [{ 'if-none-match': '"x"' }, 200],
          [{ 'if-none-match': etag, range: 'bytes=0-9' }, 304],
          [{ 'if-modified-since': lm }, 304],
          [{ 'if-modified-since': httpDate(ms + HOUR) }, 304],
          [{ 'if-modified-since': httpDate(ms - 1000) }, 200],
          [{ 'if-modified-since': 'not a date' }, 200],
          [{ 'if-none-match': '"x"', 'if-modified-since': lm }, 200], // If-None-Match decides alone
          [{ 'if-match': etag }, 200],
          [{ 'if-match': `"x", ${etag}` }, 200],
          [{ 'if-match': '"x"' }, 412],
          [{ 'if-match': `W/${etag}` }, 412], // If-Match compares strongly
          [{ 'if-unmodified-since': lm }, 200],
          [{ 'if-unmodified-since': httpDate(ms - HOUR) }, 412],
          [{ 'if-match': '"x"', 'if-none-match': etag }, 412], // If-Match is evaluated first
        ];
        for (const [headers, status] of cases) {
          const a = await request(s.url(), { headers });
          expect([headers, a.status], a.body.toString()).toEqual([headers, status]);
          if (status === 304) {
            expect(a.body.length).toBe(0);
            expect([a.headers.etag, a.headers['last-modified'], a.headers['cache-control'], a.headers['content-length']]).toEqual([etag, lm, 'max-age=60', undefined]);
          }
        }
        const head = await request(s.url(), { method: 'HEAD', headers: { 'if-none-match': etag } });
        expect([head.status, head.body.length]).toEqual([304, 0]);
      });
    });
  });
});

describe('sendFile: what is not served', () => {
  it('a symlink is 404 and its target is never sent; a folder, a FIFO, a missing name, a path through a file: 404', async () => {
    await withTempDir(async (dir) => {
      const secret = Buffer.from('the contents of a file outside the payloads\n');
      await fsp.mkdir(join(dir, 'public'));
      await fsp.writeFile(join(dir, 'secret'), secret);
      await fsp.symlink(join(dir, 'secret'), join(dir, 'public', 'link'));
      await fsp.mkdir(join(dir, 'public', 'folder'));
      await writePayload(join(dir, 'public'));
      const fifo = await promisify(execFile)('mkfifo', [join(dir, 'public', 'fifo')]).then(() => true, () => false);
      await withFileServer(join(dir, 'public'), undefined, async (s) => {
        const names = ['link', 'folder', 'missing', 'payload/below', ...(fifo ? ['fifo'] : [])];
        for (const name of names) {
          const a = await request(s.url(name));
          expect([name, a.status]).toEqual([name, 404]);
          expect(a.body.includes(secret)).toBe(false);
        }
        expect((await request(s.url())).status).toBe(200);
      });
    });
  });

  it('bad options answer 500 (an ETag without quotes, a header value with CR LF), and the server goes on', async () => {
    await withTempDir(async (dir) => {
      await writePayload(dir);
      for (const options of [{ etag: 'abc' }, { contentType: 'text/plain\r\nx-injected: 1' }, { cacheControl: 'a\nb' }]) {
        await withFileServer(dir, options, async (s) => {
          const a = await request(s.url());
          expect([options, a.status, a.headers['x-injected']]).toEqual([options, 500, undefined]);
          expect((await request(s.url(), { method: 'POST' })).status).toBe(405);
        });
      }
    });
  });
});

describe('sendFile: aborts and replacement', () => {
  it('clients that go away mid-body or before the answer crash nothing, leave no descriptor open, and the server keeps serving', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'payload');
      await fsp.writeFile(path, '');
      await fsp.truncate(path, 32 * MiB); // sparse: big enough that the sockets cannot hold it all
      await withFileServer(dir, undefined, async (s) => {
        for (const range of [undefined, 'bytes=1000-']) {
          await new Promise<void>((resolve, reject) => {
            const req = http.get(s.url(), { agent: false, headers: range ? { range } : {} }, (res) => {
              res.once('data', () => {
                req.destroy();
                resolve();
              });
            });
            req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
          });
        }
        for (let i = 0; i < 10; i++) {
          const req = http.get(s.url(), { agent: false });
          req.on('error', () => undefined);
          req.on('socket', (socket) => socket.on('connect', () => setImmediate(() => req.destroy())));
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        await Promise.all(s.calls);
        expect(s.calls.length).toBeGreaterThanOrEqual(2);
        expect(openDescriptorsOf(path)).toEqual([]);
        const after = await request(s.url(), { headers: { range: 'bytes=-10' } });
        expect([after.status, after.body.length]).toEqual([206, 10]);
      });
    });
  });

  it('a new file renamed over the name mid-answer: that answer stays on the old bytes, the next gets the new ones', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'payload');
      const old = Buffer.alloc(16 * MiB, 0x11);
      const next = Buffer.alloc(8 * MiB, 0x22);
      await fsp.writeFile(path, old);
      await fsp.writeFile(join(dir, 'next'), next);
      await withFileServer(dir, undefined, async (s) => {
        const body = await new Promise<{ etag: string; bytes: Buffer }>((resolve, reject) => {
          http.get(s.url(), { agent: false }, (res) => {
            const parts: Buffer[] = [];
            res.once('data', (b: Buffer) => {
              parts.push(b);
              res.pause();
              void fsp.rename(join(dir, 'next'), path).then(() => {
                res.on('data', (c: Buffer) => parts.push(c));
                res.resume();
              }, reject);
            });
            res.on('end', () => resolve({ etag: res.headers.etag!, bytes: Buffer.concat(parts) }));
          }).on('error', reject);
        });
        expect(body.bytes.equals(old)).toBe(true);
        const a = await request(s.url());
        expect(a.body.equals(next)).toBe(true);
        expect(a.headers.etag).not.toBe(body.etag);
      });
    });
  });

  it('the file truncated in place mid-answer: the connection is cut, so the client sees a short body, never a complete one', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'payload');
      await fsp.writeFile(path, Buffer.alloc(16 * MiB, 0x33));
      // Keep-alive, as a CDN or proxy in front would: a body merely ended short would leave
      // this client waiting for the rest, where a cut connection tells it at once.
      const agent = new http.Agent({ keepAlive: true });
      try {
        await withFileServer(dir, undefined, async (s) => {
          const outcome = await new Promise<{ got: number; complete: boolean; waiting?: true }>((resolve) => {
            http.get(s.url(), { agent }, (res) => {
              let got = 0;
              const guard = setTimeout(() => resolve({ got, complete: res.complete, waiting: true }), 5_000);
              const done = () => {
                clearTimeout(guard);
                resolve({ got, complete: res.complete });
              };
              res.once('data', (b: Buffer) => {
                got += b.length;
                res.pause();
                void fsp.truncate(path, 4 * MiB).then(() => {
                  res.on('data', (c: Buffer) => (got += c.length));
                  res.resume();
                });
              });
              res.on('end', done);
              res.on('error', done);
              res.on('close', done);
            });
          });
          expect(outcome).toEqual({ got: expect.any(Number), complete: false });
          expect(outcome.got).toBeLessThan(16 * MiB);
          expect((await request(s.url())).body.length).toBe(4 * MiB);
        });
      } finally {
        agent.destroy();
      }
    });
  });

});
