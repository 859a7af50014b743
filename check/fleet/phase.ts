/**
 * One rollout of the fleet simulation: every machine runs its agent again and again, faults fire
 * at their moments, and the phase ends when every machine is quiet (its last run installed
 * nothing, rebooted nothing, and no fault is still to come) or at the deadline.
 */
import type { SimMachine } from './machine.js';

export interface Fault {
  /** ms after the phase starts. */
  at: number;
  what: string;
  run: () => Promise<void>;
}

export interface PhaseOptions {
  machines: SimMachine[];
  faults: Fault[];
  /** Take down the first machine that reboots holding its slot, for this many ms. */
  killFirstRebooter?: number;
  deadlineMs: number;
  note: (line: string) => void;
  /** Whether a quiet machine is where this phase means it to end (quiet alone may be a cap's "not yet"). */
  settled: (m: SimMachine) => boolean;
  /** A condition of the whole phase besides every machine settling (the bad release's pause). */
  finished?: () => boolean;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The service reads a promotion within a second (server/catalog.ts): runs begun before that may not see it. */
const SEEN_AFTER_MS = 1100;

/** Whether a run left the machine with nothing to do: no install, no reboot, no failed check. */
function quiet(m: SimMachine): boolean {
  const r = m.results.at(-1);
  if (!r || r.reboot.done || !r.check || 'error' in r.check) return false;
  return r.check.outcome === 'no-update';
}

export async function runPhase(o: PhaseOptions): Promise<{ done: boolean; detail: string }> {
  const t0 = performance.now();
  const stop = new AbortController();
  let pending = o.faults.length;
  const timers = o.faults.map((f) => setTimeout(() => {
    o.note(`fault: ${f.what}`);
    f.run().catch((err: unknown) => o.note(`fault ${f.what} failed: ${(err as Error).message}`)).finally(() => pending--);
  }, f.at));
  let victim: SimMachine | undefined;
  // A machine counts as quiet only by a run begun once the service can see this phase's release.
  const fresh = new Set<SimMachine>();
  const loop = async (m: SimMachine) => {
    while (!stop.signal.aborted) {
      const begun = performance.now();
      if (performance.now() < m.downUntil) {
        await pause(50);
        continue;
      }
      try {
        const r = await m.cycle(stop.signal);
        if (r.reboot.done && o.killFirstRebooter && !victim && r.reboot.lock) {
          victim = m;
          m.downUntil = performance.now() + o.killFirstRebooter;
          o.note(`${m.name}: killed right after rebooting, holding its slot; down for ${o.killFirstRebooter / 1000} s`);
        }
      } catch (err) {
        o.note(`${m.name}: agent run failed: ${(err as Error).message}`);
        m.results.push({ machineId: m.machineId, boot: { state: 'steady' }, reboot: { done: false, why: 'error' }, check: { error: (err as Error).message } });
      }
      if (begun - t0 >= SEEN_AFTER_MS) fresh.add(m);
      await pause(quiet(m) ? 200 : 30);
    }
  };
  const loops = o.machines.map(loop);
  let done = false;
  while (performance.now() - t0 < o.deadlineMs) {
    await pause(250);
    if (pending === 0 && (o.finished?.() ?? true) && o.machines.every((m) => fresh.has(m) && quiet(m) && o.settled(m) && performance.now() >= m.downUntil)) {
      done = true;
      break;
    }
  }
  stop.abort();
  timers.forEach(clearTimeout);
  await Promise.all(loops);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  const waiting = o.machines.filter((m) => !quiet(m) || !o.settled(m)).map((m) => `${m.name} (${m.version ?? '?'})`);
  return { done, detail: done ? `settled after ${seconds} s` : `not settled after ${seconds} s: ${waiting.join(', ') || 'the phase condition'}` };
}
