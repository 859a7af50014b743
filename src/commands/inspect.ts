import { inspectPayload, readPayloadChunks } from '../index.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, print, printJson, printOperationStats } from './output.js';

export async function run(payload: string, opts: { pubkey?: string[]; json?: boolean }): Promise<void> {
  const keys = await loadTrustedKeys(opts.pubkey ?? []);
  const info = await inspectPayload(readPayloadChunks(payload), keys);
  if (opts.json) return printJson(info);
  print(`payload format v${info.formatVersion}, release ${info.version}, ${info.source ? 'delta' : 'full'}`);
  print(`target: ${formatBytes(info.targetSize)} (${info.targetSize} bytes), ${info.blockSize}-byte blocks, hash ${info.targetHash}`);
  if (info.source) print(`source: ${info.source.version ? `release ${info.source.version}, ` : ''}${info.source.size} bytes, hash ${info.source.hash}`);
  print(`signed by: ${info.signatures.map((s) => s.keyId).join(', ')}${info.verifiedBy ? ` (verified: ${info.verifiedBy})` : ''}`);
  const z = info.sizes;
  print(`size: ${formatBytes(z.total)} = header ${z.header} + manifest ${z.manifest} + signatures ${z.signatures} + data ${z.data}`);
  print(`operations: ${info.operations.total}`);
  printOperationStats(info.operations.byType);
}
