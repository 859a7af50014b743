/**
 * The reboot semaphore's value, as locksmith keeps it in etcd (docs/FLEET.md): one JSON object per
 * group with `semaphore` (free slots), `max` (slots) and `holders` (sorted ids), so `etcdctl get`
 * reads it and locksmithctl's habits carry over. FastPatch adds `records`: per holder, which
 * release it took the slot for, since when, and what it is doing; locksmith ignores the field.
 * Pure: text in, data out; every change returns a new value or a refusal, never throws on data.
 */

/** The key of a group's semaphore: locksmith's, with the group escaped as Go's url.QueryEscape does. */
export function semaphoreKey(group?: string): string {
  if (group === undefined || group === '' || group === 'default') return 'coreos.com/updateengine/rebootlock/semaphore';
  return `coreos.com/updateengine/rebootlock/groups/${queryEscape(group)}/semaphore`;
}

/** Go's url.QueryEscape: unreserved bytes as they are, space as '+', the rest %XX (upper-case). */
function queryEscape(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) return c;
    return c === ' ' ? '+' : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

/** What a holder is doing with its slot. */
export type HolderState = 'rebooting' | 'confirming' | 'held';

/** FastPatch's record of one holder (absent for holders written by other tools). */
export interface HolderRecord {
  /** The release it took the slot to boot into. */
  release: string;
  /** The release it ran when it took the slot. */
  from: string;
  /** ISO 8601 time it took the slot. */
  since: string;
  state: HolderState;
}

export interface Semaphore {
  /** Free slots: max - holders (negative after set-max below the holders, as locksmith allows). */
  semaphore: number;
  max: number;
  /** Sorted. */
  holders: string[];
  records: Record<string, HolderRecord>;
}

/** Most holders a value may list, and the longest id: far past any fleet, bounded against a hostile value. */
export const MAX_HOLDERS = 10_000;
export const MAX_ID_CHARS = 256;
const MAX_VALUE_BYTES = 4 * 1024 * 1024;

/** A fresh group: one slot, as locksmith creates it. */
export function freshSemaphore(max = 1): Semaphore {
  return { semaphore: max, max, holders: [], records: {} };
}

/** The value's text: locksmith's three fields first, then the records. */
export function encodeSemaphore(s: Semaphore): string {
  return JSON.stringify({ semaphore: s.max - s.holders.length, max: s.max, holders: [...s.holders].sort(), records: s.records });
}

/**
 * Reads a value (from etcd: any bytes an operator or another tool wrote). Returns the semaphore or
 * why it is not one. `holders: null` (what locksmith writes for none) is an empty list; a missing
 * `records` is none; `semaphore` is recomputed from `max` and the holders.
 */
export function decodeSemaphore(text: string): Semaphore | { invalid: string } {
  if (text.length > MAX_VALUE_BYTES) return { invalid: `value larger than ${MAX_VALUE_BYTES} bytes` };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { invalid: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { invalid: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  const max = o['max'];
  if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 0 || max > MAX_HOLDERS) return { invalid: `max must be a whole number 0-${MAX_HOLDERS}` };
  const holders = o['holders'] ?? [];
  if (!Array.isArray(holders) || holders.length > MAX_HOLDERS || holders.some((h) => typeof h !== 'string' || h === '' || h.length > MAX_ID_CHARS)) {
    return { invalid: `holders must be a list of at most ${MAX_HOLDERS} ids of 1-${MAX_ID_CHARS} characters` };
  }
  const records: Record<string, HolderRecord> = {};
  const raw = o['records'];
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) return { invalid: 'records must be an object' };
  for (const id of holders as string[]) {
    // Ids are data: only own properties are read ("toString" is no record), and a holder named
    // "__proto__" gets a property of that name, not a new prototype for `records`.
    const r = raw !== undefined && Object.hasOwn(raw, id) ? (raw as Record<string, unknown>)[id] : undefined;
    const rec = recordOf(r);
    if (rec) Object.defineProperty(records, id, { value: rec, enumerable: true, writable: true, configurable: true });
  }
  const unique = [...new Set(holders as string[])].sort();
  return { semaphore: max - unique.length, max, holders: unique, records };
}

function recordOf(r: unknown): HolderRecord | undefined {
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as Record<string, unknown>;
  const text = (k: string) => (typeof o[k] === 'string' && (o[k] as string).length <= 256 ? (o[k] as string) : undefined);
  const state = o['state'];
  const release = text('release');
  const from = text('from');
  const since = text('since');
  if (release === undefined || from === undefined || since === undefined || (state !== 'rebooting' && state !== 'confirming' && state !== 'held')) return undefined;
  return { release, from, since, state };
}

export type LockChange = { value: Semaphore; changed: boolean } | { refused: string };

/**
 * Takes a slot for `id` (recursive, as FleetLock's pre-reboot and locksmith's daemon treat a
 * holder: a holder asking again holds it, its record updated). Refused when no slot is free.
 */
export function lock(s: Semaphore, id: string, record?: HolderRecord): LockChange {
  if (id === '' || id.length > MAX_ID_CHARS) return { refused: `an id must be 1-${MAX_ID_CHARS} characters` };
  if (s.holders.includes(id)) {
    if (!record) return { value: s, changed: false };
    return { value: { ...s, records: { ...s.records, [id]: record } }, changed: true };
  }
  if (s.holders.length >= s.max) return { refused: `all ${s.max} slot${s.max === 1 ? ' is' : 's are'} held (${s.holders.join(', ') || 'none'})` };
  const holders = [...s.holders, id].sort();
  return { value: { semaphore: s.max - holders.length, max: s.max, holders, records: record ? { ...s.records, [id]: record } : s.records }, changed: true };
}

/** Frees `id`'s slot; `changed` false when it held none (not an error: steady-state after any boot). */
export function unlock(s: Semaphore, id: string): LockChange {
  if (!s.holders.includes(id)) return { value: s, changed: false };
  const holders = s.holders.filter((h) => h !== id);
  const records = { ...s.records };
  delete records[id];
  return { value: { semaphore: s.max - holders.length, max: s.max, holders, records }, changed: true };
}

/** Sets the slot count; holders keep their slots (locksmith's set-max: free may go negative). */
export function setMax(s: Semaphore, max: number): LockChange {
  if (!Number.isSafeInteger(max) || max < 0 || max > MAX_HOLDERS) return { refused: `max must be a whole number 0-${MAX_HOLDERS}` };
  return { value: { ...s, max, semaphore: max - s.holders.length }, changed: max !== s.max };
}
