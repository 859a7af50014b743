import * as ed from '@noble/ed25519';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { FastPatchError } from '../errors.js';
import { hex } from '../hex.js';
import { KEY_ID_SIZE } from '../format/constants.js';

// @noble/ed25519 v3 leaves SHA-512 to the caller for its synchronous API.
ed.hashes.sha512 = sha512;

/**
 * Key files are UTF-8 text (docs/FORMAT.md, "Key files"):
 *   # comment lines
 *   FastPatch-Key: ed25519-private v1      (or ed25519-public v1)
 *   Key-Id: 16 hex digits                   (first 8 bytes of SHA-256 of the public key)
 *   Key: base64 of the 32-byte seed (private) or public key
 * The Key-Id line is checked against the key, so a damaged file is refused rather than misused.
 */
export interface PublicKey {
  kind: 'public';
  publicKey: Uint8Array;
  keyId: Uint8Array;
}
export interface PrivateKey {
  kind: 'private';
  seed: Uint8Array;
  publicKey: Uint8Array;
  keyId: Uint8Array;
}

const PRIVATE_TAG = 'ed25519-private v1';
const PUBLIC_TAG = 'ed25519-public v1';

/** First 8 bytes of SHA-256(publicKey): the id a payload's signature entry names its key by. */
export function keyIdOf(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey).subarray(0, KEY_ID_SIZE);
}


/** A new random key pair (seed from the OS CSPRNG via WebCrypto). */
export function generateKey(): PrivateKey {
  return privateKeyFromSeed(ed.utils.randomSecretKey());
}

/** The key pair of a 32-byte RFC 8032 seed. */
export function privateKeyFromSeed(seed: Uint8Array): PrivateKey {
  if (seed.length !== 32) throw new RangeError(`seed: expected 32 bytes, got ${seed.length}`);
  const publicKey = ed.getPublicKey(seed);
  return { kind: 'private', seed: Uint8Array.from(seed), publicKey, keyId: keyIdOf(publicKey) };
}

/** The public half of a key. */
export function publicKeyOf(key: PrivateKey | PublicKey): PublicKey {
  return { kind: 'public', publicKey: key.publicKey, keyId: key.keyId };
}

function formatKey(tag: string, comment: string, keyId: Uint8Array, material: Uint8Array): string {
  return `# ${comment}\nFastPatch-Key: ${tag}\nKey-Id: ${hex(keyId)}\nKey: ${Buffer.from(material).toString('base64')}\n`;
}

/** The text of a private key file. */
export function formatPrivateKey(key: PrivateKey): string {
  return formatKey(PRIVATE_TAG, 'FastPatch signing key. Keep it secret: whoever holds it can sign updates.', key.keyId, key.seed);
}

/** The text of a public key file, for devices. */
export function formatPublicKey(key: PublicKey | PrivateKey): string {
  return formatKey(PUBLIC_TAG, 'FastPatch public key: devices trust payloads it signed.', key.keyId, key.publicKey);
}

/**
 * Parses a key file's text. `source` names the file in errors.
 * Throws FastPatchError('BAD_KEY_FILE') for anything but a well-formed, self-consistent key.
 */
export function parseKey(text: string, source = 'key file'): PrivateKey | PublicKey {
  const bad = (why: string) => new FastPatchError('BAD_KEY_FILE', `${source}: ${why}; a key file is what \`fastpatch keygen\` writes (KEY to sign with, KEY.pub for devices)`);
  const fields = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw bad(`unexpected line "${line.slice(0, 40)}"`);
    const name = line.slice(0, colon).trim();
    if (fields.has(name)) throw bad(`field ${name} appears twice`);
    fields.set(name, line.slice(colon + 1).trim());
  }
  const tag = fields.get('FastPatch-Key');
  if (tag !== PRIVATE_TAG && tag !== PUBLIC_TAG) throw bad('not a FastPatch key (no "FastPatch-Key: ed25519-private v1" or "ed25519-public v1" line)');
  const encoded = fields.get('Key') ?? '';
  const material = Buffer.from(encoded, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || material.length !== 32) throw bad('Key is not base64 of 32 bytes');
  const key = tag === PRIVATE_TAG ? privateKeyFromSeed(material) : { kind: 'public' as const, publicKey: new Uint8Array(material), keyId: keyIdOf(material) };
  if (fields.get('Key-Id')?.toLowerCase() !== hex(key.keyId)) throw bad(`Key-Id does not match the key (expected ${hex(key.keyId)})`);
  return key;
}

/** Re-exported for the public API (src/index.ts), which has always offered hex with the keys. */
export { hex };
