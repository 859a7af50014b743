import { loadKeyFile, loadPrivateKeyFile, type PrivateKey, type PublicKey } from '../index.js';

/** Loads every --pubkey file (a private key file is accepted too: its public half is used). */
export function loadTrustedKeys(paths: readonly string[]): Promise<(PublicKey | PrivateKey)[]> {
  return Promise.all(paths.map((p) => loadKeyFile(p)));
}

/** Loads every --key file, each of which must be a private key. */
export function loadSigningKeys(paths: readonly string[]): Promise<PrivateKey[]> {
  return Promise.all(paths.map((p) => loadPrivateKeyFile(p)));
}
