/**
 * The signed documents of a release repository (docs/RELEASES.md): a release's record and a
 * channel's pointer, each `{"signed": {...}, "signatures": [...]}` as TUF writes its metadata.
 * The signatures cover the domain string DOCUMENT_CONTEXT followed by the canonical JSON of
 * `signed` (object keys sorted by code unit, no white space, integers only), so any reader can
 * check a document however it was pretty-printed. Pure: text in, data out.
 *
 * Documents are read from a folder that a web server publishes, and by the server that answers
 * devices from them: every field is checked for type and bounds before use.
 */
import { FastPatchError } from '../errors.js';
import { hex } from '../hex.js';
import { checkReleaseVersion } from '../format/manifest.js';
import type { PrivateKey, PublicKey } from '../sign/keys.js';
import { signMessage, verifyMessage, type VerifiedSignature } from '../sign/signer.js';

export const DOCUMENT_CONTEXT = 'FastPatch signed document v1\n';
/** Largest document read: a channel with its history stays far below. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;
export const MAX_PAYLOADS_PER_RELEASE = 64;
export const MAX_HISTORY = 1000;
export const MAX_SIGNATURES = 16;

/** One payload file of a release: stored as payloads/<sha256>.fpay. */
export interface PayloadEntry {
  /** Hex SHA-256 of the file: its name and its integrity. */
  sha256: string;
  /** Hex SHA-1 of the file, for Omaha's `package@hash` (clients that still read it). */
  sha1: string;
  size: number;
  kind: 'full' | 'delta';
  /** The release a delta applies to; absent for a full payload. */
  from?: string;
}

export interface ReleaseRecord {
  type: 'release';
  version: string;
  /** The image the payloads produce: its size and hex block-list hash (what the payload signs). */
  image: { size: number; hash: string };
  payloads: PayloadEntry[];
  /** ISO 8601 time it was added. */
  added: string;
}

/** One move of a channel: an add, a promotion, or a forced move (backwards, or skipping a channel). */
export interface ChannelMove {
  version: string;
  at: string;
  how: 'add' | 'promote' | 'force';
  /** The channel it was promoted from. */
  from?: string;
  reason?: string;
}

export interface ChannelRecord {
  type: 'channel';
  channel: string;
  /** Grows by one with every write: a reader never takes an older document for a newer one. */
  serial: number;
  /** The release devices on this channel should run, and its payloads (copied from its record). */
  release: ReleaseRecord;
  /** Every move, oldest first (bounded: the oldest are dropped past MAX_HISTORY). */
  history: ChannelMove[];
}

export interface SignedDocument<T> {
  signed: T;
  signatures: { keyid: string; sig: string }[];
}

/** The canonical JSON of a value: sorted keys, no white space; refuses what it cannot write exactly. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`canonical JSON holds integers only, got ${value}`);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  throw new RangeError(`canonical JSON cannot hold a ${typeof value}`);
}

const signedBytes = (signed: unknown) => new TextEncoder().encode(DOCUMENT_CONTEXT + canonicalJson(signed));

/** Signs `signed` with every key: the document's text (pretty-printed, ending in a newline). */
export function signDocument<T>(signed: T, keys: readonly PrivateKey[]): string {
  if (keys.length === 0) throw new TypeError('keys: at least one signing key is needed');
  const signatures = signMessage(signedBytes(signed), keys).map((e) => ({ keyid: hex(e.keyId), sig: hex(e.signature) }));
  return `${JSON.stringify({ signed, signatures }, null, 2)}\n`;
}

function bad(what: string, why: string): never {
  throw new FastPatchError('CORRUPT_DOCUMENT', `${what}: ${why}`);
}

const HEX_RE = /^[0-9a-f]+$/;
const hexBytes = (s: string, what: string, len: number): Uint8Array => {
  if (s.length !== len * 2 || !HEX_RE.test(s)) bad(what, `expected ${len * 2} lower-case hex digits`);
  return Uint8Array.from(Buffer.from(s, 'hex'));
};

/**
 * Parses a document's text and checks its signatures against `trusted` (verifyMessage's rule).
 * Returns the still unchecked `signed` part for a reader of its kind. Throws
 * FastPatchError('CORRUPT_DOCUMENT' | 'UNTRUSTED_KEY' | 'BAD_SIGNATURE').
 */
