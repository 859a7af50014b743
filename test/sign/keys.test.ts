import { describe, expect, it } from 'vitest';
import * as ed from '@noble/ed25519';
import { format, formatPrivateKey, formatPublicKey, generateKey, parseKey, publicKeyOf } from '../../dist/src/index.js';
import { privateKeyFromSeed } from '../../dist/src/sign/keys.js';
import { signPayload, verifyPayload } from '../../dist/src/sign/signer.js';
import { codeOf } from '../helpers/errors.js';

const fromHex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

// RFC 8032, section 7.1, TEST 1 and TEST 2.
const rfc = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pub: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    msg: '',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pub: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    msg: '72',
    sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
];

describe('keys', () => {
  it.each(rfc)('derives the RFC 8032 public key and signature for seed $seed', ({ seed, pub, msg, sig }) => {
    const key = privateKeyFromSeed(fromHex(seed));
    expect(Buffer.from(key.publicKey).toString('hex')).toBe(pub);
    // The library wires noble's SHA-512 for the sync API; the same key signs as RFC 8032 says.
    expect(Buffer.from(ed.sign(fromHex(msg), key.seed)).toString('hex')).toBe(sig);
  });

  it('round-trips private and public key files', () => {
    const key = generateKey();
    const priv = parseKey(formatPrivateKey(key));
    expect(priv.kind).toBe('private');
    expect([...priv.publicKey]).toEqual([...key.publicKey]);
    const pub = parseKey(formatPublicKey(key));
    expect(pub.kind).toBe('public');
    expect([...pub.keyId]).toEqual([...key.keyId]);
  });

  const mutations: Array<[string, (text: string) => string]> = [
    ['empty file', () => ''],
    ['a bare blob', (t) => t.split('\n').find((l) => l.startsWith('Key:'))!.slice(5)],
    ['wrong tag', (t) => t.replace('ed25519-private v1', 'ed25519-private v2')],
    ['key id of another key', (t) => t.replace(/Key-Id: \w+/, 'Key-Id: 0000000000000000')],
    ['truncated key', (t) => t.replace(/^Key: (\S+)/m, (_m, k: string) => `Key: ${k.slice(0, 20)}`)],
    ['not base64', (t) => t.replace(/^Key: (\S)/m, 'Key: !')],
    ['field twice', (t) => `${t}Key-Id: 00\n`],
    ['stray line', (t) => `${t}hello\n`],
  ];
  it.each(mutations)('refuses a key file with %s', (_name, mutate) => {
    expect(codeOf(() => parseKey(mutate(formatPrivateKey(generateKey())), 'k'))).toBe('BAD_KEY_FILE');
  });
});

describe('payload signatures', () => {
  const header = new Uint8Array(32).fill(7);
  const manifest = new Uint8Array(100).fill(9);
  const a = generateKey();
  const b = generateKey();

  it('accepts any one trusted key among several signatures (key rotation)', () => {
    const entries = signPayload(header, manifest, [a, b]);
    expect(verifyPayload(header, manifest, entries, [publicKeyOf(b)]).index).toBe(1);
    expect(verifyPayload(header, manifest, entries, [publicKeyOf(a)]).index).toBe(0);
  });

  it('UNTRUSTED_KEY names the keys the payload is signed by and the keys that were trusted', () => {
    const c = generateKey();
    const entries = signPayload(header, manifest, [a, b]);
    let message = '';
    try {
      verifyPayload(header, manifest, entries, [publicKeyOf(c), c]);
    } catch (err) {
      message = (err as Error).message;
    }
    const id = (k: { keyId: Uint8Array }) => Buffer.from(k.keyId).toString('hex');
    expect(message).toMatch(new RegExp(`signed by keys ${id(a)}, ${id(b)}; the trusted key is ${id(c)}:`));
    expect(message).not.toContain('\n');
  });

  it('refuses an untrusted key, and a modified message', () => {
    const entries = signPayload(header, manifest, [a]);
    expect(codeOf(() => verifyPayload(header, manifest, entries, [publicKeyOf(b)]))).toBe('UNTRUSTED_KEY');
    const changed = Uint8Array.from(manifest);
    changed[50]! ^= 1;
    expect(codeOf(() => verifyPayload(header, changed, entries, [publicKeyOf(a)]))).toBe('BAD_SIGNATURE');
  });

  it('refuses a malleated signature: S + L verifies the same equation, but is not canonical (RFC 8032)', () => {
    const entries = signPayload(header, manifest, [a]);
    expect(verifyPayload(header, manifest, entries, [publicKeyOf(a)]).index).toBe(0);
    // S is the little-endian scalar in bytes 32..63; adding the group order L gives the same point.
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(entries[0]!.signature[i]!);
    const malleated = Uint8Array.from(entries[0]!.signature);
    let t = s + L;
    for (let i = 32; i < 64; i++, t >>= 8n) malleated[i] = Number(t & 0xffn);
    expect(t).toBe(0n); // S + L still fits in 32 bytes (S < L < 2^253)
    expect(codeOf(() => verifyPayload(header, manifest, [{ keyId: a.keyId, signature: malleated }], [publicKeyOf(a)]))).toBe('BAD_SIGNATURE');
    // A signature of the wrong length is refused the same way, not thrown as something else.
    expect(codeOf(() => verifyPayload(header, manifest, [{ keyId: a.keyId, signature: entries[0]!.signature.subarray(0, 63) }], [publicKeyOf(a)]))).toBe('BAD_SIGNATURE');
  });

  it('signs with domain separation: a raw ed25519 signature over the same bytes does not verify', () => {
    const raw = ed.sign(new Uint8Array([...header, ...manifest]), a.seed);
    const entries = [{ keyId: a.keyId, signature: raw }];
    expect(codeOf(() => verifyPayload(header, manifest, entries, [publicKeyOf(a)]))).toBe('BAD_SIGNATURE');
  });

  it('round-trips the signature block', () => {
    const entries = signPayload(header, manifest, [a, b]);
    const bytes = format.encodeSignatures(entries);
    expect(bytes.length).toBe(format.signaturesSize(2));
    const back = format.decodeSignatures(bytes);
    expect(back.map((e) => Buffer.from(e.signature).toString('hex'))).toEqual(entries.map((e) => Buffer.from(e.signature).toString('hex')));
  });
});
