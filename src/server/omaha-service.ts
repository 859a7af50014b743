/**
 * The update service's answer to one Omaha request, app by app, in Nebraska's order: record the
 * events, register the ping, then decide the update check (docs/OMAHA.md, "What the server
 * decides").
 *
 * An update is offered only when the device's channel carries a release newer than the one the
 * device runs (never a lower one: a machine that moved to a channel that is behind waits, and the
 * noupdate says so), and the group's rollout lets this machine have it now (pause, wave, caps).
 * The package is the delta from the device's release when the repository has one, else the full
 * payload. Every refusal is a noupdate or an Omaha error status with a `reason`, never a throw.
 */
import { COREOS_APP_ID } from '../omaha/codes.js';
import type { OmahaApp, OmahaRequest } from '../omaha/request.js';
import type { OmahaAppResponse, OmahaResponse, OmahaUpdate } from '../omaha/response.js';
import { compareVersions } from '../format/version.js';
import { checkReleaseVersion } from '../format/manifest.js';
import type { PayloadEntry, ReleaseRecord } from '../release/documents.js';
import type { ReleaseCatalog } from './catalog.js';
import type { MachineLimit } from './machine-limit.js';
import type { MachineCheck, RolloutStore } from './rollout-store.js';

export interface ServiceOptions {
  catalog: ReleaseCatalog;
  rollout: RolloutStore;
  /** Omaha app ids served (compared case-insensitively; answered as the device spelled them). */
  appIds?: readonly string[];
  /** Bounds the machines recorded (machine-limit.ts); none when absent. */
  limit?: MachineLimit;
  /** Told of each grant, refusal and self-pause, one line each (untrusted text already escaped by the caller's printer). */
  log?: (line: string) => void;
  now?: () => Date;
}

/** Where the device downloads from: the folder URL that payload names are appended to. */
export type CodebaseOf = (pkg: PayloadEntry) => string[];

const TRACK_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MACHINE_ID_RE = /^[A-Za-z0-9{}._-]{1,128}$/;

const b64 = (hexDigest: string) => Buffer.from(hexDigest, 'hex').toString('base64');

/** The package for a device on `from`: the delta from its release, else the full payload. */
export function packageFor(release: ReleaseRecord, from: string): PayloadEntry {
  return release.payloads.find((p) => p.kind === 'delta' && p.from === from) ?? release.payloads.find((p) => p.kind === 'full')!;
}

/** The Omaha update of `pkg` of `release`. */
export function updateOf(release: ReleaseRecord, pkg: PayloadEntry, codebases: string[]): OmahaUpdate {
  return {
    codebases,
    version: release.version,
    package: { name: `${pkg.sha256}.fpay`, size: pkg.size, sha256: b64(pkg.sha256), sha1: b64(pkg.sha1) },
    ...(pkg.kind === 'delta' ? { isDelta: true } : {}),
  };
}

/** Seconds since the server's local midnight, as `daystart@elapsed_seconds`. */
function elapsedToday(now: Date): number {
  return now.getHours() * 3600 + now.getMinutes() * 60 + now.getSeconds();
}

/** Answers a parsed request. Never throws for anything the device sent. */
export async function answerRequest(request: OmahaRequest, codebases: CodebaseOf, o: ServiceOptions): Promise<OmahaResponse> {
  const apps: OmahaAppResponse[] = [];
  for (const app of request.apps) {
    // Protocol 3.x only: an older client would misread the answer, so nothing of it is recorded.
    if (!/^3\.\d+$/.test(request.protocol)) apps.push({ appId: app.appId, status: 'ok', ...(app.updateCheck ? { updateCheck: { status: 'error-unsupportedProtocol', reason: `protocol ${request.protocol || '(none)'}; this server speaks 3.0` } } : {}) });
    else apps.push(await answerApp(app, codebases, o).catch((err: unknown) => internalError(app, err, o)));
  }
  return { server: 'fastpatch', elapsedSeconds: elapsedToday(o.now?.() ?? new Date()), apps };
}

/**
 * An app whose answer failed on the server's side (the state database busy past its timeout, a
 * full disk): Omaha's internal error for that app, the others answered as usual.
 */
function internalError(app: OmahaApp, err: unknown, o: ServiceOptions): OmahaAppResponse {
  o.log?.(`internal error answering ${app.machineId || 'a machine'}: ${(err as Error).message}`);
  return { appId: app.appId, status: 'error-internal', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: 'the server could not answer; try again later' } } : {}) };
}

