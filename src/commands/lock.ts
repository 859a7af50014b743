/**
 * `fastpatch lock`: the operator's view of the reboot semaphore, as `locksmithctl` gives it
 * (status, lock, unlock, set-max), on locksmith's key in etcd's v3 store, so an operator's habits
 * and `etcdctl get` carry over (locksmithctl itself speaks only v2, a separate store). Beyond locksmithctl: each holder's FastPatch record (release, since, state) and a
 * release guarded by `--since`, so freeing a stuck machine cannot free the slot it took again.
 */
import { readMachineId } from '../agent/identity.js';
import { FastPatchError } from '../errors.js';
import { EtcdSemaphore, type SemaphoreResult } from '../fleet/etcd-semaphore.js';
import { parseEndpoints } from '../fleet/endpoints.js';
import { lock, MAX_ID_CHARS, setMax as setSemaphoreMax, type HolderRecord, type Semaphore } from '../fleet/semaphore.js';
import { readLayeredUpdateConfig } from '../update/config.js';
import { print, printJson } from './output.js';

/** Options shared by the lock subcommands (the CLI's flags). */
export interface LockOptions {
  /** `--etcd URLS`: comma-separated client URLs; else ETCD_ENDPOINTS of update.conf; else DEFAULT_ETCD. */
  etcd?: string;
  /** `--group`: locksmith's group (its own key); the default group when absent. */
  group?: string;
  json?: boolean;
  /** `release --since`: free the slot only if its holder's record still says it took it then. */
  since?: string;
  /** Where the machine id is, for the default ID (default /etc/machine-id). */
  machineIdFile?: string;
}

/** Where etcd is when neither --etcd nor update.conf says: locksmith's default. */
export const DEFAULT_ETCD = 'http://127.0.0.1:2379';

/** --etcd, else ETCD_ENDPOINTS of the layered update.conf, else DEFAULT_ETCD. */
async function endpointsFor(opts: LockOptions): Promise<string[]> {
  if (opts.etcd !== undefined) return parseEndpoints(opts.etcd);
  return (await readLayeredUpdateConfig()).etcdEndpoints ?? [DEFAULT_ETCD];
}

/** Runs `work` on a client of the group's semaphore, closed whatever happens (an open gRPC channel keeps the process alive). */
async function withSemaphore<T>(opts: LockOptions, work: (sem: EtcdSemaphore) => Promise<T>): Promise<T> {
  // The group: --group, else LOCKSMITHD_GROUP of update.conf (the one the agent uses), else the default key.
  opts.group ??= (await readLayeredUpdateConfig()).lockGroup;
  const sem = new EtcdSemaphore({ endpoints: await endpointsFor(opts) }, opts.group);
  try {
    return await work(sem);
  } finally {
    sem.close();
  }
}

/** `--group G` for the hints, so a copied command acts on the same group. */
/**
 * A word as a shell reads it back: plain ids as they are, anything else single-quoted. An id is
 * whatever a FleetLock client sent; a printed command must not run what it smuggled in.
 */
