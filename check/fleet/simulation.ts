/**
 * The fleet simulation (`npm run fleet`): a real 3-member etcd cluster on loopback (or one given),
 * the update service, and N simulated machines (machine.ts), each running the agent with the
 * etcd-lock strategy. Two rollouts:
 *
 *   A. a good release, under faults: an etcd member killed and restarted, the quorum lost for a
 *      while, the first machine to reboot killed while it holds its slot (down for a while), the
 *      update service restarted, and one machine whose new slot never comes up healthy;
 *   B. a bad release (no machine's new slot comes up healthy): the service's self-pause must stop
 *      it after the first failures, the failed machines back on the good release.
 *
 * Checks, from etcd's own history and the machines' disks: never more holders than slots, no slot
 * left held, every healthy machine on the good release, the bad release stopped. The seed chooses
 * the machines and the moments; it is printed, and the same seed runs the same plan.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addRelease } from '../../src/release/add.js';
import { promoteRelease } from '../../src/release/promote.js';
import { ReleaseRepository } from '../../src/release/repository.js';
import { startServer, type RunningServer } from '../../src/server/http-server.js';
import { EtcdSemaphore } from '../../src/fleet/etcd-semaphore.js';
import { semaphoreKey } from '../../src/fleet/semaphore.js';
import { generateKey, publicKeyOf } from '../../src/sign/keys.js';
import { Prng, sampleImage } from '../../src/demo/sample.js';
import { startEtcd, type EtcdCluster } from './etcd-cluster.js';
import { historyProblems, semaphoreHistory } from './history.js';
import { SimMachine } from './machine.js';
import { runPhase, type Fault } from './phase.js';

export interface FleetOptions {
  machines: number;
  max: number;
  seed: number;
  /** An existing cluster's client URLs; else a 3-member cluster is started (and its members are faulted). */
  etcd?: string[];
  /** Failures + rollbacks of the bad release that pause its rollout (default 2). */
  failureThreshold?: number;
  /** How much faster than real time the agents' waits run (default 50). */
  speedup?: number;
  log?: (line: string) => void;
  /** Every line of every agent in the timeline, not only the coordination steps. */
  verbose?: boolean;
}

export interface FleetCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface FleetReport {
  seed: number;
  seconds: number;
  checks: FleetCheck[];
  timeline: string[];
  ok: boolean;
}

const RELEASES = [['1.0.0', 1], ['1.1.0', 2], ['1.2.0', 3]] as const;

/** Builds the repository: three releases, all on alpha and beta, stable on 1.0.0. */
async function prepareRepository(dir: string) {
  const key = generateKey();
  const repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [key], keepDeltas: 1 });
  for (const [version, variant] of RELEASES) {
    const image = join(dir, `${version}.img`);
    await writeFile(image, sampleImage({ size: 2 * 1024 * 1024, variant, seed: 3 }));
    await addRelease(repo, { image, version, keys: [key] });
    await promoteRelease(repo, { version, to: 'beta', keys: [key] });
  }
  await promoteRelease(repo, { version: '1.0.0', to: 'stable', keys: [key] });
  const r = await ReleaseRepository.open(repo);
  const full = (await r.readRelease('1.0.0'))!.payloads.find((p) => p.kind === 'full')!;
  return { repo, key, firstPayload: r.payloadPath(full.sha256) };
}

