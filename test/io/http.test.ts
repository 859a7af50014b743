// HTTP(S) payload sources: httpChunks against a local node:http server on 127.0.0.1 that drops
// connections, resets them, stalls, truncates, ignores Range, changes the payload and serves wrong
// bytes; then a real signed payload applied over HTTP, through the library and the CLI.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, isSeekable, openPayload, readPayloadChunks, writeKeyPair, type HttpChunksOptions, type HttpRetryInfo } from '../../dist/src/index.js';
import { httpChunks } from '../../dist/src/io/http.js';
import { CLI_PATH, lines, runCli } from '../helpers/cli.js';
import {
  KiB,
  MiB,
  buildPayload,
  dataStartOf,
  expectFastPatchError,
  firstDifference,
  makeKeyPair,
  mixedImage,
  randomBytes,
  rejectionOf,
  removeDir,
  tempDir,
  type BuiltPayload,
} from '../helpers/payloads.js';

// ---------------------------------------------------------------------------------------------
// A test server

interface Seen {
  index: number;
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void | Promise<void>;

interface TestServer {
  url: (path?: string) => string;
  seen: Seen[];
  close: () => Promise<void>;
}

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function startServer(handler: Handler): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const s: Seen = { index: seen.length, path: req.url ?? '', range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined };
    seen.push(s);
    Promise.resolve(handler(req, res, s)).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const ts: TestServer = {
    url: (path = '/payload') => `http://127.0.0.1:${port}${path}`,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(ts);
  return ts;
}

/** A body served in pieces without holding it all: `piece(start, end)` makes bytes on demand. */
interface Body {
  size: number;
  piece: (start: number, end: number) => Uint8Array;
}

const bufferBody = (data: Uint8Array): Body => ({ size: data.length, piece: (start, end) => data.subarray(start, end) });

/** How one response misbehaves after `after` body bytes (counted in this response). */
type Cut = { after: number; how: 'drop' | 'reset' | 'end' | 'stall' };

interface ServeOptions {
  etag?: string;
  lastModified?: string;
  /** Answer every request with 200 and the whole body. */
  ignoreRange?: boolean;
  cut?: Cut;
  /** Bytes per write; the server waits for each to be flushed (so it never buffers the body). */
  pieceSize?: number;
}

/** Resolves when `res.write(piece)` is flushed, or the connection closed. */
function write(res: ServerResponse, piece: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    const done = () => {
      res.off('close', done);
      resolve();
    };
    res.once('close', done);
    res.write(piece, done);
  });
}

