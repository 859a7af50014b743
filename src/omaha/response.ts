/**
 * The Omaha v3 response, as a server writes it and CoreOS's update_engine reads it: built from
 * plain data, and parsed (for FastPatch's own device side, and tests) from untrusted XML. Pure.
 *
 * What update_engine needs of an update (reference notes §1.3): `updatecheck@status="ok"`, one or
 * more `urls/url@codebase` (the payload's folder), `manifest@version`, the first
 * `packages/package` with a `name` and a `size` > 0, and the `postinstall` action whose `sha256`
 * (base64 of the payload's SHA-256) it checks the download against. Hashes are base64, as
 * go-omaha and Nebraska write them.
 */
import { nodeOf as obj, untrustedXml, writeXml, type XmlNode as Node } from './xml.js';
import type { AppStatus, UpdateCheckStatus } from './codes.js';

export const MAX_RESPONSE_BYTES = 64 * 1024;

export interface OmahaPackage {
  /** File name, appended to a codebase. */
  name: string;
  size: number;
  /** Base64 SHA-256 of the payload file. */
  sha256: string;
  /** Base64 SHA-1, for clients that read `hash` (update_engine does not). */
  sha1?: string;
}

export interface OmahaUpdate {
  /** Folder URLs the package is fetched from, in order of preference. */
  codebases: string[];
  version: string;
  package: OmahaPackage;
  /** The package is a delta from the version the device reported. */
  isDelta?: boolean;
}

export interface OmahaAppResponse {
  appId: string;
  status: AppStatus;
  /** `<ping>` answered ok. */
  ping?: boolean;
  /** One ok per event received. */
  events?: number;
  /** `reason`: why there is no update (FastPatch's own attribute; other clients ignore it, as the protocol requires). */
  updateCheck?: { status: UpdateCheckStatus; update?: OmahaUpdate; pollIntervalSeconds?: number; reason?: string };
}

export interface OmahaResponse {
  server: string;
  /** Seconds since local midnight at the server, `daystart@elapsed_seconds`. */
  elapsedSeconds: number;
  apps: OmahaAppResponse[];
}


function updateCheckNode(u: NonNullable<OmahaAppResponse['updateCheck']>): Record<string, unknown> {
  const node: Record<string, unknown> = { '@status': u.status };
  if (u.pollIntervalSeconds !== undefined) node['@PollInterval'] = String(u.pollIntervalSeconds);
  if (u.reason !== undefined) node['@reason'] = u.reason;
  if (u.status !== 'ok' || !u.update) return node;
  const up = u.update;
  node['urls'] = { url: up.codebases.map((c) => ({ '@codebase': c.endsWith('/') ? c : `${c}/` })) };
  node['manifest'] = {
    '@version': up.version,
    packages: { package: { '@name': up.package.name, '@hash': up.package.sha1 ?? '', '@hash_sha256': up.package.sha256, '@size': String(up.package.size), '@required': 'true' } },
    actions: { action: { '@event': 'postinstall', '@sha256': up.package.sha256, '@DisplayVersion': up.version, ...(up.isDelta ? { '@IsDeltaPayload': 'true' } : {}) } },
  };
  return node;
}

/** Builds a response body (protocol 3.0). Throws RangeError for an update without a codebase or with size 0. */
export function buildResponse(r: OmahaResponse): string {
  for (const a of r.apps) {
    const up = a.updateCheck?.update;
    if (a.updateCheck?.status === 'ok' && (!up || up.codebases.length === 0 || !(up.package.size > 0) || !up.package.name)) {
      throw new RangeError(`app ${a.appId}: an update needs a codebase, a package name and a size > 0`);
    }
  }
  const body = {
    response: {
      '@protocol': '3.0', '@server': r.server,
      daystart: { '@elapsed_seconds': String(Math.floor(r.elapsedSeconds)) },
      app: r.apps.map((a) => ({
        '@appid': a.appId, '@status': a.status,
        ...(a.ping ? { ping: { '@status': 'ok' } } : {}),
        ...(a.events ? { event: Array.from({ length: a.events }, () => ({ '@status': 'ok' })) } : {}),
        ...(a.updateCheck ? { updatecheck: updateCheckNode(a.updateCheck) } : {}),
      })),
    },
  };
  return writeXml(body);
}

const readXml = untrustedXml(['app', 'url', 'package', 'action', 'event'], MAX_RESPONSE_BYTES, 'response');

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * What a device reads of a response for `appId`: the update offered, or the status that says why
 * none is (update_engine's rules: only the first manifest and package count, the postinstall
 * action's sha256 is required with an update). Never throws: anything unreadable is a reason.
 */
export function readUpdateCheck(body: string, appId: string): { status: string; update?: OmahaUpdate; reason?: string } | { unreadable: string } {
  const doc = readXml(body);
  if (typeof doc === 'string') return { unreadable: doc };
  const app = ((obj(doc['response'])['app'] as unknown[]) ?? []).map(obj).find((a) => str(a['appid'])?.toLowerCase() === appId.toLowerCase());
  if (!app) return { unreadable: `the response has no app ${appId}` };
  if (str(app['status']) !== 'ok') return { status: `app ${str(app['status']) ?? '(no status)'}` };
  const check = obj(app['updatecheck']);
  const status = str(check['status']);
  if (status === undefined) return { unreadable: 'the response has no updatecheck status' };
  const reason = str(check['reason']);
  if (status !== 'ok') return { status, ...(reason !== undefined ? { reason: reason.slice(0, 1024) } : {}) };
  const manifest = obj(check['manifest']);
  const pkg = ((obj(manifest['packages'])['package'] as unknown[]) ?? []).map(obj)[0];
  const action = ((obj(manifest['actions'])['action'] as unknown[]) ?? []).map(obj).find((a) => str(a['event']) === 'postinstall');
  const codebases = ((obj(check['urls'])['url'] as unknown[]) ?? []).map((u) => str(obj(u)['codebase'])).filter((c): c is string => !!c);
  const size = Number(str(pkg?.['size']));
  const name = str(pkg?.['name']);
  const sha256 = str(action?.['sha256']);
  if (!name || !(Number.isSafeInteger(size) && size > 0) || !sha256 || codebases.length === 0) {
    return { unreadable: 'an update without a package name, a size > 0, a postinstall sha256 or a codebase' };
  }
  const sha1 = str(pkg?.['hash']);
  return {
    status,
    update: {
      codebases, version: str(manifest['version']) ?? '',
      package: { name, size, sha256, ...(sha1 ? { sha1 } : {}) },
      ...(str(action?.['IsDeltaPayload']) === 'true' ? { isDelta: true } : {}),
    },
  };
}
