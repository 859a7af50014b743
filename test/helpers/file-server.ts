/** A real HTTP server around sendFile, a raw client, and a proxy that cuts connections, for test/server/. */
import { readdirSync, readlinkSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { sendFile, type SendFileOptions } from '../../dist/src/server/payload-files.js';
import { removeDir, tempDir } from './payloads.js';

export interface FileServer {
  port: number;
  /** The URL of `name` in the served folder. */
  url: (name?: string) => string;
  /** Each request's method and headers, and the status and ETag it was answered with (once answered). */
  seen: { method: string; headers: IncomingHttpHeaders; status?: number; etag?: string }[];
  /** sendFile's promise for each request, in order. */
  calls: Promise<void>[];
}

/**
 * Runs `fn` with a server on 127.0.0.1 (port 0) that answers `/NAME` with sendFile(dir/NAME),
 * then closes it. Checks at the end that every sendFile call settled without rejecting.
 */
export async function withFileServer(dir: string, options: SendFileOptions | undefined, fn: (s: FileServer) => Promise<void>): Promise<void> {
  const seen: FileServer['seen'] = [];
  const calls: Promise<void>[] = [];
  const server = http.createServer((req, res) => {
    const entry: FileServer['seen'][number] = { method: req.method ?? '', headers: req.headers };
    seen.push(entry);
    // Noted as the head is written: a client may give up on the body before it ends.
    const writeHead = res.writeHead.bind(res) as (status: number, headers?: http.OutgoingHttpHeaders) => http.ServerResponse;
    res.writeHead = ((status: number, headers?: http.OutgoingHttpHeaders) => {
      entry.status = status;
      entry.etag = headers?.etag as string | undefined;
      return writeHead(status, headers);
    }) as typeof res.writeHead;
    const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
    calls.push(sendFile(req, res, join(dir, name), options));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await fn({ port, url: (name = 'payload') => `http://127.0.0.1:${port}/${name}`, seen, calls });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  // Outside finally, so that a failure of `fn` is the one reported.
  await Promise.all(calls);
}

/** Runs `fn` with a fresh folder under the system's temporary folder, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('serve');
  try {
    await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a connection of its own; the whole body collected. */
export function request(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Runs `fn` with a TCP proxy to `port` on 127.0.0.1. Connection i passes `cuts[i]` bytes of the
 * server's answer (headers included), then calls `onCut(i)` and closes both sides; connections
 * without a cut pass everything.
 */
export async function withCuttingProxy(port: number, cuts: (number | undefined)[], onCut: (index: number) => void, fn: (proxyPort: number) => Promise<void>): Promise<void> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const limit = cuts[count];
    const index = count++;
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined); // resets are what this proxy is for
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    let passed = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (limit !== undefined && passed >= limit) return; // cut already: the rest is dropped
      if (limit === undefined || passed + chunk.length < limit) {
        passed += chunk.length;
        if (!client.write(chunk)) upstream.pause();
        return;
      }
      client.write(chunk.subarray(0, limit - passed), () => {
        onCut(index);
        client.destroy();
        upstream.destroy();
      });
      passed = limit;
      upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  try {
    await fn((proxy.address() as AddressInfo).port);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
}

/** The descriptors of this process open on `path` (from /proc/self/fd). */
export function openDescriptorsOf(path: string): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed since the listing
    }
  });
}
