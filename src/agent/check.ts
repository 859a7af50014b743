/**
 * `fastpatch check`: one update cycle of the device, as update_engine runs it against an Omaha
 * server (docs/OMAHA.md, "The device"):
 *
 *   1. settings: /usr/share/fastpatch/update.conf, then /etc/fastpatch/update.conf (GROUP=,
 *      SERVER=), then the caller's overrides; the machine id, the boot id, the running release
 *      (the slot status record);
 *   2. what the last cycle left: an update installed in an earlier boot is reported as success
 *      (3/2) when the machine runs it now, as a rollback (3/0, code 44) when it runs the old one;
 *   3. the update check (with ping, and that report in the same app, as Flatcar sends it);
 *   4. an offered payload: its head fetched and its signature and version checked, then event 13/1,
 *      `update` into the passive slot (every operation, source block and the image checked), 14/1
 *      and 3/1; a failure is reported as 3/0 with update_engine's error code, then thrown.
 */
import { FastPatchError } from '../errors.js';
import { compareVersions } from '../format/version.js';
import { inspectPayload } from '../apply/inspect.js';
import { openPayload, type SeekablePayload } from '../io/payload-source.js';
import type { HttpChunksOptions } from '../io/http.js';
import { COREOS_APP_ID, ERROR_CODE_ROLLBACK, EVENT_RESULT, EVENT_TYPE } from '../omaha/codes.js';
import { buildRequest, type OmahaEvent } from '../omaha/request.js';
import { readUpdateCheck, type OmahaUpdate } from '../omaha/response.js';
import type { PrivateKey, PublicKey } from '../sign/keys.js';
import { escapeText } from '../text.js';
import { readLayeredUpdateConfig, type UnknownReleasePolicy } from '../update/config.js';
import { updateDisk, type UpdateResult } from '../update/update.js';
import { readBootId, readMachineId } from './identity.js';
import { postOmaha } from './omaha-client.js';
import { agentRecordPath, readPending, writePending, type PendingUpdate } from './pending.js';
import { runningRelease } from './running-release.js';
import { errorCodeOf, UPDATE_ENGINE_CODES } from './error-codes.js';

export interface CheckOptions {
  /** Whole disk holding the A/B slots. */
  disk: string;
  trustedKeys: readonly (PublicKey | PrivateKey)[];
  /** Omaha endpoint; default SERVER= of update.conf. */
  server?: string;
  /** Channel or group (the Omaha track); default GROUP= of update.conf, else `stable`. */
  group?: string;
  /** The machine's update.conf (default /etc/fastpatch/update.conf) and the image's (default /usr/share/fastpatch/update.conf). */
  config?: string;
  imageConfig?: string;
  machineIdFile?: string;
  bootIdFile?: string;
  /** When the running slot's release is unknown: refuse (the default) or allow, as `update`; default UNKNOWN_RELEASE= of update.conf. */
  unknownRelease?: UnknownReleasePolicy;
  /** Slot status record (default: as `update` finds it). */
  statusPath?: string;
  /** The running slot, when the bootloader's choice is not it. */
  running?: string;
  appId?: string;
  http?: HttpChunksOptions;
  onProgress?: (p: { imageBytesDone: number; targetSize: number }) => void;
  /** One line per step, for a log. */
  log?: (line: string) => void;
}

export type CheckOutcome = 'updated' | 'no-update' | 'reboot-pending';

export interface CheckResult {
  outcome: CheckOutcome;
  server: string;
  group: string;
  machineId: string;
  running: { slot: string; version: string | undefined };
  /** Events sent, in order. */
  reported: OmahaEvent[];
  /** Why there is no update (the server's reason, or the device's). */
  reason?: string;
  offered?: { version: string; kind: 'delta' | 'full'; size: number; url: string };
  update?: UpdateResult;
}

const DEFAULT_GROUP = 'stable';

interface Cycle {
  o: CheckOptions;
  server: string;
  group: string;
  machineId: string;
  bootId: string;
  appId: string;
  version: string;
  unknownRelease: UnknownReleasePolicy;
  reported: OmahaEvent[];
}

