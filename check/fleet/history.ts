/**
 * Every value a semaphore key ever had, read from etcd's own history (a watch from revision 1:
 * etcd keeps all revisions until compacted, and the simulation never compacts), so a check of
 * "never more holders than slots" reads what etcd stored, not what the clients believe.
 */
import { Etcd3 } from 'etcd3';
import { decodeSemaphore, type Semaphore } from '../../src/fleet/semaphore.js';

export interface HistoricValue {
  revision: number;
  value: Semaphore;
}

/** The key's values in revision order, up to the current revision. */
export async function semaphoreHistory(endpoints: readonly string[], key: string): Promise<HistoricValue[]> {
  const client = new Etcd3({ hosts: [...endpoints] });
  try {
    const head = await client.get(key).exec();
    const last = Number(head.header.revision);
    const out: HistoricValue[] = [];
    const watcher = await client.watch().key(key).startRevision('1').create();
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`history of ${key}: not read to revision ${last} within 30 s`)), 30_000);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        watcher.on('put', (kv) => {
          const value = decodeSemaphore(kv.value.toString('utf8'));
          if ('invalid' in value) return reject(new Error(`revision ${kv.mod_revision} of ${key} is not a semaphore: ${value.invalid}`));
          out.push({ revision: Number(kv.mod_revision), value });
        });
        // Events come in revision order; once the watch has passed `last`, the history is whole.
        watcher.on('data', (res) => {
          if (Number(res.header.revision) >= last) done();
        });
        watcher.on('error', reject);
        if (last === 0) done();
      });
    } finally {
      await watcher.cancel();
    }
    return out.filter((h) => h.revision <= last);
  } finally {
    client.close();
  }
}

/** The problems of a history: a value with more holders than slots, or whose free count disagrees. */
export function historyProblems(history: readonly HistoricValue[], max?: number): string[] {
  const problems: string[] = [];
  for (const { revision, value } of history) {
    const limit = max ?? value.max;
    if (value.holders.length > limit) problems.push(`revision ${revision}: ${value.holders.length} holders (${value.holders.join(', ')}) for ${limit} slots`);
  }
  return problems;
}
