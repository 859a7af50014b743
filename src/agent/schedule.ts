/**
 * When the agent checks for updates, as update_engine schedules it
 * (../shared/reference/fleet-updates.md §1.5): the first check a few minutes after start, then
 * every 45 minutes, each spread by a random fuzz so a fleet that booted together does not ask the
 * server together; a failed check backs off exponentially up to 4 hours, so an unreachable
 * server is not hammered. Pure: the random number comes in.
 */

export interface CheckSchedule {
  /** Delay of the first check after start (ms), and the fuzz spread around it. */
  firstMs: number;
  firstFuzzMs: number;
  /** Interval between checks (ms), and its fuzz. */
  intervalMs: number;
  fuzzMs: number;
  /** Longest wait after failures (ms). */
  maxBackoffMs: number;
}

/** update_engine's: 7 min (fuzz 10 min), then 45 min (fuzz 10 min), failures up to 4 h. */
export const UPDATE_ENGINE_SCHEDULE: CheckSchedule = {
  firstMs: 7 * 60_000, firstFuzzMs: 10 * 60_000, intervalMs: 45 * 60_000, fuzzMs: 10 * 60_000, maxBackoffMs: 4 * 3600_000,
};

/** `base` spread evenly over ±fuzz/2 by `random` (0 <= random < 1), never below 0. */
function fuzzed(base: number, fuzz: number, random: number): number {
  return Math.max(0, Math.round(base + (random - 0.5) * fuzz));
}

/** Milliseconds from start to the first check. */
export function firstCheckDelay(s: CheckSchedule, random: number): number {
  return fuzzed(s.firstMs, s.firstFuzzMs, random);
}

/**
 * Milliseconds to the next check after `failures` failed checks in a row (0 after a success):
 * the interval doubled per failure, capped at maxBackoffMs, then fuzzed.
 */
export function nextCheckDelay(s: CheckSchedule, failures: number, random: number): number {
  const base = Math.min(s.intervalMs * 2 ** Math.min(failures, 30), Math.max(s.maxBackoffMs, s.intervalMs));
  return Math.min(fuzzed(base, s.fuzzMs, random), Math.max(s.maxBackoffMs, s.intervalMs) + s.fuzzMs / 2);
}

/** The wait before lock attempt number `attempt` (0-based): 5 s doubling to 5 min, as locksmithd's. */
export function lockRetryDelay(attempt: number, first = 5_000, max = 300_000): number {
  return Math.min(first * 2 ** Math.min(attempt, 30), max);
}
