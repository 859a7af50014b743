/**
 * A bound on the machines the service records: every new machine id is a row (and up to 32
 * events, EVENTS_KEPT_PER_MACHINE: a few KB at most) on disk, and ids are whatever a peer sends, so without a bound one hostile client
 * could fill the disk. Known machines are always answered; a new one past the limit is refused
 * with an error status until the operator raises it (`serve --max-machines`).
 */
import type { RolloutStore } from './rollout-store.js';

/** Default limit: a few GB of state at most, and more machines than most fleets have. */
export const DEFAULT_MAX_MACHINES = 1_000_000;
/** How long a count is trusted (ms): counting is a full scan, done at most this often. */
const RECOUNT_MS = 5000;

export class MachineLimit {
  private count = 0;
  private countedAt = -Infinity;

  constructor(private readonly store: RolloutStore, readonly max: number = DEFAULT_MAX_MACHINES, private readonly now: () => number = () => performance.now()) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxMachines must be a whole number >= 1, got ${max}`);
  }

  /** Whether `machineId` may be recorded: a known machine always, a new one while under the limit. */
  admits(machineId: string): boolean {
    if (this.now() - this.countedAt >= RECOUNT_MS) {
      this.count = this.store.machineCount();
      this.countedAt = this.now();
    }
    if (this.count < this.max) {
      if (!this.store.machine(machineId)) this.count++; // counted until the next recount
      return true;
    }
    return this.store.machine(machineId) !== undefined;
  }
}