/** Runs the simulation; never throws for a failed check (the report says), only for a broken setup. */
export async function runFleet(o: FleetOptions): Promise<FleetReport> {
  const started = performance.now();
  const timeline: string[] = [];
  const note = (line: string) => {
    const text = `t+${((performance.now() - started) / 1000).toFixed(2)}s ${line}`;
    timeline.push(text);
    o.log?.(text);
  };
  const rng = new Prng(o.seed);
  const dir = await mkdtemp(join(tmpdir(), 'fastpatch-fleet-'));
  let cluster: EtcdCluster | undefined;
  let server: RunningServer | undefined;
  try {
    note(`seed ${o.seed}: ${o.machines} machines, ${o.max} reboot slots`);
    cluster = o.etcd ? undefined : await startEtcd(3);
    const endpoints = o.etcd ?? cluster!.endpoints;
    const lockGroup = `fleet-sim-${o.seed}-${Date.now()}`;
    const sem = new EtcdSemaphore({ endpoints }, lockGroup);
    await sem.setMax(o.max);
    sem.close();
    const { repo, key, firstPayload } = await prepareRepository(dir);
    const state = join(dir, 'server.sqlite');
    server = await startServer({ repository: repo, state, port: 0 });
    const port = server.port;
    server.rollout.group('stable', 'stable');
    // As an operator would roll out: no more machines updating at once than may reboot at once, and a pause at the first failures.
    server.rollout.setPolicy('stable', { failureThreshold: o.failureThreshold ?? 2, maxInProgress: o.max });
    const machines = Array.from({ length: o.machines }, (_, index) => new SimMachine({
      dir, index, firstPayload, trustedKeys: [publicKeyOf(key)], server: `${server!.url}v1/update/`, etcd: endpoints, group: 'stable', lockGroup,
      speedup: o.speedup ?? 50, log: (m, line) => (o.verbose || /took|slot|booted|health|rolled|report|reboot/i.test(line) ? note(`${m} ${line}`) : undefined),
    }));
    for (const m of machines) await m.prepare();
    note('machines prepared: all run 1.0.0 in USR-A');

    // Phase A: the good release, under every fault.
    const unhealthy = machines[rng.below(machines.length)]!;
    await unhealthy.markBad('1.1.0');
    note(`${unhealthy.name}: its new slot will never come up healthy on 1.1.0`);
    const restartServer = async () => {
      await server!.close();
      note('update service stopped');
      await new Promise((r) => setTimeout(r, 500));
      server = await startServer({ repository: repo, state, port });
      note('update service started again on the same state');
    };
    const faults: Fault[] = [
      ...(cluster ? [
        { at: 800 + rng.below(800), what: 'kill one etcd member, restart it 2 s later', run: async () => killAndRestart(cluster!, 1, 2000, note) },
        { at: 3500 + rng.below(1000), what: 'kill two etcd members (quorum lost) for 3 s', run: async () => killAndRestart(cluster!, 2, 3000, note) },
      ] : []),
      { at: 2000 + rng.below(2000), what: 'restart the update service', run: restartServer },
    ];
    await promoteRelease(repo, { version: '1.1.0', to: 'stable', keys: [key] });
    note('stable -> 1.1.0');
    const onGood = (m: SimMachine) => m.version === (m === unhealthy ? '1.0.0' : '1.1.0');
    const phaseA = await runPhase({ machines, faults, killFirstRebooter: 4000, deadlineMs: 180_000, note, settled: onGood });
    // Phase B: the bad release; the rollout must stop itself.
    for (const m of machines) await m.markBad('1.2.0');
    await promoteRelease(repo, { version: '1.2.0', to: 'stable', keys: [key] });
    note('stable -> 1.2.0 (its new slot never comes up healthy anywhere)');
    const phaseB = await runPhase({ machines, faults: [], deadlineMs: 120_000, note, settled: onGood, finished: () => server!.rollout.findGroup('stable')?.paused === true });
    const checks = await checkFleet({ machines, unhealthy, endpoints, lockGroup, max: o.max, server: server!, phases: [phaseA, phaseB], threshold: o.failureThreshold ?? 2 });
    for (const c of checks) note(`${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
    return { seed: o.seed, seconds: (performance.now() - started) / 1000, checks, timeline, ok: checks.every((c) => c.ok) };
  } finally {
    await server?.close().catch(() => {});
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Kills `count` members (the leader among them), starts them again after `downMs`; resolves once they are started. */
async function killAndRestart(cluster: EtcdCluster, count: number, downMs: number, note: (l: string) => void): Promise<void> {
  const leader = cluster.leader();
  const victims = [leader ?? cluster.members[0]!, ...cluster.members.filter((m) => m !== leader)].slice(0, count);
  for (const v of victims) await v.kill('SIGKILL');
  note(`etcd: killed ${victims.map((v) => v.name).join(', ')}${leader && victims.includes(leader) ? ' (the leader among them)' : ''}`);
  await new Promise((r) => setTimeout(r, downMs));
  for (const v of victims) v.start();
  note(`etcd: started ${victims.map((v) => v.name).join(', ')} again`);
}

interface CheckInput {
  machines: SimMachine[];
  unhealthy: SimMachine;
  endpoints: string[];
  lockGroup: string;
  max: number;
  server: RunningServer;
  phases: { done: boolean; detail: string }[];
  threshold: number;
}

async function checkFleet(c: CheckInput): Promise<FleetCheck[]> {
  const history = await semaphoreHistory(c.endpoints, semaphoreKey(c.lockGroup));
  const problems = historyProblems(history, c.max);
  const last = history.at(-1)?.value;
  const versions = await Promise.all(c.machines.map(async (m) => `${m.name}=${await m.runningRelease()}`));
  const healthyOnGood = c.machines.filter((m) => m !== c.unhealthy).every((m) => versions.includes(`${m.name}=1.1.0`));
  const group = c.server.rollout.findGroup('stable');
  const triedBad = c.machines.filter((m) => m.triedRelease('1.2.0')).length;
  return [
    { name: 'phases ended in bounded time', ok: c.phases.every((p) => p.done), detail: c.phases.map((p) => p.detail).join('; ') },
    { name: `never more than ${c.max} holders (etcd history)`, ok: problems.length === 0 && history.length > 2, detail: problems.length ? problems.slice(0, 3).join('; ') : `${history.length} revisions read` },
    { name: 'no slot left held', ok: (last?.holders.length ?? 0) === 0, detail: `holders at the end: ${last?.holders.join(', ') || 'none'}` },
    { name: 'every healthy machine ends on the good release; the unhealthy one back on the old', ok: healthyOnGood && versions.includes(`${c.unhealthy.name}=1.0.0`), detail: versions.join(' ') },
    { name: 'the failing release stopped itself', ok: group?.paused === true && /^self:/.test(group.pauseReason) && triedBad <= c.threshold + c.max, detail: `${triedBad} machines tried 1.2.0; stable: ${group?.pauseReason ?? 'not paused'}` },
  ];
}