/** Serves `body` honouring `Range: bytes=N-` and If-Range, misbehaving as `o` says. */
async function serveBody(req: IncomingMessage, res: ServerResponse, body: Body, o: ServeOptions = {}): Promise<void> {
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': o.ignoreRange ? 'none' : 'bytes' };
  if (o.etag) headers.etag = o.etag;
  if (o.lastModified) headers['last-modified'] = o.lastModified;
  let start = 0;
  let status = 200;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'];
  const validatorOk = ifRange === undefined || ifRange === o.etag || ifRange === o.lastModified;
  if (m && !o.ignoreRange && validatorOk) {
    start = Number(m[1]);
    if (start >= body.size) {
      res.writeHead(416, { 'content-range': `bytes */${body.size}` }).end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${body.size - 1}/${body.size}`;
  }
  headers['content-length'] = body.size - start;
  res.writeHead(status, headers);
  const pieceSize = o.pieceSize ?? 16 * KiB;
  let sent = 0;
  for (let at = start; at < body.size && !res.destroyed; ) {
    let end = Math.min(at + pieceSize, body.size);
    if (o.cut) end = Math.min(end, start + o.cut.after);
    if (end > at) {
      await write(res, body.piece(at, end));
      sent += end - at;
      at = end;
    }
    if (o.cut && sent >= o.cut.after) {
      const socket = res.socket;
      if (o.cut.how === 'drop') socket?.destroy();
      else if (o.cut.how === 'reset') socket?.resetAndDestroy();
      else if (o.cut.how === 'end') socket?.end();
      // 'stall': keep the connection open and send nothing more.
      return;
    }
  }
  res.end();
}

/** A server for `data` where request `i` misbehaves as `plan(i)` says. */
function payloadServer(data: Uint8Array | Body, plan: (index: number, seen: Seen) => ServeOptions = () => ({})): Promise<TestServer> {
  const body = data instanceof Uint8Array ? bufferBody(data) : data;
  return startServer((req, res, seen) => serveBody(req, res, body, plan(seen.index, seen)));
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Asserts byte equality without a megabyte diff. */
function expectSame(actual: Uint8Array, expected: Uint8Array): void {
  expect({ length: actual.length, firstDifference: firstDifference(actual, expected) }).toEqual({ length: expected.length, firstDifference: -1 });
}

/** Fast test options plus a log of retries. */
function fast(extra: HttpChunksOptions = {}): HttpChunksOptions & { retriesSeen: HttpRetryInfo[] } {
  const retriesSeen: HttpRetryInfo[] = [];
  return { backoffMs: 1, maxBackoffMs: 5, stallTimeoutMs: 5_000, onRetry: (info) => retriesSeen.push(info), ...extra, retriesSeen };
}

const DATA = randomBytes(MiB + 12_345, 1);
const ETAG = '"v1"';

// ---------------------------------------------------------------------------------------------

describe('httpChunks', () => {
  it('streams a whole payload byte-identical in one plain GET', async () => {
    const server = await payloadServer(DATA, () => ({ etag: ETAG }));
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen.map((s) => s.range)).toEqual([undefined]);
    expect(o.retriesSeen).toEqual([]);
  });

  it('a transfer dropped 10 times completes; each retry asks for Range from where it stopped, with If-Range', async () => {
    const K = 100 * KiB + 7;
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, ...(i < 10 ? { cut: { after: K, how: 'drop' } } : {}) }));
    const o = fast({ retries: 2 }); // progress resets the count: 10 drops with only 2 retries in a row allowed
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen).toHaveLength(11);
    expect(server.seen.map((s) => s.range)).toEqual([undefined, ...Array.from({ length: 10 }, (_, i) => `bytes=${(i + 1) * K}-`)]);
    expect(server.seen.slice(1).every((s) => s.ifRange === ETAG)).toBe(true);
    expect(o.retriesSeen.map((r) => [r.offset, r.failures])).toEqual(Array.from({ length: 10 }, (_, i) => [(i + 1) * K, 1]));
  });

  it('connection resets (RST) mid-body are retried and the result is byte-identical', async () => {
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, ...(i < 10 ? { cut: { after: 64 * KiB * (i + 1), how: 'reset' } } : {}) }));
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(o.retriesSeen.length).toBeGreaterThanOrEqual(1);
    expect(o.retriesSeen.length).toBeLessThanOrEqual(10);
    for (const [i, r] of o.retriesSeen.entries()) expect(server.seen[i + 1]!.range).toBe(`bytes=${r.offset}-`);
  });

  it('a server that ignores Range: the bytes before the offset are dropped as they stream, no duplicates', async () => {
    const K = 300 * KiB;
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, ignoreRange: true, ...(i < 3 ? { cut: { after: K * (i + 1), how: 'drop' } } : {}) }));
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen.map((s) => s.range)).toEqual([undefined, `bytes=${K}-`, `bytes=${2 * K}-`, `bytes=${3 * K}-`]);
  });

  it('a stalled body (server stops sending) hits the stall timeout and resumes', async () => {
    const K = 200 * KiB;
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, ...(i === 0 ? { cut: { after: K, how: 'stall' } } : {}) }));
    const o = fast({ stallTimeoutMs: 300 });
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(o.retriesSeen).toHaveLength(1);
    expect(o.retriesSeen[0]!.error.message).toMatch(/no data for 300 ms/);
    expect(server.seen[1]!.range).toBe(`bytes=${K}-`);
  });

  it('a server that never answers the request head hits the stall timeout too', async () => {
    const server = await startServer(async (req, res, seen) => {
      if (seen.index === 0) return; // never answer
      await serveBody(req, res, bufferBody(DATA));
    });
    const o = fast({ stallTimeoutMs: 300 });
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(o.retriesSeen.map((r) => r.error.message)).toEqual(['no response within 300 ms']);
  });

  it('a slow consumer is not a stall: the timer runs only while waiting for the server', async () => {
    const server = await payloadServer(DATA, () => ({ etag: ETAG }));
    const o = fast({ stallTimeoutMs: 150 });
    const parts: Uint8Array[] = [];
    let paused = 0;
    for await (const chunk of httpChunks(server.url(), o)) {
      parts.push(chunk);
      if (paused++ < 2) await new Promise((r) => setTimeout(r, 400));
    }
    expectSame(Buffer.concat(parts), DATA);
    expect(o.retriesSeen).toEqual([]);
  });

  it('truncation: a body that ends before its Content-Length resumes from where it stopped', async () => {
    const K = 123_457;
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, ...(i < 3 ? { cut: { after: K, how: 'end' } } : {}) }));
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen.map((s) => s.range)).toEqual([undefined, `bytes=${K}-`, `bytes=${2 * K}-`, `bytes=${3 * K}-`]);
  });

  it('truncation: a 206 whose Content-Length is shorter than its Content-Range is a drop, not the end', async () => {
    const size = DATA.length;
    const server = await startServer((req, res, seen) => {
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? 'bytes=0-')![1]);
      const end = seen.index < 2 ? Math.min(start + 50_000, size) : size;
      res.writeHead(206, { etag: ETAG, 'content-range': `bytes ${start}-${size - 1}/${size}`, 'content-length': end - start });
      res.end(DATA.subarray(start, end));
    });
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen.map((s) => s.range)).toEqual([undefined, 'bytes=50000-', 'bytes=100000-']);
    expect(o.retriesSeen[0]!.error.message).toMatch(/ended after 50000 of/);
  });

  it('a chunked body of unknown length cut short is a drop (not the end) and resumes', async () => {
    const server = await startServer(async (req, res, seen) => {
      if (seen.index > 0) return serveBody(req, res, bufferBody(DATA), { etag: ETAG });
      res.writeHead(200, { etag: ETAG }); // no Content-Length: chunked
      await write(res, DATA.subarray(0, 77_777));
      res.socket?.end(); // a clean FIN, but no last chunk
    });
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen.map((s) => s.range)).toEqual([undefined, 'bytes=77777-']);
  });

  it('a server that sends smaller ranges than asked is followed range by range', async () => {
    const size = DATA.length;
    const step = 256 * KiB;
    const server = await startServer((req, res) => {
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? 'bytes=0-')![1]);
      const end = Math.min(start + step, size);
      res.writeHead(206, { etag: ETAG, 'content-range': `bytes ${start}-${end - 1}/${size}`, 'content-length': end - start });
      res.end(DATA.subarray(start, end));
    });
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(server.seen).toHaveLength(Math.ceil(size / step));
    expect(o.retriesSeen).toEqual([]);
  });

  it('5xx answers are retried (honouring the bounded backoff), then the transfer completes', async () => {
    const server = await startServer(async (req, res, seen) => {
      if (seen.index < 3) return void res.writeHead(503, { 'retry-after': '0' }).end('busy');
      await serveBody(req, res, bufferBody(DATA), { etag: ETAG });
    });
    const o = fast();
    expectSame(await collect(httpChunks(server.url(), o)), DATA);
    expect(o.retriesSeen.map((r) => [r.failures, r.error.message])).toEqual([
      [1, 'HTTP 503 Service Unavailable'],
      [2, 'HTTP 503 Service Unavailable'],
      [3, 'HTTP 503 Service Unavailable'],
    ]);
  });

  it('404 fails at once: FastPatchError IO naming the URL and the status, no retry', async () => {
    const server = await startServer((_req, res) => void res.writeHead(404).end('no'));
    const o = fast();
    const err = await rejectionOf(collect(httpChunks(server.url('/missing.fpay?token=secret'), o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toBe(`download ${server.url('/missing.fpay')}?…: HTTP 404 Not Found; check the URL`);
    expect(server.seen).toHaveLength(1);
    expect(o.retriesSeen).toEqual([]);
  });

  it('a connection dropped every time without a byte ends after the bounded retries with a clear error', async () => {
    const server = await startServer((_req, res) => void res.socket?.destroy());
    const o = fast({ retries: 4 });
    const err = await rejectionOf(collect(httpChunks(server.url(), o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(new RegExp(`^download ${server.url()}: gave up at byte 0 after 5 attempts \\(5 failures in a row\\): last error: connection reset \\(socket hang up\\); once the server answers again, the same command with --resume fetches only what is missing \\(--retries and --timeout set how long to try\\)$`));
    expect(server.seen).toHaveLength(5);
    expect(o.retriesSeen.map((r) => [r.failures, r.limit])).toEqual([[1, 4], [2, 4], [3, 4], [4, 4]]);
  });

  it('drops with progress between them never give up; drops without progress after some bytes do', async () => {
    const K = 1000;
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, cut: { after: i < 3 ? K : 0, how: 'drop' } }));
    const o = fast({ retries: 3 });
    const got: Uint8Array[] = [];
    const err = await rejectionOf(
      (async () => {
        for await (const c of httpChunks(server.url(), o)) got.push(c);
      })(),
    );
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/gave up at byte 3000 after 6 attempts \(4 failures in a row\)/);
    expectSame(Buffer.concat(got), DATA.subarray(0, 3 * K));
  });

  it('backoff doubles from backoffMs, with jitter, up to maxBackoffMs', async () => {
    const server = await startServer((_req, res) => void res.writeHead(500).end());
    const o = fast({ retries: 6, backoffMs: 4, maxBackoffMs: 20 });
    await rejectionOf(collect(httpChunks(server.url(), o)));
    const caps = [4, 8, 16, 20, 20, 20];
    o.retriesSeen.forEach((r, i) => {
      expect(r.delayMs).toBeGreaterThanOrEqual(caps[i]! / 2);
      expect(r.delayMs).toBeLessThanOrEqual(caps[i]!);
    });
  });

  it('`from` starts mid-payload: Range from the first request, with or without a server that does ranges', async () => {
    const from = 654_321;
    const ranged = await payloadServer(DATA, (i) => ({ etag: ETAG, ...(i === 0 ? { cut: { after: 10_000, how: 'drop' } } : {}) }));
    expectSame(await collect(httpChunks(ranged.url(), fast({ from }))), DATA.subarray(from));
    expect(ranged.seen.map((s) => [s.range, s.ifRange])).toEqual([
      [`bytes=${from}-`, undefined],
      [`bytes=${from + 10_000}-`, ETAG],
    ]);
    const plain = await payloadServer(DATA, () => ({ ignoreRange: true }));
    expectSame(await collect(httpChunks(plain.url(), fast({ from }))), DATA.subarray(from));
  });

  it('`from` at the very end yields nothing; past the end is a clear error', async () => {
    const server = await payloadServer(DATA, () => ({ etag: ETAG }));
    expect((await collect(httpChunks(server.url(), fast({ from: DATA.length })))).length).toBe(0);
    const err = await rejectionOf(collect(httpChunks(server.url(), fast({ from: DATA.length + 1 }))));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/HTTP 416 Range Not Satisfiable for bytes from \d+ \(size \d+\)/);
  });

  it('a payload replaced on the server mid-transfer (new ETag, If-Range honoured: 200) is an error, never a mix', async () => {
    const other = randomBytes(DATA.length, 2);
    const server = await startServer((req, res, seen) =>
      seen.index === 0 ? serveBody(req, res, bufferBody(DATA), { etag: ETAG, cut: { after: 100_000, how: 'drop' } }) : serveBody(req, res, bufferBody(other), { etag: '"v2"' }),
    );
    const got: Uint8Array[] = [];
    const err = await rejectionOf(
      (async () => {
        for await (const c of httpChunks(server.url(), fast())) got.push(c);
      })(),
    );
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toBe(`download ${server.url()}: the payload changed on the server during the download (ETag "v1" became "v2")`);
    expect(server.seen[1]!.ifRange).toBe(ETAG);
    expectSame(Buffer.concat(got), DATA.subarray(0, 100_000));
  });

  it('a changed payload is caught also when the server ignores If-Range (206, new ETag) or has no ETag (Last-Modified, size)', async () => {
    const other = randomBytes(DATA.length + 5, 3);
    const ignoring = await startServer((req, res, seen) => {
      if (seen.index === 0) return serveBody(req, res, bufferBody(DATA), { etag: ETAG, cut: { after: 1000, how: 'drop' } });
      delete req.headers['if-range'];
      return serveBody(req, res, bufferBody(DATA), { etag: '"v2"' });
    });
    expect((await rejectionOf(collect(httpChunks(ignoring.url(), fast())))) as Error).toHaveProperty('message', expect.stringMatching(/ETag "v1" became "v2"/));

    const dated = await startServer((req, res, seen) =>
      seen.index === 0
        ? serveBody(req, res, bufferBody(DATA), { lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT', cut: { after: 1000, how: 'drop' } })
        : serveBody(req, res, bufferBody(other), { lastModified: 'Tue, 02 Jan 2024 00:00:00 GMT' }),
    );
    expect((await rejectionOf(collect(httpChunks(dated.url(), fast())))) as Error).toHaveProperty('message', expect.stringMatching(/Last-Modified .* became/));
    expect(dated.seen[1]!.ifRange).toBe('Mon, 01 Jan 2024 00:00:00 GMT');

    const bare = await startServer((req, res, seen) =>
      seen.index === 0 ? serveBody(req, res, bufferBody(DATA), { cut: { after: 1000, how: 'drop' } }) : serveBody(req, res, bufferBody(other)),
    );
    const err = await rejectionOf(collect(httpChunks(bare.url(), fast())));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(new RegExp(`size ${DATA.length} became ${other.length}`));
  });

  it('wrong bytes: a 206 for another offset than asked is refused', async () => {
    const server = await startServer((req, res, seen) => {
      if (seen.index === 0) return serveBody(req, res, bufferBody(DATA), { etag: ETAG, cut: { after: 5000, how: 'drop' } });
      const start = 4096; // the server's own idea of where to resume
      res.writeHead(206, { etag: ETAG, 'content-range': `bytes ${start}-${DATA.length - 1}/${DATA.length}`, 'content-length': DATA.length - start });
      res.end(DATA.subarray(start));
    });
    const err = await rejectionOf(collect(httpChunks(server.url(), fast())));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/asked for bytes from 5000, the server sent bytes from 4096/);
  });

  it('follows redirects (each retry starts again at the first URL), refuses more than 5', async () => {
    const server = await startServer(async (req, res, seen) => {
      if (req.url === '/payload') return void res.writeHead(302, { location: '/hop1' }).end();
      if (req.url === '/hop1') return void res.writeHead(307, { location: `http://127.0.0.1:${(req.socket.localPort)}/real` }).end();
      if (req.url === '/real') {
        const firstReal = server.seen.filter((s) => s.path === '/real')[0] === seen;
        return serveBody(req, res, bufferBody(DATA), { etag: ETAG, ...(firstReal ? { cut: { after: 7777, how: 'drop' } } : {}) });
      }
      const n = Number(req.url?.slice('/loop'.length));
      res.writeHead(301, { location: `/loop${n + 1}` }).end();
    });
    expectSame(await collect(httpChunks(server.url(), fast())), DATA);
    expect(server.seen.map((s) => [s.path, s.range])).toEqual([
      ['/payload', undefined],
      ['/hop1', undefined],
      ['/real', undefined],
      ['/payload', 'bytes=7777-'],
      ['/hop1', 'bytes=7777-'],
      ['/real', 'bytes=7777-'],
    ]);
    const err = await rejectionOf(collect(httpChunks(server.url('/loop0'), fast())));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/more than 5 redirects/);
  });

  it('an AbortSignal stops the transfer, also during a backoff wait', async () => {
    const server = await startServer((_req, res) => void res.writeHead(503).end());
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('stopped by test')), 100);
    // A backoff of a minute: an abort that did not end the wait would run into the test's timeout.
    const err = await rejectionOf(collect(httpChunks(server.url(), { backoffMs: 60_000, signal: controller.signal })));
    expect((err as Error).message).toBe('stopped by test');
    expect(server.seen).toHaveLength(1);
  });

  it('bad URLs and options are refused up front', async () => {
    expectFastPatchError(await rejectionOf(collect(httpChunks('http://'))), 'USAGE', 2);
    expectFastPatchError(await rejectionOf(collect(httpChunks('ftp://127.0.0.1/x'))), 'USAGE', 2);
    expect(await rejectionOf(collect(httpChunks('http://127.0.0.1:1/x', { from: -1 })))).toBeInstanceOf(RangeError);
  });

  it('memory: 64 MiB from a generated body streams with far less RSS growth than its size', async () => {
    const size = 64 * MiB;
    const dropAt = 40 * MiB;
    // The server runs in a child process so that only the client's memory is measured here. Each
    // 64 KiB piece is made on demand from its index: neither side ever holds the body.
    const child = spawn(process.execPath, ['-e', GENERATED_SERVER, String(size), String(dropAt)], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once('error', reject);
        child.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
      });
      // Garbage (the socket's read buffers) is collected when V8 pleases, which says nothing about
      // what the transfer holds: collect it at every sample, so what stays is what is retained.
      gc();
      const before = process.memoryUsage();
      let peak = before.rss;
      let peakBuffers = before.arrayBuffers;
      let total = 0;
      let sinceSample = 0;
      const hash = createHash('sha256');
      const o = fast();
      for await (const chunk of httpChunks(`http://127.0.0.1:${port}/generated`, o)) {
        hash.update(chunk);
        total += chunk.length;
        sinceSample += chunk.length;
        if (sinceSample >= 4 * MiB) {
          sinceSample = 0;
          gc();
          const now = process.memoryUsage();
          peak = Math.max(peak, now.rss);
          peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
        }
      }
      expect(total).toBe(size);
      expect(o.retriesSeen.map((r) => r.offset)).toEqual([dropAt]);
      const expected = createHash('sha256');
      for (let i = 0; i < size / GENERATED_PIECE; i++) expected.update(generatedPiece(i));
      expect(hash.digest('hex')).toBe(expected.digest('hex'));
      expect((peak - before.rss) / MiB).toBeLessThan(32);
      // A constant few MiB come and go (an 8 MiB buffer outside the transfer shows up at times);
      // a body kept in memory would be 64 MiB here.
      expect((peakBuffers - before.arrayBuffers) / MiB).toBeLessThan(16);
    } finally {
      child.kill();
    }
    }, 60_000); // a hang guard only: two busy cores make this take seconds
});

