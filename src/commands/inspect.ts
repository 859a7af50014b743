import { inspectPayload } from '../apply/inspect.js';
import { readPayloadChunks } from '../io/input.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, print, printJson, printOperationStats } from './output.js';

export async function run(payload: string, opts: { pubkey?: string[]; json?: boolean }): Promise<void> {
  const keys = await loadTrustedKeys(opts.pubkey ?? []);
  const info = await inspectPayload(readPayloadChunks(payload), keys);
  if (opts.json) return printJson(info);
  print(`payload format v${info.formatVersion}, release ${info.version}, ${info.source ? 'delta' : 'full'}`);
  print(`target: ${formatBytes(info.targetSize)} (${info.targetSize} bytes), ${info.blockSize}-byte blocks, hash ${info.targetHash}`);
  if (info.source) print(`source: ${info.source.version ? `release ${info.source.version}, ` : ''}${info.source.size} bytes, hash ${info.source.hash}`);
  print(signedBy(info.signatures.map((s) => s.keyId), info.verifiedBy));
  const z = info.sizes;
  print(`size: ${formatBytes(z.total)} = header ${z.header} + manifest ${z.manifest} + signatures ${z.signatures} + data ${z.data}`);
  print(`operations: ${info.operations.total}`);
  printOperationStats(info.operations.byType);
}

/**
 * Without --pubkey, a key id in the payload is only a claim: anyone can write any key id next to
 * any bytes. Say so, and how to check it.
 */
function signedBy(keyIds: string[], verifiedBy: string | null): string {
  const keys = `${keyIds.length === 1 ? 'key' : 'keys'} ${keyIds.join(', ')}`;
  return verifiedBy
    ? `signed by: ${keys} (verified: the signature by ${verifiedBy} matches a --pubkey given)`
    : `signed by: ${keys} (NOT verified: give --pubkey KEY.pub to check the signature)`;
}
