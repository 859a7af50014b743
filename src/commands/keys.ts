import { loadPrivateKeyFile, loadPublicKeyFile } from '../sign/files.js';
import type { PrivateKey, PublicKey } from '../sign/keys.js';

/**
 * Loads every --pubkey file. Each must hold a public key: a private key file is refused
 * (BAD_KEY_FILE), so signing keys are never copied onto devices.
 */
export function loadTrustedKeys(paths: readonly string[]): Promise<PublicKey[]> {
  return Promise.all(paths.map((p) => loadPublicKeyFile(p)));
}

/** Loads every --key file, each of which must be a protected private key (mode 0600, owned by you or root). */
export function loadSigningKeys(paths: readonly string[]): Promise<PrivateKey[]> {
  return Promise.all(paths.map((p) => loadPrivateKeyFile(p)));
}
