/**
 * Throwaway etcd members on loopback for the fleet simulation and the tests (Debian's etcd-server 3.4): one or three, on free
 * ports, data in a temp folder, stopped and removed by stop() (call it in a finally). A member can
 * be killed (SIGKILL, as a crash) or paused (SIGSTOP) and started again on its data.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Why etcd tests cannot run here, or undefined when they can (CI installs etcd-server and etcd-client). */
export function etcdMissing(): string | undefined {
  // etcdctl 3.4 has a `version` command and no --version flag (it exits 1 on the flag).
  for (const [tool, arg] of [['etcd', '--version'], ['etcdctl', 'version']] as const) {
    try {
      execFileSync(tool, [arg], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (apt-get install -y etcd-server etcd-client)`;
    }
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Every member process still running: killed if this process exits first (a test that timed out never reaches its finally). */
const live = new Set<ChildProcess>();
/** Their data folders, removed then too (etcd preallocates 62 MB of WAL per member). */
const folders = new Set<string>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

export interface EtcdMember {
  name: string;
  clientUrl: string;
  process: ChildProcess | undefined;
  /** Ends the member's process with `signal` (SIGKILL by default) and waits for it. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on its data folder. */
  start(): void;
}

export interface EtcdCluster {
  endpoints: string[];
  members: EtcdMember[];
  /** `etcdctl` (API v3) against the cluster: its stdout. */
  etcdctl(...args: string[]): string;
  /** The member that is leader now, by `etcdctl endpoint status`. */
  leader(): EtcdMember | undefined;
  stop(): Promise<void>;
}

/** Starts `size` members (1 or 3) and waits until the cluster answers writes. */
export async function startEtcd(size: 1 | 3 = 1): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'fastpatch-etcd-'));
  folders.add(dir);
  const ports = await Promise.all(Array.from({ length: size * 2 }, freePort));
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peer = (i: number) => `http://127.0.0.1:${ports[size + i]}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const members: EtcdMember[] = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[i]}`;
    const args = [
      '--name', name, '--data-dir', join(dir, name),
      '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `t-${ports[0]}`,
      '--heartbeat-interval', '100', '--election-timeout', '1000',
      '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'error',
    ];
    const member: EtcdMember = {
      name, clientUrl, process: undefined,
      start() {
        const p = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'ignore'] });
        live.add(p);
        p.once('exit', () => live.delete(p));
        member.process = p;
      },
      async kill(signal: NodeJS.Signals = 'SIGKILL') {
        const p = member.process;
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill(signal);
        if (signal === 'SIGKILL' || signal === 'SIGTERM') await exited;
      },
    };
    return member;
  });
  members.forEach((m) => m.start());
  const endpoints = members.map((m) => m.clientUrl);
  const etcdctl = (...args: string[]) => execFileSync('etcdctl', ['--endpoints', endpoints.join(','), '--command-timeout=3s', ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  const cluster: EtcdCluster = {
    endpoints, members, etcdctl,
    leader() {
      // Asked member by member: a dead member makes a status of all endpoints fail as a whole.
      for (const m of members) {
        try {
          const out = execFileSync('etcdctl', ['--endpoints', m.clientUrl, '--command-timeout=1s', 'endpoint', 'status', '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'ignore'] });
          const [row] = JSON.parse(out) as { Status: { header: { member_id: number }; leader: number } }[];
          if (row && row.Status.header.member_id === row.Status.leader) return m;
        } catch {
          // down or paused: not the leader anyone can reach
        }
      }
      return undefined;
    },
    async stop() {
      await Promise.all(members.map((m) => m.kill('SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
      folders.delete(dir);
    },
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      etcdctl('put', 'fastpatch-test/ready', '1');
      return cluster;
    } catch (err) {
      if (Date.now() > deadline) {
        await cluster.stop();
        throw new Error(`etcd did not answer within 20 s: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
