/**
 * `fastpatch fleetlock`: a FleetLock v1 server (Zincati's `[updates.fleet_lock] base_url`) on the
 * reboot semaphore in etcd, so Fedora CoreOS machines and FastPatch's agents take slots of one
 * semaphore (docs/FLEET.md, "FleetLock"). A daemon: it runs until SIGTERM or SIGINT, then exits 0.
 */
import { FastPatchError } from '../errors.js';
import { parseEndpoints } from '../fleet/endpoints.js';
import { startFleetLock } from '../fleet/fleetlock.js';
import { escapeText } from '../text.js';
import { readLayeredUpdateConfig } from '../update/config.js';
import { parseInteger, parseListen } from './parse.js';
import { print, printError, untilStopped } from './output.js';

/** Where etcd answers when neither --etcd nor update.conf says (locksmith's default). */
const DEFAULT_ETCD = 'http://127.0.0.1:2379';

/** `--group NAME=SLOTS` values: the slots a group's key gets when FleetLock creates it. */
export function parseGroupSlots(values: readonly string[]): Record<string, number> {
  const groups: Record<string, number> = {};
  for (const value of values) {
    const m = /^([a-zA-Z0-9.-]{1,64})=(\d{1,5})$/.exec(value);
    if (!m) throw new FastPatchError('USAGE', `--group expects NAME=SLOTS (a FleetLock group of a-z A-Z 0-9 . -, and a slot count), got "${escapeText(value.slice(0, 100))}"`);
    groups[m[1]!] = parseInteger(m[2]!, '--group');
  }
  return groups;
}

/** The etcd endpoints: --etcd, else update.conf's ETCD_ENDPOINTS (when this build reads it), else locksmith's default. */
async function endpointsOf(etcd: string | undefined): Promise<string[]> {
  if (etcd !== undefined) return parseEndpoints(etcd);
  const config = (await readLayeredUpdateConfig()) as { etcdEndpoints?: string | readonly string[] };
  const configured = config.etcdEndpoints;
  if (configured === undefined) return parseEndpoints(DEFAULT_ETCD);
  return parseEndpoints(typeof configured === 'string' ? configured : configured.join(','));
}

/** Serves FleetLock on `opts.listen` until SIGTERM or SIGINT. Throws FastPatchError('USAGE') for a bad option. */
export async function run(opts: { listen: string; etcd?: string; group?: string[] }): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const groups = parseGroupSlots(opts.group ?? []);
  const endpoints = await endpointsOf(opts.etcd);
  const log = (line: string) => printError(`${new Date().toISOString()} ${escapeText(line)}`);
  const server = await startFleetLock({ endpoints, host, port, groups, log });
  print(`FleetLock at ${server.url} (POST v1/pre-reboot, v1/steady-state) on etcd ${endpoints.join(',')}`);
  // A daemon's stop is not an interruption: every slot change is already in etcd.
  await untilStopped();
  await server.close();
  print('stopped');
}
