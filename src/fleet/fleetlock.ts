/**
 * FleetLock v1 (Zincati's reboot-lock protocol) served on the reboot semaphore in etcd, the same
 * key and JSON as locksmith and `fastpatch lock` (docs/FLEET.md, "FleetLock"):
 *
 *   POST /v1/pre-reboot     take a slot of the client's group (recursive: a holder gets 200 again)
 *   POST /v1/steady-state   free the client's slot if it holds one (200 either way)
 *
 * Every request needs `fleet-lock-protocol: true` and a JSON body
 * `{"client_params": {"id": "...", "group": "..."}}` of at most 8 KiB. Errors are JSON
 * `{"kind": ..., "value": ...}` with Airlock's kinds and statuses, so Zincati's metrics read the
 * same. Like Airlock the server keeps nothing between requests: each one reads etcd and changes it
 * only by compare-and-swap (etcd-semaphore.ts), so several servers may run side by side.
 *
 * Peers are cut off as the update service cuts them off (headers within 10 s, a request within
 * 30 s, no socket idle for a minute), and no etcd call may hold an answer past REQUEST_DEADLINE_MS:
 * nothing a peer sends, and no state of etcd, can throw out of a handler or hold a socket forever.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { listenBounded, type SocketTimeouts } from '../io/http-listen.js';
import type { Etcd3 } from 'etcd3';
import { FastPatchError } from '../errors.js';
import { escapeText } from '../text.js';
import { EtcdSemaphore, etcdClient, type SemaphoreResult } from './etcd-semaphore.js';
import { lock, MAX_HOLDERS, MAX_ID_CHARS, unlock, type HolderRecord, type LockChange, type Semaphore } from './semaphore.js';

export interface FleetLockOptions {
  /** etcd client URLs (parseEndpoints). */
  endpoints: readonly string[];
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /**
   * Slots per group, written only when the group's key is first created (as Airlock's init: an
   * existing key keeps its max; `fastpatch lock set-max` changes it). Unlisted groups are served only once their key exists (an operator made it); others get unknown_group.
   */
  groups?: Record<string, number>;
  /** Deadline of each etcd call (ms, default 3000, Airlock's transaction_timeout_ms). */
  callTimeoutMs?: number;
  /** The socket timeouts, ms (defaults: 10 s of headers, 30 s a request, 60 s without progress). */
  timeouts?: SocketTimeouts;
  /** One line per failure and per slot taken or freed. */
  log?: (line: string) => void;
}

export interface RunningFleetLock {
  /** Base URL, e.g. http://127.0.0.1:3333/ ; Zincati's `base_url`. */
  url: string;
  port: number;
  server: Server;
  /** Stops accepting, ends open connections, closes the etcd client. */
  close(): Promise<void>;
}

/** Largest request body (bytes): a FleetLock body is about 100; 413 past it. */
export const FLEETLOCK_MAX_BODY = 8 * 1024;

/**
 * Every error kind and its status. The first four are Airlock's (Zincati counts kinds as a
 * metric label, so the set is small and fixed); the rest are this server's HTTP-level refusals.
 */
export const FLEETLOCK_ERRORS = {
  invalid_client_identity: 400,
  unknown_group: 400,
  failed_lock: 500,
  failed_unlock: 500,
  failed_sem_init: 500,
  etcd_unavailable: 503,
  not_found: 404,
  method_not_allowed: 405,
  body_too_large: 413,
} as const;

export type FleetLockErrorKind = keyof typeof FLEETLOCK_ERRORS;

/** FleetLock's group syntax (Zincati's), bounded as locksmith's group names are in practice. */
const GROUP_RE = /^[a-zA-Z0-9.-]{1,64}$/;
/** A request's etcd work ends within this, whatever etcd does (below the 60 s idle cut). */
const REQUEST_DEADLINE_MS = 20_000;