export function openDocument(text: string, trusted: readonly (PublicKey | PrivateKey)[], what: string): { signed: unknown; by: VerifiedSignature } {
  if (text.length > MAX_DOCUMENT_BYTES) bad(what, `larger than ${MAX_DOCUMENT_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    bad(what, 'not JSON');
  }
  const d = obj(doc, what);
  const sigs = d['signatures'];
  if (!Array.isArray(sigs) || sigs.length > MAX_SIGNATURES) bad(what, `signatures must be a list of at most ${MAX_SIGNATURES}`);
  const entries = sigs.map((s, i) => {
    const e = obj(s, `${what} signature ${i}`);
    return { keyId: hexBytes(str(e['keyid'], `${what} signature ${i} keyid`), `${what} signature ${i} keyid`, 8), signature: hexBytes(str(e['sig'], `${what} signature ${i}`), `${what} signature ${i}`, 64) };
  });
  if (!('signed' in d)) bad(what, 'no "signed" part');
  let bytes: Uint8Array;
  try {
    bytes = signedBytes(d['signed']);
  } catch (err) {
    bad(what, (err as Error).message);
  }
  const by = verifyMessage(bytes, entries, trusted, { what, changed: `${what} was modified after it was signed` });
  return { signed: d['signed'], by };
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(what, 'expected an object');
  return v as Record<string, unknown>;
}

function str(v: unknown, what: string, max = 256): string {
  if (typeof v !== 'string' || v.length > max) bad(what, `expected text of at most ${max} characters`);
  return v;
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(what, 'expected a whole number >= 0');
  return v;
}

function version(v: unknown, what: string): string {
  const s = str(v, what);
  try {
    checkReleaseVersion(s);
  } catch (err) {
    bad(what, (err as Error).message);
  }
  return s;
}

/** The payload entry `v`, checked. */
function payloadEntry(v: unknown, what: string): PayloadEntry {
  const e = obj(v, what);
  const sha256 = str(e['sha256'], `${what} sha256`);
  hexBytes(sha256, `${what} sha256`, 32);
  const sha1 = str(e['sha1'], `${what} sha1`);
  hexBytes(sha1, `${what} sha1`, 20);
  const size = count(e['size'], `${what} size`);
  if (size === 0) bad(what, 'size 0');
  const kind = e['kind'];
  if (kind !== 'full' && kind !== 'delta') bad(what, 'kind must be "full" or "delta"');
  if (kind === 'delta') return { sha256, sha1, size, kind, from: version(e['from'], `${what} from`) };
  return { sha256, sha1, size, kind };
}

/** A release record from an opened document's `signed` part. Throws FastPatchError('CORRUPT_DOCUMENT'). */
export function readReleaseRecord(v: unknown, what = 'release record'): ReleaseRecord {
  const r = obj(v, what);
  if (r['type'] !== 'release') bad(what, 'not a release record');
  const image = obj(r['image'], `${what} image`);
  const hash = str(image['hash'], `${what} image hash`);
  hexBytes(hash, `${what} image hash`, 32);
  const payloads = r['payloads'];
  if (!Array.isArray(payloads) || payloads.length === 0 || payloads.length > MAX_PAYLOADS_PER_RELEASE) bad(what, `payloads must be a list of 1..${MAX_PAYLOADS_PER_RELEASE}`);
  const list = payloads.map((p, i) => payloadEntry(p, `${what} payload ${i}`));
  if (list.filter((p) => p.kind === 'full').length !== 1) bad(what, 'exactly one full payload is needed');
  return { type: 'release', version: version(r['version'], `${what} version`), image: { size: count(image['size'], `${what} image size`), hash }, payloads: list, added: str(r['added'], `${what} added`, 64) };
}

/** A channel record from an opened document's `signed` part. Throws FastPatchError('CORRUPT_DOCUMENT'). */
export function readChannelRecord(v: unknown, what = 'channel document'): ChannelRecord {
  const c = obj(v, what);
  if (c['type'] !== 'channel') bad(what, 'not a channel document');
  const history = c['history'];
  if (!Array.isArray(history) || history.length > MAX_HISTORY) bad(what, `history must be a list of at most ${MAX_HISTORY}`);
  return {
    type: 'channel',
    channel: str(c['channel'], `${what} channel`, 64),
    serial: count(c['serial'], `${what} serial`),
    release: readReleaseRecord(c['release'], `${what} release`),
    history: history.map((h, i) => {
      const m = obj(h, `${what} history ${i}`);
      const how = m['how'];
      if (how !== 'add' && how !== 'promote' && how !== 'force') bad(`${what} history ${i}`, 'how must be add, promote or force');
      const from = m['from'] === undefined ? undefined : str(m['from'], `${what} history ${i} from`, 64);
      const reason = m['reason'] === undefined ? undefined : str(m['reason'], `${what} history ${i} reason`, 1024);
      return { version: version(m['version'], `${what} history ${i} version`), at: str(m['at'], `${what} history ${i} at`, 64), how, ...(from !== undefined ? { from } : {}), ...(reason !== undefined ? { reason } : {}) };
    }),
  };
}
