import { writeKeyPair } from '../sign/files.js';
import { generateKey, hex } from '../sign/keys.js';
import { print, printJson } from './output.js';

export async function run(opts: { out: string; force?: boolean; json?: boolean }): Promise<void> {
  const key = generateKey();
  const files = await writeKeyPair(opts.out, key, opts.force === true);
  const keyId = hex(key.keyId);
  if (opts.json) printJson({ keyId, ...files });
  else print(`wrote ${files.privatePath} (private, keep secret) and ${files.publicPath} (public), key id ${keyId}`);
}