/** Starts the server. Throws RangeError for a bad `groups` entry, and what listen throws. */
export async function startFleetLock(o: FleetLockOptions): Promise<RunningFleetLock> {
  const groups = checkGroups(o.groups ?? {});
  const client = etcdClient({ endpoints: o.endpoints, callTimeoutMs: o.callTimeoutMs ?? 3000 });
  const bounded = await listenBounded((req, res) => {
    handle(req, res, { client, groups, log: o.log ?? (() => {}) }).catch((err: unknown) => {
      o.log?.(`internal error: ${escapeText((err as Error).message)}`);
      if (!res.headersSent) sendError(req, res, 'failed_lock', 'internal error');
      else res.destroy();
    });
  }, { host: o.host ?? '127.0.0.1', port: o.port ?? 0, timeouts: o.timeouts }).catch((err: unknown) => {
    client.close();
    throw err;
  });
  const { url, port, server } = bounded;
  const close = async () => {
    await bounded.close();
    client.close();
  };
  return { url, port, server, close };
}

function checkGroups(groups: Record<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, slots] of Object.entries(groups)) {
    if (!GROUP_RE.test(name)) throw new RangeError(`groups: "${escapeText(name.slice(0, 80))}" is not a FleetLock group (1-64 of a-z A-Z 0-9 . -)`);
    if (!Number.isSafeInteger(slots) || slots < 0 || slots > MAX_HOLDERS) throw new RangeError(`groups: ${name} must have 0-${MAX_HOLDERS} slots, got ${slots}`);
    out.set(name, slots);
  }
  return out;
}

interface Context {
  client: Etcd3;
  groups: Map<string, number>;
  log: (line: string) => void;
}

/** A client's identity, from the body; `invalid` says what is wrong with it. */
export type ClientParams = { id: string; group: string } | { invalid: string };

/** Reads FleetLock's body: a JSON object with client_params.id (1-256 chars) and client_params.group. */
export function parseClientParams(body: string): ClientParams {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return { invalid: 'the body is not JSON' };
  }
  const params = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)['client_params'] : undefined;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return { invalid: 'the body has no client_params object' };
  const { id, group } = params as Record<string, unknown>;
  if (typeof id !== 'string' || id === '' || id.length > MAX_ID_CHARS) return { invalid: `client_params.id must be a string of 1-${MAX_ID_CHARS} characters` };
  if (typeof group !== 'string' || !GROUP_RE.test(group)) return { invalid: 'client_params.group must be 1-64 of a-z A-Z 0-9 . -' };
  return { id, group };
}

async function handle(req: IncomingMessage, res: ServerResponse, c: Context): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  const op = path === '/v1/pre-reboot' ? 'lock' : path === '/v1/steady-state' ? 'unlock' : undefined;
  if (!op) return sendError(req, res, 'not_found', 'FleetLock v1 answers POST /v1/pre-reboot and POST /v1/steady-state');
  if (req.method !== 'POST') return sendError(req, res, 'method_not_allowed', `POST to ${path}`, { Allow: 'POST' });
  // The header guards against a request that reached us through a redirect (FleetLock's reason).
  if (String(req.headers['fleet-lock-protocol'] ?? '').trim() !== 'true') {
    return sendError(req, res, 'invalid_client_identity', 'the fleet-lock-protocol: true header is missing');
  }
  const body = await readBody(req);
  if (body === 413) return sendError(req, res, 'body_too_large', `a FleetLock body is at most ${FLEETLOCK_MAX_BODY} bytes`);
  if (body === 400) return sendError(req, res, 'invalid_client_identity', 'the body is not UTF-8');
  const client = parseClientParams(body);
  if ('invalid' in client) return sendError(req, res, 'invalid_client_identity', client.invalid);
  const slots = c.groups.get(client.group);
  // Built per request on the shared client: nothing about a group is kept between requests.
  const semaphore = new EtcdSemaphore({ endpoints: [], client: c.client, ...(slots !== undefined ? { freshSlots: slots } : {}) }, client.group);
  const who = `${escapeText(client.id)} (group ${client.group})`;
  // Any client may name any group; only the default, the configured ones and those an operator
  // made (`fastpatch lock set-max N --group G`) are served, so no client can fill etcd with keys.
  if (client.group !== 'default' && slots === undefined && !(await exists(semaphore))) {
    return sendError(req, res, 'unknown_group', `no reboot semaphore for group ${client.group}: serve it with --group ${client.group}=SLOTS, or make it with fastpatch lock set-max N --group ${client.group}`);
  }
  const outcome = await change(semaphore, op, client.id);
  if ('kind' in outcome) {
    c.log(`${op === 'lock' ? 'pre-reboot' : 'steady-state'} of ${who}: ${outcome.kind}: ${escapeText(outcome.value)}`);
    return sendError(req, res, outcome.kind, outcome.value);
  }
  if (outcome.changed) c.log(`${who} ${op === 'lock' ? 'took' : 'freed'} a slot of ${semaphore.key}`);
  res.writeHead(200, { 'Content-Length': 0, 'Cache-Control': 'no-store' });
  res.end();
}