function shellWord(word: string): string {
  return /^[A-Za-z0-9._:@%+=,\/-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function groupFlag(opts: LockOptions): string {
  return opts.group !== undefined && opts.group !== '' && opts.group !== 'default' ? ` --group ${shellWord(opts.group)}` : '';
}

/** The id a subcommand acts for: the one given, else this machine's (as locksmithctl's). */
async function idFor(id: string | undefined, opts: LockOptions): Promise<string> {
  if (id !== undefined) {
    if (id === '' || id.length > MAX_ID_CHARS) throw new FastPatchError('USAGE', `a machine id must be 1-${MAX_ID_CHARS} characters; leave it out for this machine's (/etc/machine-id)`);
    return id;
  }
  return readMachineId(...(opts.machineIdFile !== undefined ? [opts.machineIdFile] : []));
}

/** An age as "42 s", "12 min", "3 h 12 min" or "2 d 4 h"; "unknown" for a time that does not parse or lies ahead. */
export function formatAge(sinceIso: string, now = Date.now()): string {
  const t = Date.parse(sinceIso);
  if (Number.isNaN(t) || t > now + 60_000) return 'unknown';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** One holder as status shows it (and its --json form). */
interface HolderView {
  id: string;
  record?: HolderRecord;
  ageSeconds?: number;
}

function holderViews(s: Semaphore, now: number): HolderView[] {
  return s.holders.map((id) => {
    const record = s.records[id];
    if (!record) return { id };
    const t = Date.parse(record.since);
    return Number.isNaN(t) ? { id, record } : { id, record, ageSeconds: Math.max(0, (now - t) / 1000) };
  });
}

function describeRecord(r: HolderRecord | undefined, now: number): string {
  if (!r) return '(no record: taken by another tool)';
  const why = r.release === '' ? 'taken by hand (fastpatch lock acquire)' : `release ${r.release} from ${r.from === '' ? '(unknown)' : r.from}`;
  return `${why}, since ${r.since} (${formatAge(r.since, now)}), ${r.state}`;
}

/** `lock status`: locksmithctl's lines (Available, Max, MACHINE ID), then each holder's record and what to do next. */
export async function status(opts: LockOptions): Promise<void> {
  const { value, key } = await withSemaphore(opts, async (sem) => ({ ...(await sem.read()), key: sem.key }));
  const now = Date.now();
  const holders = holderViews(value, now);
  if (opts.json) return printJson({ key, group: opts.group ?? 'default', available: value.semaphore, max: value.max, holders });
  print(`Available: ${value.semaphore}`);
  print(`Max: ${value.max}`);
  print(`Key: ${key}`);
  if (holders.length === 0) return print('no holders: the next machine to ask takes a slot');
  print('');
  print('MACHINE ID');
  const width = Math.max(...holders.map((h) => h.id.length));
  for (const h of holders) print(`${h.id.padEnd(width)}  ${describeRecord(h.record, now)}`);
  print('');
  const stuck = holders.find((h) => h.record) ?? holders[0]!;
  const guard = stuck.record ? ` --since ${shellWord(stuck.record.since)}` : '';
  print(`a holder frees its slot itself once it has booted and confirmed; to free a machine that will not come back: fastpatch lock release ${shellWord(stuck.id)}${guard}${groupFlag(opts)}`);
}

/** `lock acquire [ID]`: takes a slot for ID (this machine by default), as `locksmithctl lock`. Throws LOCK_REFUSED when none is free. */
export async function acquire(id: string | undefined, opts: LockOptions): Promise<void> {
  const holder = await idFor(id, opts);
  // A slot taken by hand carries a record too: its since is what a later `release --since` guards
  // on. A holder keeps its own record (a machine's reboot record says more than "by hand").
  const record: HolderRecord = { release: '', from: '', since: new Date().toISOString(), state: 'held' };
  const r = await withSemaphore(opts, (sem) => sem.update((s) => lock(s, holder, s.holders.includes(holder) ? undefined : record)));
  if (r.refused !== undefined) {
    throw new FastPatchError('LOCK_REFUSED', `no slot for ${holder}: ${r.refused}; see who holds them with fastpatch lock status${groupFlag(opts)}`);
  }
  if (opts.json) return printJson(resultJson(holder, r));
  const since = r.value.records[holder]?.since;
  print(`${holder} holds a slot${r.changed ? '' : ' (it held one already; nothing changed)'}: Available ${r.value.semaphore} of ${r.value.max}`);
  print(`free it with: fastpatch lock release ${shellWord(holder)}${since !== undefined ? ` --since ${since}` : ''}${groupFlag(opts)}`);
}

/**
 * `lock release [ID]`: frees ID's slot (this machine's by default), as `locksmithctl unlock`. With
 * `--since`, only if ID's record still says it took the slot then (status --json prints it);
 * throws LOCK_REFUSED when the machine took its slot again since.
 */
export async function release(id: string | undefined, opts: LockOptions): Promise<void> {
  const holder = await idFor(id, opts);
  const r = await withSemaphore(opts, (sem) => sem.release(holder, opts.since));
  if (r.refused !== undefined) {
    throw new FastPatchError('LOCK_REFUSED', `${r.refused}; it is rebooting again: see fastpatch lock status${groupFlag(opts)} before freeing it`);
  }
  if (opts.json) return printJson(resultJson(holder, r));
  if (!r.changed) return print(`${holder} holds no slot; nothing freed (Available ${r.value.semaphore} of ${r.value.max})`);
  print(`freed ${holder}'s slot: Available ${r.value.semaphore} of ${r.value.max}`);
}

/** `lock set-max N`: the number of machines that may reboot at once; holders keep their slots, as locksmith's set-max. */
export async function setMax(n: number, opts: LockOptions): Promise<void> {
  if (!Number.isSafeInteger(n) || n < 0) throw new FastPatchError('USAGE', `set-max takes a whole number of slots, 0 or more; got ${String(n)}`);
  let before = 0;
  // The max before is read inside the compare-and-swap, so it is the one this change replaced.
  const after = await withSemaphore(opts, (sem) => sem.update((s) => {
    before = s.max;
    return setSemaphoreMax(s, n);
  }));
  const r = { before, after };
  if (r.after.refused !== undefined) throw new FastPatchError('USAGE', `set-max ${n}: ${r.after.refused}`);
  const v = r.after.value;
  if (opts.json) return printJson({ max: v.max, previousMax: r.before, available: v.semaphore, changed: r.after.changed, holders: v.holders });
  print(`Max: ${r.before} -> ${v.max}, Available: ${v.semaphore}`);
  if (v.semaphore < 0) print(`${v.holders.length} holders keep their slots; no machine takes one until ${-v.semaphore + 1} of them release`);
  if (v.max === 0) print('no machine may reboot through this group until the max is raised again');
}

function resultJson(id: string, r: SemaphoreResult): Record<string, unknown> {
  return { id, changed: r.changed, available: r.value.semaphore, max: r.value.max, holders: r.value.holders, record: r.value.records[id] ?? null };
}
