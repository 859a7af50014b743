/**
 * The reboot semaphore in etcd, through the v3 API (the `etcd3` package): one key per group
 * (semaphoreKey), changed only by compare-and-swap transactions on the key's mod revision (or, for
 * a new key, on its absence), as Airlock does. Nothing is held in memory between calls: every
 * change reads the value, applies a pure change (semaphore.ts) and writes it back only if nobody
 * wrote in between, else reads again (a few times, with a random pause), so any number of
 * machines, a FleetLock server and an operator's `etcdctl put` may change it at once.
 *
 * No lease: a slot must outlive its holder's reboot, and a holder that never comes back keeps its
 * slot until an operator frees it (docs/FLEET.md says why).
 */
import { Etcd3, type IOptions } from 'etcd3';
import { FastPatchError } from '../errors.js';
import { escapeText } from '../text.js';
import {
  decodeSemaphore, encodeSemaphore, freshSemaphore, lock, MAX_HOLDERS, semaphoreKey, setMax, unlock, type HolderRecord, type LockChange, type Semaphore,
} from './semaphore.js';

export interface EtcdOptions {
  /** Client URLs, e.g. http://10.0.0.1:2379. */
  endpoints: readonly string[];
  /** Deadline of each etcd call, its client's retries on other members included (ms, default 5000): a cluster without quorum answers no write. */
  callTimeoutMs?: number;
  /**
   * A client to share (from etcdClient) instead of one of its own: a server that serves many
   * groups keeps one connection, not one per group. close() leaves a shared client open.
   */
  client?: Etcd3;
  /** Slots of the value written when the key does not exist yet (default 1, as locksmith creates it); never applied to an existing key. */
  freshSlots?: number;
}

/** A v3 client with FastPatch's deadlines: `callTimeoutMs` per call and to dial. Its owner closes it. */
export function etcdClient(options: Pick<EtcdOptions, 'endpoints' | 'callTimeoutMs'>): Etcd3 {
  const deadline = options.callTimeoutMs ?? 5000;
  const o: IOptions = {
    hosts: [...options.endpoints],
    dialTimeout: deadline,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + deadline }),
  };
  return new Etcd3(o);
}

/** The result of a change: the value after it, whether it wrote, or why it was refused. */
export type SemaphoreResult = { value: Semaphore; changed: boolean; refused?: undefined } | { value: Semaphore; changed: false; refused: string };

/** Compare-and-swap attempts before a change gives up (each loses only to another writer's success). */
const CAS_ATTEMPTS = 8;

/** The endpoint parser lives in endpoints.ts (no etcd client loaded); re-exported for callers of this module. */
export { parseEndpoints } from './endpoints.js';

export class EtcdSemaphore {
  readonly key: string;
  private readonly client: Etcd3;
  private readonly ownsClient: boolean;
  private readonly freshSlots: number;
  private readonly deadlineMs: number;

  /** A client for `group`'s semaphore (locksmith's default group when none). */
  constructor(options: EtcdOptions, readonly group?: string) {
    this.key = semaphoreKey(group);
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? etcdClient(options);
    this.freshSlots = options.freshSlots ?? 1;
    if (!Number.isSafeInteger(this.freshSlots) || this.freshSlots < 0 || this.freshSlots > MAX_HOLDERS) throw new RangeError(`freshSlots must be a whole number 0-${MAX_HOLDERS}`);
    this.deadlineMs = options.callTimeoutMs ?? 5000;
  }

  /** The value and its mod revision ('0' when the key does not exist yet: a fresh semaphore of `freshSlots`). */
  async read(): Promise<{ value: Semaphore; modRevision: string }> {
    const res = await this.call('read', () => this.client.get(this.key).options(this.callOptions()).exec());
    const kv = res.kvs[0];
    if (!kv) return { value: freshSemaphore(this.freshSlots), modRevision: '0' };
    const value = decodeSemaphore(kv.value.toString('utf8'));
    if ('invalid' in value) {
      throw new FastPatchError('IO', `the reboot semaphore at ${this.key} is not valid (${value.invalid}); fix it with etcdctl put ${this.key} '{"semaphore":1,"max":1,"holders":[]}'`);
    }
    return { value, modRevision: kv.mod_revision };
  }

  /** Applies `change` by compare-and-swap, reading again when another writer came first. */
  async update(change: (s: Semaphore) => LockChange): Promise<SemaphoreResult> {
    for (let attempt = 1; ; attempt++) {
      const { value, modRevision } = await this.read();
      const next = change(value);
      if ('refused' in next) return { value, changed: false, refused: next.refused };
      if (!next.changed) return { value, changed: false };
      const put = this.client.put(this.key).value(encodeSemaphore(next.value));
      const txn = modRevision === '0' ? this.client.if(this.key, 'Create', '==', 0) : this.client.if(this.key, 'Mod', '==', modRevision);
      const { succeeded } = await this.call('write', () => txn.then(put).options(this.callOptions()).commit());
      if (succeeded) return { value: next.value, changed: true };
      if (attempt >= CAS_ATTEMPTS) {
        throw new FastPatchError('IO', `the reboot semaphore at ${this.key} changed under ${CAS_ATTEMPTS} attempts in a row; try again`);
      }
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80 * attempt));
    }
  }

  /** Takes (or keeps) a slot for `id`, with FastPatch's record of why. */
  acquire(id: string, record?: HolderRecord): Promise<SemaphoreResult> {
    return this.update((s) => lock(s, id, record));
  }

  /**
   * Frees `id`'s slot. With `since`, only if its record still says it took the slot then: an
   * operator freeing a stuck holder cannot free the slot that machine took again meanwhile.
   */
  release(id: string, since?: string): Promise<SemaphoreResult> {
    return this.update((s) => {
      if (since !== undefined && s.holders.includes(id) && s.records[id]?.since !== since) {
        return { refused: `${id} took its slot again at ${s.records[id]?.since ?? '(no record)'}, not ${since}; nothing freed` };
      }
      return unlock(s, id);
    });
  }

  setMax(max: number): Promise<SemaphoreResult> {
    return this.update((s) => setMax(s, max));
  }

  /** Whether a quorum answers a linearizable read now (best-effort's question). */
  async reachable(): Promise<boolean> {
    try {
      await this.client.get(this.key).options(this.callOptions()).exec();
      return true;
    } catch {
      return false;
    }
  }

  /** Closes its own client; a shared one (options.client) stays open for its owner. */
  close(): void {
    if (this.ownsClient) this.client.close();
  }

  /**
   * One absolute deadline for a call and all of etcd3's retries of it on other members: a retry
   * after a dead member's quick refusal still fits, but a member without quorum cannot make each
   * retry wait a whole deadline again (measured: 2 s became 4 s and more).
   */
  private callOptions(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.deadlineMs) };
  }

  private async call<T>(what: string, work: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      return await work();
    } catch (err) {
      if (err instanceof FastPatchError) throw err;
      const detail = escapeText((err as Error).message.split('\n')[0] ?? String(err));
      // The last retry's message ("waiting for name resolution") hides the cause: say what a spent deadline means.
      const spent = Date.now() - started >= this.deadlineMs - 50 ? `no answer within ${this.deadlineMs / 1000} s (a cluster without quorum answers nothing; check etcdctl endpoint health): ` : '';
      throw new FastPatchError('IO', `etcd ${what} of ${this.key}: ${spent}${detail}`, { cause: err });
    }
  }
}