type Outcome = { changed: boolean } | { kind: FleetLockErrorKind; value: string };

/** Whether the group's key exists (an unreadable etcd counts as yes: change() then says what is wrong). */
async function exists(semaphore: EtcdSemaphore): Promise<boolean> {
  try {
    return (await semaphore.read()).modRevision !== '0';
  } catch {
    return true;
  }
}

/** Takes or frees `id`'s slot; every failure becomes a kind (never a throw), within REQUEST_DEADLINE_MS. */
async function change(semaphore: EtcdSemaphore, op: 'lock' | 'unlock', id: string): Promise<Outcome> {
  // A holder asking again holds its slot as it was: no write, and its record keeps the time it took it.
  const record: HolderRecord = { release: 'unknown', from: 'unknown', since: new Date().toISOString(), state: 'rebooting' };
  const work = op === 'lock'
    ? semaphore.update((s) => (s.holders.includes(id) ? { value: s, changed: false } : lockWith(s, id, record)))
    : semaphore.update((s) => unlock(s, id));
  let timer: NodeJS.Timeout | undefined;
  // Past the deadline the change may still land; both calls are idempotent, so the client's retry is safe.
  const deadline = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), REQUEST_DEADLINE_MS);
  });
  try {
    const result: SemaphoreResult | 'late' = await Promise.race([work, deadline]);
    if (result === 'late') return { kind: 'etcd_unavailable', value: `etcd gave no answer within ${REQUEST_DEADLINE_MS / 1000} s` };
    if (result.refused !== undefined) return { kind: op === 'lock' ? 'failed_lock' : 'failed_unlock', value: result.refused };
    return { changed: result.changed };
  } catch (err) {
    return failureOf(err, op);
  } finally {
    clearTimeout(timer);
    work.catch(() => {}); // a late failure after the deadline must not be an unhandled rejection
  }
}

/** lock(), refusing in Airlock's words: the holders' ids (up to 10,000) stay out of an answer to anyone who asks. */
function lockWith(s: Semaphore, id: string, record: HolderRecord): LockChange {
  const next = lock(s, id, record);
  return 'refused' in next ? { refused: `all ${s.max} semaphore slot${s.max === 1 ? ' is' : 's are'} currently locked` } : next;
}

/**
 * The kind of an etcd failure: a call etcd did not answer (the error carries the client's cause)
 * is 503, as a proxy's unreachable upstream; a value that is not a semaphore is Airlock's
 * failed_sem_init; losing every compare-and-swap is failed_lock or failed_unlock, as in Airlock.
 */
function failureOf(err: unknown, op: 'lock' | 'unlock'): Outcome {
  const message = (err as Error)?.message ?? String(err);
  if (!(err instanceof FastPatchError)) return { kind: op === 'lock' ? 'failed_lock' : 'failed_unlock', value: message };
  if (err.cause !== undefined) return { kind: 'etcd_unavailable', value: message };
  if (/ is not valid \(/.test(message)) return { kind: 'failed_sem_init', value: message };
  return { kind: op === 'lock' ? 'failed_lock' : 'failed_unlock', value: message };
}

/** The body as text, 413 past FLEETLOCK_MAX_BODY, 400 when not UTF-8. */
async function readBody(req: IncomingMessage): Promise<string | 400 | 413> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > FLEETLOCK_MAX_BODY) return 413;
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > FLEETLOCK_MAX_BODY) return 413;
    parts.push(chunk as Buffer);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(parts));
  } catch {
    return 400;
  }
}

/** Sends `{"kind", "value"}` with the kind's status; closes the connection when the body was left unread. */
function sendError(req: IncomingMessage, res: ServerResponse, kind: FleetLockErrorKind, value: string, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify({ kind, value })}\n`;
  // Unread body bytes would be read as the next request on a kept-alive socket: close it instead.
  if (!req.complete) headers = { ...headers, Connection: 'close' };
  res.writeHead(FLEETLOCK_ERRORS[kind], { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}
