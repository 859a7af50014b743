/**
 * One HTTP server bounded against its peers, as both of FastPatch's servers (the update service,
 * FleetLock) listen: a request's headers within 10 s, all of it within 30 s, no socket idle for a
 * minute (a payload download included), idle keep-alives ended in 5 s, at most 64 headers and
 * 10,000 sockets at once. A hostile or slow client holds a socket for a minute at most, and cannot
 * use up the process's descriptors.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The socket timeouts, ms (defaults: 10 s of headers, 30 s a request, 60 s without progress). */
export interface SocketTimeouts {
  headersMs?: number;
  requestMs?: number;
  idleMs?: number;
}

export interface BoundedServer {
  server: Server;
  port: number;
  /** e.g. http://127.0.0.1:8080/ (an IPv6 host in brackets). */
  url: string;
  /** Stops accepting and ends open connections. */
  close(): Promise<void>;
}

/** Listens on `host:port` (port 0: a free one) with `handler`. Throws what listen throws. */
export async function listenBounded(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  o: { host: string; port: number; timeouts?: SocketTimeouts | undefined },
): Promise<BoundedServer> {
  const server = createServer(handler);
  server.headersTimeout = o.timeouts?.headersMs ?? 10_000;
  server.requestTimeout = o.timeouts?.requestMs ?? 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 64;
  server.timeout = o.timeouts?.idleMs ?? 60_000;
  server.maxConnections = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}/`;
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return { server, port, url, close };
}