/** The group a track names: a group the operator made, else the channel of that name's own group. */
function resolveGroup(app: OmahaApp, o: ServiceOptions): { group: string; channel: string } | undefined {
  const defined = o.rollout.findGroup(app.track);
  if (defined) return o.catalog.channels.includes(defined.channel) ? { group: defined.name, channel: defined.channel } : undefined;
  if (!o.catalog.channels.includes(app.track)) return undefined;
  o.rollout.group(app.track, app.track); // a channel's own group, made on its first machine's check
  return { group: app.track, channel: app.track };
}

async function answerApp(app: OmahaApp, codebases: CodebaseOf, o: ServiceOptions): Promise<OmahaAppResponse> {
  const served = (o.appIds ?? [COREOS_APP_ID]).some((id) => id.toLowerCase() === app.appId.toLowerCase());
  const base = { appId: app.appId, ...(app.ping ? { ping: true } : {}), ...(app.events.length ? { events: app.events.length } : {}) };
  if (!served) return { ...base, status: 'error-unknownApplication', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: 'this server does not serve that app id' } } : {}) };
  try {
    checkReleaseVersion(app.version);
  } catch {
    return { ...base, status: 'error-invalidVersion', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: 'the version is not a release version' } } : {}) };
  }
  // What the store keys and counts by must be a name, not any 256 characters: a track as
  // update.conf's GROUP= allows, a machine id as update_engine (32 hex) or go-omaha (a UUID) send.
  if (!TRACK_RE.test(app.track)) return { ...base, status: 'ok', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: 'the track must be 1-64 of A-Z a-z 0-9 . _ -' } } : {}) };
  if (app.machineId && !MACHINE_ID_RE.test(app.machineId)) return { ...base, status: 'ok', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: 'the machineid must be 1-128 of A-Z a-z 0-9 { } . _ -' } } : {}) };
  const where = resolveGroup(app, o);
  if (!where) {
    const reason = `no channel or group "${app.track}" here; channels: ${o.catalog.channels.join(', ')}`;
    return { ...base, status: 'ok', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason } } : {}) };
  }
  if (!app.machineId) return { ...base, status: 'ok', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: 'no machineid: a machine needs an id to have a place in a rollout' } } : {}) };
  if (o.limit && !o.limit.admits(app.machineId)) {
    return { ...base, status: 'ok', ...(app.updateCheck ? { updateCheck: { status: 'error-internal', reason: `this server records at most ${o.limit.max} machines and has that many; ask its operator (serve --max-machines)` } } : {}) };
  }
  const machine: MachineCheck = { machineId: app.machineId, group: where.group, channel: where.channel, version: app.version, bootId: app.bootId, ...(app.oem !== undefined ? { oem: app.oem } : {}) };
  if (app.events.length > 0) {
    const { selfPaused } = o.rollout.recordEvents(machine, app.events);
    if (selfPaused) o.log?.(`group ${where.group} paused itself: ${selfPaused}`);
  }
  if (!app.updateCheck) {
    if (app.ping) o.rollout.checkIn(machine);
    return { ...base, status: 'ok' };
  }
  const decided = await decideUpdate(machine, codebases, o);
  // grant() checks the machine in within its own transaction; every answer that did not reach it does it here.
  if (!decided.checkedIn) o.rollout.checkIn(machine);
  return { ...base, status: 'ok', updateCheck: decided.answer };
}

async function decideUpdate(m: MachineCheck, codebases: CodebaseOf, o: ServiceOptions): Promise<{ checkedIn: boolean; answer: NonNullable<OmahaAppResponse['updateCheck']> }> {
  const no = (reason: string) => ({ checkedIn: false, answer: { status: 'noupdate' as const, reason } });
  const record = await o.catalog.channel(m.channel);
  if (!record) return no(`${m.channel} carries no release yet`);
  const release = record.release;
  const order = compareVersions(m.version, release.version);
  if (order === 0) return no(`${release.version} is the release of ${m.channel}`);
  if (order > 0) return no(`${m.channel} carries ${release.version}, older than the running ${m.version}: this machine stays where it is until ${m.channel} passes it (no downgrade)`);
  const verdict = o.rollout.grant(m, release.version);
  if (!verdict.granted) return { checkedIn: true, answer: { status: 'noupdate', reason: `${release.version} is not yet offered to this machine: ${verdict.reason}` } };
  const pkg = packageFor(release, m.version);
  o.log?.(`granted ${release.version} (${pkg.kind === 'delta' ? `delta from ${pkg.from}` : 'full'}) to ${m.machineId} in ${m.group}`);
  return { checkedIn: true, answer: { status: 'ok', update: updateOf(release, pkg, codebases(pkg)) } };
}
