/**
 * The Omaha v3 request, as CoreOS's update_engine builds it and a server reads it: parsed from
 * untrusted XML into plain data, and built from it. Pure: a string in, data out (no HTTP).
 *
 * A request body is hostile input: it is refused past MAX_REQUEST_BYTES before it is parsed, the
 * parser expands no entities and takes no DOCTYPE, every attribute a server uses is bounded, and at
 * most MAX_APPS apps with MAX_EVENTS events each are read. Unknown elements and attributes are
 * ignored, as the protocol requires; missing ones take their documented defaults.
 */
import { nodeOf, untrustedXml, writeXml, type XmlNode } from './xml.js';

export const MAX_REQUEST_BYTES = 64 * 1024;
export const MAX_APPS = 8;
export const MAX_EVENTS = 16;
/** Longest attribute value kept (a version, a track, an id); longer ones make the request malformed. */
export const MAX_ATTRIBUTE_CHARS = 256;

export interface OmahaEvent {
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
}

export interface OmahaApp {
  appId: string;
  version: string;
  /** The channel (update.conf `GROUP=`); update_engine's default is `stable`. */
  track: string;
  machineId: string;
  bootId: string;
  oem?: string;
  /** `<ping>` present. */
  ping: boolean;
  /** `<updatecheck>` present: the app asks whether there is an update. */
  updateCheck: boolean;
  events: OmahaEvent[];
}

export interface OmahaRequest {
  protocol: string;
  installSource?: string;
  os?: { platform?: string; version?: string; sp?: string };
  apps: OmahaApp[];
}

/** Why a request cannot be read (thrown inside this module, returned by parseRequest). */
class Unreadable extends Error {}

const readXml = untrustedXml(['app', 'event'], MAX_REQUEST_BYTES, 'request');

type Node = XmlNode;

function text(node: Node, name: string, fallback?: string): string | undefined {
  const v = node[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new Unreadable(`attribute ${name} is not text`);
  if (v.length > MAX_ATTRIBUTE_CHARS) throw new Unreadable(`attribute ${name} is longer than ${MAX_ATTRIBUTE_CHARS} characters`);
  return v;
}

function integer(node: Node, name: string): number | undefined {
  const v = text(node, name);
  if (v === undefined) return undefined;
  if (!/^-?\d{1,10}$/.test(v)) throw new Unreadable(`attribute ${name} is not a whole number`);
  return Number(v);
}

const element = (node: Node, name: string): Node | undefined => {
  const v = node[name];
  if (v === undefined) return undefined;
  return typeof v === 'object' && v !== null ? (v as Node) : {};
};

function eventOf(node: Node): OmahaEvent {
  const type = integer(node, 'eventtype');
  const result = integer(node, 'eventresult');
  if (type === undefined || result === undefined) throw new Unreadable('an event without eventtype or eventresult');
  const errorCode = integer(node, 'errorcode');
  const previousVersion = text(node, 'previousversion');
  return { type, result, ...(errorCode !== undefined ? { errorCode } : {}), ...(previousVersion !== undefined ? { previousVersion } : {}) };
}

function appOf(node: Node): OmahaApp {
  const appId = text(node, 'appid');
  if (!appId) throw new Unreadable('an app without appid');
  const events = (node['event'] as Node[] | undefined) ?? [];
  if (events.length > MAX_EVENTS) throw new Unreadable(`an app with more than ${MAX_EVENTS} events`);
  const oem = text(node, 'oem');
  return {
    appId,
    version: text(node, 'version', '0.0.0.0')!,
    track: text(node, 'track', 'stable')!,
    machineId: text(node, 'machineid', '')!,
    bootId: text(node, 'bootid', '')!,
    ...(oem !== undefined ? { oem } : {}),
    ping: element(node, 'ping') !== undefined,
    updateCheck: element(node, 'updatecheck') !== undefined,
    events: events.map((e) => eventOf(nodeOf(e))),
  };
}

/**
 * Reads a request body: the request, or why it is not one (the server answers that with Omaha's
 * error status; nothing here throws on any input).
 */
export function parseRequest(body: string): { request: OmahaRequest } | { unreadable: string } {
  try {
    return { request: readRequest(body) };
  } catch (err) {
    if (err instanceof Unreadable) return { unreadable: err.message };
    return { unreadable: `unreadable request: ${(err as Error).message?.split('\n')[0] ?? String(err)}` };
  }
}

function readRequest(body: string): OmahaRequest {
  const doc = readXml(body);
  if (typeof doc === 'string') throw new Unreadable(doc);
  const request = element(doc, 'request');
  if (!request) throw new Unreadable('no <request> element');
  const apps = (request['app'] as Node[] | undefined) ?? [];
  if (apps.length > MAX_APPS) throw new Unreadable(`more than ${MAX_APPS} apps`);
  const os = element(request, 'os');
  const installSource = text(request, 'installsource');
  return {
    protocol: text(request, 'protocol', '')!,
    ...(installSource !== undefined ? { installSource } : {}),
    ...(os ? { os: { platform: text(os, 'platform'), version: text(os, 'version'), sp: text(os, 'sp') } } : {}),
    apps: apps.map((a) => appOf(nodeOf(a))),
  };
}


/** Builds a request body as update_engine sends it (protocol 3.0), for a device or a test. */
export function buildRequest(r: OmahaRequest): string {
  const app = (a: OmahaApp) => ({
    '@appid': a.appId, '@version': a.version, '@track': a.track, '@machineid': a.machineId, '@bootid': a.bootId,
    ...(a.oem !== undefined ? { '@oem': a.oem } : {}),
    ...(a.ping ? { ping: { '@active': '1' } } : {}),
    ...(a.updateCheck ? { updatecheck: '' } : {}),
    ...(a.events.length > 0 ? { event: a.events.map((e) => ({
      '@eventtype': String(e.type), '@eventresult': String(e.result),
      ...(e.errorCode !== undefined ? { '@errorcode': String(e.errorCode) } : {}),
      ...(e.previousVersion !== undefined ? { '@previousversion': e.previousVersion } : {}),
    })) } : {}),
  });
  const body = {
    request: {
      '@protocol': r.protocol || '3.0', '@ismachine': '1',
      ...(r.installSource !== undefined ? { '@installsource': r.installSource } : {}),
      ...(r.os ? { os: { ...(r.os.platform ? { '@platform': r.os.platform } : {}), ...(r.os.version ? { '@version': r.os.version } : {}), ...(r.os.sp ? { '@sp': r.os.sp } : {}) } } : {}),
      app: r.apps.map(app),
    },
  };
  return writeXml(body);
}
