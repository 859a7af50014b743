/**
 * `fastpatch serve`: the update service over HTTP (docs/OMAHA.md, "The server").
 *
 *   POST /v1/update/                       Omaha v3 (also /v1/update)
 *   GET|HEAD /payloads/<sha256>.fpay       payload files, with Range, ETag and If-Range
 *   GET|HEAD /repository.json, /channels/<name>.json, /releases/<version>.json
 *
 * The body of a request is read only up to MAX_REQUEST_BYTES; slow or idle peers are cut off by
 * listenBounded's timeouts (io/http-listen.ts). Nothing a peer
 * sends can throw out of a handler: every failure is an HTTP status and one line.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { listenBounded, type SocketTimeouts } from '../io/http-listen.js';
import { join } from 'node:path';
import { MAX_REQUEST_BYTES, parseRequest } from '../omaha/request.js';
import { buildResponse } from '../omaha/response.js';
import type { PublicKey } from '../sign/keys.js';
import { ReleaseRepository } from '../release/repository.js';
import { ReleaseCatalog } from './catalog.js';
import { answerRequest, type CodebaseOf } from './omaha-service.js';
import { sendFile } from './payload-files.js';
import { RolloutStore } from './rollout-store.js';
import { MachineLimit } from './machine-limit.js';

export interface ServeOptions {
  /** The release repository folder. */
  repository: string;
  /** The server's state database (rollout policy, machines, events). */
  state: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Public URL of the repository folder when payloads are served from elsewhere (a CDN); default: this server, as the device reached it. */
  baseUrl?: string;
  /** Keys the channel documents must be signed by (default: those repository.json lists). */
  trusted?: readonly PublicKey[];
  appIds?: readonly string[];
  /** The socket timeouts, ms (defaults: 10 s of headers, 30 s a request, 60 s without progress). */
  timeouts?: SocketTimeouts;
  /** Most machines recorded (default DEFAULT_MAX_MACHINES); new ones past it get an error status. */
  maxMachines?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080/ ; the Omaha endpoint is `${url}v1/update/`. */
  url: string;
  port: number;
  rollout: RolloutStore;
  catalog: ReleaseCatalog;
  server: Server;
  /** Stops accepting, ends open connections, closes the database. */
  close(): Promise<void>;
}

const HOST_RE = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const PAYLOAD_RE = /^\/payloads\/([0-9a-f]{64})\.fpay$/;
const DOCUMENT_RE = /^\/(?:repository\.json|channels\/[a-z0-9][a-z0-9._-]{0,63}\.json|releases\/[0-9A-Za-z][0-9A-Za-z.+~_-]{0,127}\.json)$/;

/** Starts the service. Throws what opening the repository or the database throws. */
export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const repo = await ReleaseRepository.open(o.repository);
  const rollout = RolloutStore.open(o.state);
  const catalog = new ReleaseCatalog(repo, o.trusted ?? repo.config.keys);
  const limit = new MachineLimit(rollout, o.maxMachines);
  const bounded = await listenBounded((req, res) => {
    handle(req, res, { repo, catalog, rollout, limit, o }).catch((err: unknown) => {
      o.log?.(`internal error: ${(err as Error).message}`);
      if (!res.headersSent) reply(res, 500, 'internal error\n');
      else res.destroy();
    });
  }, { host: o.host ?? '127.0.0.1', port: o.port ?? 0, timeouts: o.timeouts }).catch((err: unknown) => {
    rollout.close();
    throw err;
  });
  const { url, port, server } = bounded;
  const close = async () => {
    await bounded.close();
    rollout.close();
  };
  return { url, port, rollout, catalog, server, close };
}

interface Context {
  limit: MachineLimit;
  repo: ReleaseRepository;
  catalog: ReleaseCatalog;
  rollout: RolloutStore;
  o: ServeOptions;
}

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse, c: Context): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/v1/update' || path === '/v1/update/') {
    if (req.method !== 'POST') return reply(res, 405, 'POST an Omaha request here\n', { Allow: 'POST' });
    return omaha(req, res, c);
  }
  const payload = PAYLOAD_RE.exec(path);
  if (payload) {
    return sendFile(req, res, c.repo.payloadPath(payload[1]!), { etag: `"${payload[1]}"`, cacheControl: 'public, max-age=31536000, immutable' });
  }
  if (DOCUMENT_RE.test(path) && !path.includes('..')) return sendFile(req, res, join(c.repo.dir, path), { contentType: 'application/json', cacheControl: 'no-cache' });
  return reply(res, 404, 'not found\n');
}

/** The request body, or the HTTP status that refuses it (413 past the limit). */
async function readBody(req: IncomingMessage): Promise<string | 413> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_REQUEST_BYTES) return 413;
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > MAX_REQUEST_BYTES) return 413;
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

async function omaha(req: IncomingMessage, res: ServerResponse, c: Context): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== 'text/xml' && type !== 'application/xml') return reply(res, 415, 'an Omaha request is XML (Content-Type text/xml)\n');
  const body = await readBody(req);
  if (body === 413) {
    res.setHeader('Connection', 'close');
    return reply(res, 413, `an Omaha request is at most ${MAX_REQUEST_BYTES} bytes\n`);
  }
  const parsed = parseRequest(body);
  if ('unreadable' in parsed) return reply(res, 400, `not an Omaha request: ${parsed.unreadable}\n`);
  const response = await answerRequest(parsed.request, codebasesFor(req, c.o), { catalog: c.catalog, rollout: c.rollout, limit: c.limit, ...(c.o.appIds ? { appIds: c.o.appIds } : {}), ...(c.o.log ? { log: c.o.log } : {}) });
  const xml = buildResponse(response);
  res.writeHead(200, { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': Buffer.byteLength(xml), 'Cache-Control': 'no-store' });
  res.end(xml);
}

/** The payloads folder URL: --base-url's, else this server as the device named it (a Host that is a host name). */
function codebasesFor(req: IncomingMessage, o: ServeOptions): CodebaseOf {
  let base = o.baseUrl;
  if (!base) {
    const host = req.headers.host;
    const local = req.socket.localAddress ?? '127.0.0.1';
    base = `http://${host && HOST_RE.test(host) ? host : local.includes(':') ? `[${local}]:${req.socket.localPort}` : `${local}:${req.socket.localPort}`}/`;
  }
  const folder = `${base.endsWith('/') ? base : `${base}/`}payloads/`;
  return () => [folder];
}