/** Runs one cycle. Throws FastPatchError for settings it cannot use, a failed exchange, or a failed install (after reporting it). */
export async function checkForUpdate(o: CheckOptions): Promise<CheckResult> {
  const config = await readLayeredUpdateConfig({ ...(o.config !== undefined ? { machine: o.config } : {}), ...(o.imageConfig !== undefined ? { image: o.imageConfig } : {}) });
  for (const note of config.notes) o.log?.(`note: ${note}`);
  const server = o.server ?? config.server;
  if (!server) throw new FastPatchError('USAGE', `no update server: set SERVER= in ${config.paths.at(-1) ?? '/etc/fastpatch/update.conf'} or give --server URL`);
  const group = o.group ?? config.group ?? DEFAULT_GROUP;
  const machineId = await readMachineId(o.machineIdFile);
  const bootId = await readBootId(o.bootIdFile);
  const running = await runningRelease(o.disk, { ...(o.statusPath !== undefined ? { statusPath: o.statusPath } : {}), ...(o.running !== undefined ? { running: o.running } : {}) });
  const unknownRelease = o.unknownRelease ?? config.unknownRelease ?? 'refuse';
  if (running.version === undefined && unknownRelease !== 'allow') {
    // As `update` refuses it, but before the server is asked: this is the device's setting, not a failed release.
    throw new FastPatchError('DOWNGRADE', `the running slot ${escapeText(running.slot)} has no recorded release (${running.problem ?? `no entry in ${running.statusPath}`}), so no update can be checked for downgrade; set UNKNOWN_RELEASE=allow in update.conf (or --unknown-release allow) for a disk installed by other means`);
  }
  const recordPath = agentRecordPath(running.statusPath);
  const { pending, problem } = await readPending(recordPath);
  if (problem) o.log?.(`note: agent record not used: ${problem}`);
  const c: Cycle = { o, server, group, machineId, bootId, appId: o.appId ?? COREOS_APP_ID, version: running.version ?? '0.0.0', unknownRelease, reported: [] };
  const base = { server, group, machineId, running: { slot: running.slot, version: running.version }, reported: c.reported };
  if (pending && pending.bootId === bootId) {
    return { ...base, outcome: 'reboot-pending', reason: `${pending.to} is installed in the passive slot since ${pending.at}; it runs after a reboot` };
  }
  const afterReboot = pending ? rebootReport(pending, running.version) : undefined;
  const answer = await exchange(c, { ping: true, updateCheck: true, events: afterReboot ? [afterReboot] : [] });
  if (pending) await writePending(recordPath, undefined); // reported: the next cycle starts clean
  if ('unreadable' in answer) throw new FastPatchError('IO', `update server ${escapeText(server)}: ${answer.unreadable}`);
  if (!answer.update) {
    if (answer.status !== 'noupdate') throw new FastPatchError('IO', `update server ${escapeText(server)} answered ${escapeText(answer.status)}${answer.reason ? `: ${escapeText(answer.reason)}` : ''}`);
    return { ...base, outcome: 'no-update', reason: answer.reason ?? 'the server has no update for this machine' };
  }
  return install(c, answer.update, recordPath, base);
}

/** The event that says how the last update ended, seen from a new boot. */
function rebootReport(pending: PendingUpdate, runningVersion: string | undefined): OmahaEvent | undefined {
  if (runningVersion === pending.to) return { type: EVENT_TYPE.UPDATE_COMPLETE, result: EVENT_RESULT.SUCCESS_REBOOT, previousVersion: pending.from };
  if (runningVersion === pending.from) return { type: EVENT_TYPE.UPDATE_COMPLETE, result: EVENT_RESULT.ERROR, errorCode: ERROR_CODE_ROLLBACK, previousVersion: pending.from };
  return undefined; // neither: installed by other means since; nothing to say about ours
}

