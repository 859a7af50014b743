import * as ed from '@noble/ed25519';
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import { FastPatchError } from '../errors.js';
import { SIGNING_CONTEXT } from '../format/constants.js';
import type { SignatureEntry } from '../format/signatures.js';
import { hex, type PrivateKey, type PublicKey } from './keys.js';

const context = new TextEncoder().encode(SIGNING_CONTEXT);

/**
 * The message every signature covers: the signing context, then SHA-256 of the header and the
 * manifest. The manifest holds the hash of every data blob and of every byte written, so this
 * one signature covers everything a device acts on.
 */
export function signedMessage(header: Uint8Array, manifest: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(header).update(manifest).digest();
  const msg = new Uint8Array(context.length + digest.length);
  msg.set(context, 0);
  msg.set(digest, context.length);
  return msg;
}

/** One signature entry per key, in the order given (RFC 8032 ed25519, deterministic). */
export function signPayload(header: Uint8Array, manifest: Uint8Array, keys: readonly PrivateKey[]): SignatureEntry[] {
  const msg = signedMessage(header, manifest);
  return keys.map((k) => ({ keyId: k.keyId, signature: ed.sign(msg, k.seed) }));
}

/** Which trusted key vouched for a payload. */
export interface VerifiedSignature {
  keyId: string;
  /** Index of the entry in the payload's signature block. */
  index: number;
}

/**
 * Accepts the payload if at least one entry was made by a trusted key and verifies; an entry by a
 * trusted key that does not verify is refused outright (the signed bytes were changed).
 * Throws FastPatchError('UNTRUSTED_KEY' | 'BAD_SIGNATURE').
 */
export function verifyPayload(
  header: Uint8Array,
  manifest: Uint8Array,
  entries: readonly SignatureEntry[],
  trusted: readonly (PublicKey | PrivateKey)[],
): VerifiedSignature {
  return verifyMessage(signedMessage(header, manifest), entries, trusted, { what: 'payload', changed: 'the payload header or manifest was modified' });
}

/**
 * The rule of verifyPayload for any signed message (a payload's, a release repository's document):
 * at least one entry by a trusted key that verifies, and no entry by a trusted key that does not.
 * `what` names the thing in messages, `changed` says what a bad signature means.
 * Throws FastPatchError('UNTRUSTED_KEY' | 'BAD_SIGNATURE').
 */
export function verifyMessage(
  msg: Uint8Array,
  entries: readonly SignatureEntry[],
  trusted: readonly (PublicKey | PrivateKey)[],
  say: { what: string; changed: string },
): VerifiedSignature {
  if (trusted.length === 0) throw new TypeError('trusted: at least one public key is needed');
  let verified: VerifiedSignature | undefined;
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index]!;
    const id = hex(entry.keyId);
    const key = trusted.find((k) => hex(k.keyId) === id);
    if (!key) continue;
    let ok = false;
    try {
      ok = verifyEd25519(entry.signature, msg, key.publicKey);
    } catch {
      ok = false; // malformed signature bytes (e.g. a non-canonical point)
    }
    if (!ok) throw new FastPatchError('BAD_SIGNATURE', `signature ${index} by key ${id} does not verify: ${say.changed}`);
    verified ??= { keyId: id, index };
  }
  if (!verified) {
    const signers = [...new Set(entries.map((e) => hex(e.keyId)))];
    const trustedIds = [...new Set(trusted.map((k) => hex(k.keyId)))];
    const signedBy = signers.length === 0 ? `${say.what} carries no signature` : `${say.what} is signed by key${signers.length > 1 ? 's' : ''} ${listIds(signers)}`;
    throw new FastPatchError('UNTRUSTED_KEY', `${signedBy}; the trusted key${trustedIds.length > 1 ? 's are' : ' is'} ${listIds(trustedIds)}: trust the public key of the signer (--pubkey KEY.pub) or check where the ${say.what} came from`);
  }
  return verified;
}

/** One signature entry per key over `msg`, in the order given (RFC 8032 ed25519, deterministic). */
export function signMessage(msg: Uint8Array, keys: readonly PrivateKey[]): SignatureEntry[] {
  return keys.map((k) => ({ keyId: k.keyId, signature: ed.sign(msg, k.seed) }));
}

/**
 * RFC 8032 ed25519 verification through node:crypto (OpenSSL): a device verifies once per apply,
 * and noble's first verification builds its tables for ~45 ms of a delta apply's 1.5 s (a
 * --cpu-prof of `fastpatch apply`); OpenSSL's takes 0.4 ms. Signing stays with noble. OpenSSL
 * refuses non-canonical encodings (RFC 8032's strict rules), which fastpatch never writes.
 */
function verifyEd25519(signature: Uint8Array, msg: Uint8Array, publicKey: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  return verifySignature(null, msg, key, signature);
}

/** Key ids for one line of an error: the first few, then how many more (a payload may carry many entries). */
function listIds(ids: readonly string[], shown = 8): string {
  return ids.length <= shown ? ids.join(', ') : `${ids.slice(0, shown).join(', ')} and ${ids.length - shown} more`;
}