/** A port nothing listens on: one the system just gave out and took back. */
async function closedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Serves `data` honouring Range, `bytesPerWrite` bytes at a time with `everyMs` between writes, forever if need be. */
function trickleServer(data: Uint8Array, everyMs: number, bytesPerWrite = 1): Promise<TestServer> {
  return startServer(async (req, res) => {
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? 'bytes=0-')![1]);
    const headers: Record<string, string | number> = { etag: ETAG, 'content-length': data.length - start };
    if (start > 0) headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    for (let at = start; at < data.length && !res.destroyed; at += bytesPerWrite) {
      await write(res, data.subarray(at, at + bytesPerWrite));
      await pause(everyMs);
    }
    res.end();
  });
}

describe('httpChunks: a minimum rate, a deadline, and a wrong URL that fails fast', () => {
  // Tiny windows so that the tests run in a fraction of a second; the outcome is asserted, never the time.
  const SMALL = randomBytes(100_000, 5);

  it('a server trickling a byte at a time is too slow: a drop resumed with Range, then a clear error naming the rate', async () => {
    const server = await trickleServer(SMALL, 20);
    const o = fast({ retries: 2, minRateBytesPerSec: 1000, rateWindowMs: 200 });
    const got: Uint8Array[] = [];
    const err = await rejectionOf(
      (async () => {
        for await (const c of httpChunks(server.url(), o)) got.push(c);
      })(),
    );
    expectFastPatchError(err, 'IO', 6);
    // Bytes arrived on every connection, yet the count was not reset: a slow transfer is given up on.
    expect(err.message).toMatch(/: gave up at byte \d+ after 3 attempts \(3 failures in a row\): last error: too slow: \d+ B\/s over the last 0\.2 s, below the minimum of 1000 B\/s; once the server answers/);
    expect(o.retriesSeen.map((r) => [r.failures, r.limit])).toEqual([[1, 2], [2, 2]]);
    for (const r of o.retriesSeen) expect(r.reason).toMatch(/^too slow: \d+ B\/s/);
    // Each retry resumes where the last connection stopped.
    expect(server.seen.map((x) => x.range)).toEqual([undefined, ...o.retriesSeen.map((r) => `bytes=${r.offset}-`)]);
    expect(Buffer.concat(got)).toEqual(Buffer.from(SMALL.subarray(0, Buffer.concat(got).length)));
    expect(Buffer.concat(got).length).toBeGreaterThan(0);
  });

  it('a connection too slow once is resumed with Range on a new one, and the transfer completes', async () => {
    const server = await startServer(async (req, res, seen) => {
      if (seen.index > 0) return serveBody(req, res, bufferBody(SMALL), { etag: ETAG });
      res.writeHead(200, { etag: ETAG, 'content-length': SMALL.length });
      for (let at = 0; at < SMALL.length && !res.destroyed; at++) {
        await write(res, SMALL.subarray(at, at + 1));
        await pause(20);
      }
    });
    const o = fast({ retries: 1, minRateBytesPerSec: 1000, rateWindowMs: 200 });
    expectSame(await collect(httpChunks(server.url(), o)), SMALL);
    expect(o.retriesSeen.map((r) => r.reason)).toEqual([expect.stringMatching(/^too slow: \d+ B\/s over the last 0\.2 s/)]);
    expect(server.seen.map((x) => [x.range, x.ifRange])).toEqual([[undefined, undefined], [`bytes=${o.retriesSeen[0]!.offset}-`, ETAG]]);
    expect(o.retriesSeen[0]!.offset).toBeGreaterThan(0);
  });

  it('a server sending one byte per connection (progress every time) is given up on too', async () => {
    const server = await startServer((req, res) => {
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? 'bytes=0-')![1]);
      res.writeHead(start > 0 ? 206 : 200, { etag: ETAG, 'content-length': SMALL.length - start, ...(start > 0 ? { 'content-range': `bytes ${start}-${SMALL.length - 1}/${SMALL.length}` } : {}) });
      res.write(SMALL.subarray(start, start + 1), () => res.socket?.destroy());
    });
    const o = fast({ retries: 3, minRateBytesPerSec: 50_000, rateWindowMs: 200 });
    let got = 0;
    const err = await rejectionOf(
      (async () => {
        for await (const c of httpChunks(server.url(), o)) got += c.length;
      })(),
    );
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/gave up at byte \d+ after \d+ attempts \(4 failures in a row\)/);
    expect(o.retriesSeen.some((r) => /^too slow: /.test(r.reason))).toBe(true);
    expect(got).toBeLessThan(SMALL.length);
  });

  it('time the consumer holds a chunk is not counted against the server', async () => {
    const server = await payloadServer(SMALL, () => ({ etag: ETAG, pieceSize: 10_000 }));
    const o = fast({ minRateBytesPerSec: 1000, rateWindowMs: 250 });
    const parts: Uint8Array[] = [];
    for await (const chunk of httpChunks(server.url(), o)) {
      parts.push(chunk);
      if (parts.length <= 3) await pause(600); // a slow disk: several windows with no byte asked for
    }
    expectSame(Buffer.concat(parts), SMALL);
    expect(o.retriesSeen.filter((r) => /too slow/.test(r.reason))).toEqual([]);
  });

  it('minRateBytesPerSec 0 turns the check off', async () => {
    const server = await trickleServer(SMALL.subarray(0, 20), 15);
    const o = fast({ minRateBytesPerSec: 0, rateWindowMs: 50 });
    expectSame(await collect(httpChunks(server.url(), o)), SMALL.subarray(0, 20));
    expect(o.retriesSeen).toEqual([]);
  });

  it('a deadline is final: a stalled body is not retried past it, and it ends a backoff wait', async () => {
    const stalled = await payloadServer(SMALL, () => ({ etag: ETAG, cut: { after: 1000, how: 'stall' } }));
    const o = fast({ stallTimeoutMs: 60_000, deadlineMs: 300 });
    const err = await rejectionOf(collect(httpChunks(stalled.url('/p.fpay?sig=secret'), o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toBe(`download ${stalled.url('/p.fpay')}?…: not finished within the 0.3 s deadline (at byte 1000); allow more time (--timeout), or use a faster link`);
    expect(o.retriesSeen).toEqual([]);
    expect(stalled.seen).toHaveLength(1);

    const busy = await startServer((_req, res) => void res.writeHead(503).end());
    const b = fast({ backoffMs: 60_000, maxBackoffMs: 60_000, deadlineMs: 200 });
    const err2 = await rejectionOf(collect(httpChunks(busy.url(), b)));
    expectFastPatchError(err2, 'IO', 6);
    expect(err2.message).toMatch(/not finished within the 0\.2 s deadline \(at byte 0\)/);
    expect(busy.seen).toHaveLength(1);
  });

  it('a deadline passing while the consumer holds a chunk ends the transfer at its next read', async () => {
    const server = await payloadServer(DATA, () => ({ etag: ETAG }));
    const o = fast({ deadlineMs: 200 });
    let got = 0;
    const err = await rejectionOf(
      (async () => {
        for await (const c of httpChunks(server.url(), o)) {
          got += c.length;
          if (got === c.length) await pause(400); // a slow disk holds the first chunk past the deadline
        }
      })(),
    );
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/not finished within the 0\.2 s deadline \(at byte \d+\)/);
    expect(got).toBeLessThan(DATA.length);
    expect(o.retriesSeen).toEqual([]);
  });

  it('a deadline the transfer meets changes nothing; bad values are refused', async () => {
    const server = await payloadServer(SMALL, () => ({ etag: ETAG }));
    expectSame(await collect(httpChunks(server.url(), fast({ deadlineMs: 60_000 }))), SMALL);
    for (const bad of [0, -1, 1.5, 2 ** 31]) {
      expect(await rejectionOf(collect(httpChunks(server.url(), { deadlineMs: bad })))).toBeInstanceOf(RangeError);
    }
    expect(await rejectionOf(collect(httpChunks(server.url(), { stallTimeoutMs: 2 ** 31 })))).toBeInstanceOf(RangeError);
    expect(await rejectionOf(collect(httpChunks(server.url(), { minRateBytesPerSec: -1 })))).toBeInstanceOf(RangeError);
    expect(await rejectionOf(collect(httpChunks(server.url(), { rateWindowMs: 0 })))).toBeInstanceOf(RangeError);
  });

  it('openPayload: the deadline covers every read of one payload, from the first', async () => {
    const server = await payloadServer(SMALL, () => ({ etag: ETAG }));
    const input = openPayload(server.url(), { http: { deadlineMs: 300 } });
    if (!isSeekable(input)) throw new Error('a URL is seekable');
    expectSame(await collect(input.read(0, 1000)), SMALL.subarray(0, 1000));
    await pause(400); // past the deadline set at the first read
    const err = await rejectionOf(collect(input.read(1000)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/not finished within the 0\.3 s deadline/);
    expect(server.seen).toHaveLength(1);
  });

  it('a closed port: only a few quick retries (unreachableRetries), each reported, then one clear line', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/p.fpay`;
    const o = fast(); // retries 10
    const err = await rejectionOf(collect(httpChunks(url, o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(new RegExp(`^download ${url}: connection refused \\(connect ECONNREFUSED [^)]+\\); gave up after 4 attempts: check the URL and that the server is up \\(--retries and --timeout set how long to try\\)$`));
    expect(o.retriesSeen.map((r) => [r.attempt, r.failures, r.limit])).toEqual([[1, 1, 3], [2, 2, 3], [3, 3, 3]]);
    expect(o.retriesSeen[0]!.reason).toMatch(/^connection refused \(/);
    const none = fast({ unreachableRetries: 0 });
    expect(((await rejectionOf(collect(httpChunks(url, none)))) as Error).message).toMatch(/gave up after 1 attempt: check/);
    expect(none.retriesSeen).toEqual([]);
  });

  it('a server that accepts connections but never answers is as unreached: a few retries, then one line naming --retries and --timeout', async () => {
    // Its socket is taken and held, and nothing is ever written back (a wrong port, a firewall).
    const held: import('node:net').Socket[] = [];
    const silent = (await import('node:net')).createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/p.fpay`;
      const o = fast({ stallTimeoutMs: 100 }); // retries 10, of which 3 while never answered
      const err = await rejectionOf(collect(httpChunks(url, o)));
      expectFastPatchError(err, 'IO', 6);
      expect(err.message).toMatch(/: no response within 100 ms; gave up after 4 attempts: check the URL and that the server is up \(--retries and --timeout set how long to try\)$/);
      expect(o.retriesSeen.map((r) => r.limit)).toEqual([3, 3, 3]);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('a server that answered once and then went away gets all its retries', async () => {
    const server: TestServer = await startServer(async (req, res) => {
      await serveBody(req, res, bufferBody(SMALL), { etag: ETAG, cut: { after: 1000, how: 'drop' } });
      await server.close(); // every later connection is refused
    });
    const o = fast({ retries: 5 });
    const err = await rejectionOf(collect(httpChunks(server.url(), o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/gave up at byte 1000 after 6 attempts \(6 failures in a row\): last error: connection refused/);
    expect(o.retriesSeen.map((r) => r.limit)).toEqual([5, 5, 5, 5, 5]);
  });

  it.each([403, 404, 410])('HTTP %i fails at once, with what to do next', async (status) => {
    const server = await startServer((_req, res) => void res.writeHead(status).end());
    const o = fast();
    const err = await rejectionOf(collect(httpChunks(server.url(), o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(new RegExp(`: HTTP ${status} [A-Za-z ]+; check the URL$`));
    expect(server.seen).toHaveLength(1);
    expect(o.retriesSeen).toEqual([]);
  });

  it('a host name that does not resolve fails at once, naming the host', async (ctx) => {
    const lookup = await import('node:dns/promises').then((dns) => dns.lookup('fastpatch-test.invalid').then(() => 'resolved', (e: NodeJS.ErrnoException) => e.code));
    if (lookup !== 'ENOTFOUND') {
      console.log(`skipped: this machine's resolver answers ${lookup} for a .invalid name, not ENOTFOUND`);
      return ctx.skip();
    }
    const o = fast();
    const err = await rejectionOf(collect(httpChunks('http://fastpatch-test.invalid/p.fpay', o)));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toMatch(/^download http:\/\/fastpatch-test\.invalid\/p\.fpay: host not found \(getaddrinfo ENOTFOUND fastpatch-test\.invalid\); check the host name in the URL$/);
    expect(o.retriesSeen).toEqual([]);
  });
});

/** The engine's gc(), exposed at run time (vitest's workers do not start with --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
const gc = exposeGc();

const GENERATED_PIECE = 64 * KiB;
/** Piece `index` of the generated body: 32-bit words that depend on their offset. */
function generatedPiece(index: number): Buffer {
  const b = Buffer.allocUnsafe(GENERATED_PIECE);
  for (let j = 0; j < GENERATED_PIECE; j += 4) b.writeUInt32LE(((index * GENERATED_PIECE + j) ^ 0x9e3779b9) >>> 0, j);
  return b;
}
/** A server (node -e SCRIPT SIZE DROP_AT) of the generated body with Range support that drops once at DROP_AT; prints its port. */
const GENERATED_SERVER = `
const http = require('node:http');
const [size, dropAt] = process.argv.slice(1).map(Number);
const PIECE = ${GENERATED_PIECE};
function generatedPiece(index) { // as generatedPiece in the test
  const b = Buffer.allocUnsafe(PIECE);
  for (let j = 0; j < PIECE; j += 4) b.writeUInt32LE(((index * PIECE + j) ^ 0x9e3779b9) >>> 0, j);
  return b;
}
let dropped = false;
const server = http.createServer(async (req, res) => {
  const m = /^bytes=(\\d+)-$/.exec(req.headers.range || '');
  const start = m ? Number(m[1]) : 0;
  const headers = { etag: '"gen"', 'content-length': size - start };
  if (m) headers['content-range'] = 'bytes ' + start + '-' + (size - 1) + '/' + size;
  res.writeHead(m ? 206 : 200, headers);
  for (let at = start; at < size; at += PIECE) {
    if (!dropped && at === dropAt) { dropped = true; return res.socket.destroy(); }
    await new Promise((resolve) => res.write(generatedPiece(at / PIECE), resolve));
  }
  res.end();
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

describe('readPayloadChunks', () => {
  it('routes http:// URLs to httpChunks (with options) and keeps reading files', async () => {
    const server = await payloadServer(DATA, (i) => ({ etag: ETAG, ...(i < 2 ? { cut: { after: 70_000, how: 'drop' } } : {}) }));
    expectSame(await collect(readPayloadChunks(server.url(), undefined, { backoffMs: 1 })), DATA);
    expect(server.seen).toHaveLength(3);
    const dir = await tempDir('http-file');
    try {
      await fsp.writeFile(join(dir, 'p'), DATA);
      expectSame(await collect(readPayloadChunks(join(dir, 'p'))), DATA);
    } finally {
      await removeDir(dir);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A real signed payload over HTTP

describe('applying a signed payload over HTTP', () => {
  const signer = makeKeyPair();
  let dir: string;
  let built: BuiltPayload;
  const at = (name: string) => join(dir, name);

  beforeAll(async () => {
    dir = await tempDir('http-apply');
    built = await buildPayload(dir, 'release', mixedImage(3 * MiB + 4096 * 5 + 99, 11), { keys: [signer.key] });
    await writeKeyPair(at('release.key'), signer.key);
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  const dropPlan = (step: number, drops: number) => (i: number) => ({ etag: '"p1"', ...(i < drops ? { cut: { after: step, how: 'drop' as const } } : {}) });

  it('applyPayload(readPayloadChunks(url)) with 10 drops writes a byte-identical image', async () => {
    const step = Math.floor(built.payload.length / 12);
    const server = await payloadServer(built.payload, dropPlan(step, 10));
    const target = at('out.img');
    const result = await applyPayload(readPayloadChunks(server.url(), undefined, { backoffMs: 1 }), { trustedKeys: [signer.pub], target });
    expect(result.payloadBytes).toBe(built.payload.length);
    expectSame(await fsp.readFile(target), built.image);
    expect(server.seen).toHaveLength(11);
  });

  it('wrong bytes after a resume are caught by the payload checks (CORRUPT), not written as good', async () => {
    const step = Math.floor(built.payload.length / 2);
    const bad = Buffer.from(built.payload);
    bad[bad.length - 10]! ^= 0xff;
    const server = await startServer((req, res, seen) =>
      serveBody(req, res, bufferBody(seen.index === 0 ? built.payload : bad), { etag: '"p1"', ...(seen.index === 0 ? { cut: { after: step, how: 'drop' } } : {}) }),
    );
    const err = await rejectionOf(applyPayload(readPayloadChunks(server.url(), undefined, { backoffMs: 1 }), { trustedKeys: [signer.pub], target: at('bad.img') }));
    expectFastPatchError(err, 'HASH_MISMATCH', 4);
  });

  it('--resume over HTTP asks only for the data the target lacks (Range requests past what it holds)', async () => {
    const server = await payloadServer(built.payload, () => ({ etag: '"p1"' }));
    const target = at('resume.img');
    // An earlier apply wrote the first 2 MiB of the image, then stopped.
    const partial = new Uint8Array(built.image.length);
    partial.set(built.image.subarray(0, 2 * MiB));
    await fsp.writeFile(target, partial);
    const result = await applyPayload(openPayload(server.url()), { trustedKeys: [signer.pub], target, resume: true });
    expectSame(await fsp.readFile(target), built.image);
    expect(result.resumed!.bytesSkipped).toBeGreaterThan(0);
    const starts = server.seen.map((x) => Number(/bytes=(\d+)-/.exec(x.range ?? 'bytes=0-')![1]));
    const dataStart = dataStartOf(built.payload);
    // The header, the rest of the head, then data ranges only: none of the data of the operations
    // already on the target (the first 2 MiB of image) is asked for.
    expect(starts.slice(0, 2)).toEqual([0, 32]);
    expect(starts.length).toBeGreaterThan(2);
    expect(Math.min(...starts.slice(2))).toBeGreaterThan(dataStart);
    expect(result.payloadBytes).toBeLessThan(built.payload.length);
  });

  it('the CLI: a closed port ends after 4 attempts; --verbose notes each retry, a pipe without it gets one line', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/release.fpay`;
    const verbose = await runCli(['apply', url, '--target', at('refused.img'), '--pubkey', at('release.key.pub'), '--verbose']);
    expect(verbose.code, verbose.stderr).toBe(6);
    const said = lines(verbose.stderr).filter((l) => l.startsWith('fastpatch:'));
    expect(said).toEqual([
      ...[1, 2, 3].map((k) => expect.stringMatching(new RegExp(`^fastpatch: retrying in \\d+\\.\\d s after: connection refused \\(connect ECONNREFUSED [^)]+\\) \\(retry ${k} of 3, at byte 0\\)$`))),
      expect.stringMatching(new RegExp(`^fastpatch: IO: download ${url}: connection refused \\([^)]+\\); gave up after 4 attempts: check the URL and that the server is up \\(--retries and --timeout set how long to try\\)$`)),
    ]);
    const quiet = await runCli(['verify', url, '--pubkey', at('release.key.pub')]);
    expect(quiet.code, quiet.stderr).toBe(6);
    expect(lines(quiet.stderr)).toEqual([expect.stringMatching(/^fastpatch: IO: download .*; gave up after 4 attempts: check the URL/)]);
  }, 60_000);

  it('the CLI on a real terminal (script(1)): a note per retry, then the error', async (ctx) => {
    const which = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (which.error || which.status !== 0) {
      console.log('skipped: script(1) from util-linux is not installed (it gives the CLI a terminal)');
      return ctx.skip();
    }
    const url = `http://127.0.0.1:${await closedPort()}/release.fpay`;
    const command = [process.execPath, CLI_PATH, 'verify', url, '--pubkey', at('release.key.pub'), '--retries', '2'].map((a) => `'${a}'`).join(' ');
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.once('error', reject);
      child.once('close', () => resolve(Buffer.concat(out).toString('utf8')));
    });
    const said = output.split(/\r?\n/).map((l) => l.replace(/^\r\x1b\[K/, '')).filter((l) => l.trim() !== '');
    expect(said).toEqual([
      expect.stringMatching(/^fastpatch: retrying in \d+\.\d s after: connection refused .*\(retry 1 of 2, at byte 0\)$/),
      expect.stringMatching(/^fastpatch: retrying in \d+\.\d s after: connection refused .*\(retry 2 of 2, at byte 0\)$/),
      expect.stringMatching(/^fastpatch: IO: download .*; gave up after 3 attempts: check the URL and that the server is up \(--retries and --timeout set how long to try\)$/),
    ]);
  }, 60_000);

  it('the CLI prints a retry note on a terminal or with --verbose, never elsewhere, with the reason escaped', async () => {
    const { httpOptions, retryNote } = await import('../../dist/src/commands/http-options.js');
    const written: string[] = [];
    const stream = (isTTY: boolean) => ({ isTTY, write: (t: string) => void written.push(t) }) as unknown as NodeJS.WriteStream;
    const info: HttpRetryInfo = { attempt: 3, failures: 3, limit: 10, offset: 0, delayMs: 2000, error: new Error('x'), reason: 'HTTP 503 \x1b[2Jgone\nfastpatch: fake' };
    expect(httpOptions({}, stream(false)).onRetry).toBeUndefined();
    httpOptions({ verbose: true }, stream(false)).onRetry!(info);
    httpOptions({}, stream(true)).onRetry!(info);
    const note = 'fastpatch: retrying in 2.0 s after: HTTP 503 \\x1b[2Jgone\\nfastpatch: fake (retry 3 of 10, at byte 0)';
    expect(retryNote(info)).toBe(note);
    // On a terminal the note first clears the progress line.
    expect(written).toEqual([`${note}\n`, `\r\x1b[K${note}\n`]);
    expect(httpOptions({ retries: 2, timeout: 30, minRate: 0 }, stream(false))).toEqual({ retries: 2, deadlineMs: 30_000, minRateBytesPerSec: 0 });
  });

  it('the CLI: --retries, --timeout and --min-rate reach the download; bad values are usage errors (exit 2)', async () => {
    const dropping = await startServer((_req, res) => void res.socket?.destroy());
    const pub = at('release.key.pub');
    const once = await runCli(['verify', dropping.url(), '--pubkey', pub, '--retries', '1']);
    expect(once.code, once.stderr).toBe(6);
    expect(once.stderr).toMatch(/gave up at byte 0 after 2 attempts \(2 failures in a row\)/);
    expect(dropping.seen).toHaveLength(2);
    expect((await runCli(['gpt', 'create', at('disk.img'), '--size', '64M'])).code).toBe(0);
    const none = await runCli(['update', dropping.url('/u'), '--disk', at('disk.img'), '--pubkey', pub, '--allow-downgrade', '--retries', '0']);
    expect(none.code, none.stderr).toBe(6);
    expect(none.stderr).toMatch(/gave up at byte 0 after 1 attempt \(1 failure in a row\)/);
    expect(dropping.seen).toHaveLength(3);

    const stalled = await payloadServer(built.payload, () => ({ etag: '"p1"', cut: { after: 100, how: 'stall' } }));
    const late = await runCli(['apply', stalled.url(), '--target', at('late.img'), '--pubkey', pub, '--timeout', '1', '--min-rate', '0']);
    expect(late.code, late.stderr).toBe(6);
    expect(late.stderr).toMatch(/^fastpatch: IO: download .*: not finished within the 1 s deadline; allow more time \(--timeout\)/);
    expect(stalled.seen).toHaveLength(1);

    for (const bad of [['--timeout', '0'], ['--timeout', '1.5'], ['--retries', '-1'], ['--retries', 'ten'], ['--min-rate', '1K']]) {
      const run = await runCli(['verify', stalled.url(), '--pubkey', pub, ...bad]);
      expect(run.code, `${bad.join(' ')}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toMatch(new RegExp(`^fastpatch: USAGE: .*${bad[0]}`));
    }
  }, 60_000);

  it('the CLI: `fastpatch apply URL --target` with drops; a 404 is one IO line and exit 6', async () => {
    const step = Math.floor(built.payload.length / 4);
    const server = await payloadServer(built.payload, dropPlan(step, 3));
    const run = await runCli(['apply', server.url('/release.fpay'), '--target', at('cli.img'), '--pubkey', at('release.key.pub')], { timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    expectSame(await fsp.readFile(at('cli.img')), built.image);
    expect(server.seen.map((s) => s.range)).toEqual([undefined, `bytes=${step}-`, `bytes=${2 * step}-`, `bytes=${3 * step}-`]);

    const gone = await startServer((_req, res) => void res.writeHead(404).end());
    const missing = await runCli(['verify', gone.url('/missing.fpay'), '--pubkey', at('release.key.pub')]);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toBe(`fastpatch: IO: download ${gone.url('/missing.fpay')}: HTTP 404 Not Found; check the URL\n`);
    }, 60_000);
});