/** One request for this machine's app; an events-only request's answer is best effort, as update_engine's. */
async function exchange(c: Cycle, what: { ping: boolean; updateCheck: boolean; events: OmahaEvent[] }): Promise<ReturnType<typeof readUpdateCheck>> {
  const body = buildRequest({
    protocol: '3.0', installSource: 'scheduler',
    os: { platform: 'FastPatch', version: 'Linux' },
    apps: [{ appId: c.appId, version: c.version, track: c.group, machineId: c.machineId, bootId: `{${c.bootId}}`, ...what }],
  });
  c.reported.push(...what.events);
  return readUpdateCheck(await postOmaha(c.server, body), c.appId);
}

async function report(c: Cycle, event: OmahaEvent): Promise<void> {
  await exchange(c, { ping: false, updateCheck: false, events: [event] }).catch((err: unknown) => {
    c.o.log?.(`note: event ${event.type}/${event.result} not delivered: ${(err as Error).message}`);
  });
}

async function install(c: Cycle, update: OmahaUpdate, recordPath: string, base: Omit<CheckResult, 'outcome'>): Promise<CheckResult> {
  let url: string;
  try {
    url = new URL(update.package.name, update.codebases[0]!.endsWith('/') ? update.codebases[0] : `${update.codebases[0]}/`).href;
  } catch {
    const err = new FastPatchError('IO', `update server ${escapeText(c.server)} offered no usable URL (codebase "${escapeText(update.codebases[0]!.slice(0, 200))}", package "${escapeText(update.package.name.slice(0, 200))}")`);
    await report(c, { type: EVENT_TYPE.UPDATE_COMPLETE, result: EVENT_RESULT.ERROR, errorCode: UPDATE_ENGINE_CODES.RESPONSE_INVALID });
    throw err;
  }
  if (!/^https?:$/.test(new URL(url).protocol)) throw new FastPatchError('IO', `update server ${escapeText(c.server)} offered a payload at ${escapeText(url.slice(0, 200))}: only http(s) URLs are fetched`);
  const offered: { version: string; kind: 'delta' | 'full'; size: number; url: string } = { version: update.version, kind: update.isDelta ? 'delta' : 'full', size: update.package.size, url };
  c.o.log?.(`offered ${escapeText(update.version)} (${update.package.size} bytes) from ${escapeText(url)}`);
  try {
    const payload = openPayload(url, c.o.http ? { http: c.o.http } : {}) as SeekablePayload;
    // The head alone (signature and manifest) before anything else: the offer must be what it says.
    const head = await inspectPayload(payload.read(0), c.o.trustedKeys);
    offered.kind = head.source ? 'delta' : 'full'; // the signed manifest says, not the server (go-omaha never sets IsDeltaPayload)
    if (head.version !== update.version) throw new FastPatchError('CORRUPT_PAYLOAD', `the server offered release ${escapeText(update.version)}, the payload is release ${escapeText(head.version)}`);
    if (compareVersions(head.version, c.version) <= 0) throw new FastPatchError('DOWNGRADE', `the server offered release ${escapeText(head.version)}, not newer than the running ${c.version}`);
    await report(c, { type: EVENT_TYPE.UPDATE_DOWNLOAD_STARTED, result: EVENT_RESULT.SUCCESS });
    const result = await updateDisk(payload, {
      disk: c.o.disk, trustedKeys: c.o.trustedKeys, resume: true, unknownRelease: c.unknownRelease,
      ...(c.o.statusPath !== undefined ? { statusPath: c.o.statusPath } : {}),
      ...(c.o.running !== undefined ? { running: c.o.running } : {}),
      ...(c.o.onProgress ? { onProgress: c.o.onProgress } : {}),
    });
    await report(c, { type: EVENT_TYPE.UPDATE_DOWNLOAD_FINISHED, result: EVENT_RESULT.SUCCESS });
    await writePending(recordPath, { from: c.version, to: result.apply.version, bootId: c.bootId, slot: result.updated.label || String(result.updated.index), at: new Date().toISOString() });
    await report(c, { type: EVENT_TYPE.UPDATE_COMPLETE, result: EVENT_RESULT.SUCCESS });
    return { ...base, outcome: 'updated', offered, update: result };
  } catch (err) {
    await report(c, { type: EVENT_TYPE.UPDATE_COMPLETE, result: EVENT_RESULT.ERROR, errorCode: errorCodeOf(err) });
    throw err;
  }
}
