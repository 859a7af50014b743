/**
 * `npm run bench -- omaha`: update checks per second one `fastpatch serve` answers, and their
 * latency, with 10,000 simulated machines (distinct machine ids) polling over loopback.
 *
 * The server runs as its own process (`fastpatch serve`, as in production, state in SQLite on
 * disk); this process is the fleet: keep-alive connections, each request one machine's
 * ping + update check as update_engine sends it. Half the fleet runs the old release (each check
 * is a grant: a delta offered, the grant written to SQLite; later rounds find it granted), half the
 * current one (noupdate). Bounded: a fixed number of requests, loopback only.
 *
 * Peer, when FASTPATCH_BENCH_GO_OMAHA names a go-omaha server binary (the interop harness of
 * docs/OMAHA.md, built by hand; it is not in any registry this project installs from): the same
 * load against go-omaha's TrivialServer, which answers from memory and records nothing, in the
 * same interleaved rounds. Its ratio says what FastPatch's state and rollout checks cost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { addRelease } from '../src/release/add.js';
import { ReleaseRepository } from '../src/release/repository.js';
import { buildRequest } from '../src/omaha/request.js';
import { COREOS_APP_ID } from '../src/omaha/codes.js';
import { sampleImage } from '../src/demo/sample.js';
import { generateKey } from '../src/sign/keys.js';
import { median, out, progress, table } from './harness.js';

export const MACHINES = 10_000;
const CONCURRENCY = 32;
/** Seconds between checks of one machine: update_engine's 45 minutes. */
const POLL_SECONDS = 45 * 60;

export interface OmahaLoadFigures {
  checksPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuMsPerCheck: number;
  peer?: { checksPerSecond: number; p50Ms: number; p99Ms: number };
}

interface RoundResult {
  seconds: number;
  latencies: number[];
  cpuMs: number;
}

/** The server's CPU time so far (user + system), ms, from /proc. */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms (USER_HZ 100)
}

/** Starts a server process and resolves with it and its Omaha URL, read from its first line. */
function startProcess(cmd: string, args: string[], urlOf: (line: string) => string | undefined): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      for (const line of seen.split('\n')) {
        const url = urlOf(line);
        if (!url) continue;
        // From now on its output is only drained: a full pipe would stall the server (go-omaha logs every request).
        for (const stream of [child.stdout!, child.stderr!]) {
          stream.off('data', onData);
          stream.resume();
        }
        return resolve({ child, url });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code} before it listened: ${seen.slice(0, 500)}`)));
  });
}

/** One pass of `bodies` through `url` on CONCURRENCY keep-alive connections. */
async function round(url: string, bodies: readonly string[], pid: number): Promise<RoundResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const target = new URL(url);
  const latencies = new Array<number>(bodies.length);
  let next = 0;
  const one = (body: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  const cpu0 = cpuMsOf(pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next++; i < bodies.length; i = next++) {
      const t = performance.now();
      await one(bodies[i]!);
      latencies[i] = performance.now() - t;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return { seconds, latencies, cpuMs: cpuMsOf(pid) - cpu0 };
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** Builds the repository and the fleet's request bodies in `workDir`. */
async function prepare(workDir: string): Promise<{ repo: string; payload: string; bodies: string[] }> {
  const key = generateKey();
  const repo = join(workDir, 'omaha-repo');
  await ReleaseRepository.init(repo, { keys: [key], keepDeltas: 1 });
  for (const [version, variant] of [['1.0.0', 1], ['1.1.0', 2]] as const) {
    const image = join(workDir, `omaha-${version}.img`);
    writeFileSync(image, sampleImage({ size: 1 << 20, variant }));
    await addRelease(repo, { image, version, keys: [key] });
  }
  const payload = join(repo, 'payloads', (await (await ReleaseRepository.open(repo)).readRelease('1.1.0'))!.payloads[0]!.sha256 + '.fpay');
  const bodies = Array.from({ length: MACHINES }, (_, i) => buildRequest({
    protocol: '3.0', installSource: 'scheduler',
    apps: [{ appId: COREOS_APP_ID, version: i % 2 === 0 ? '1.0.0' : '1.1.0', track: 'alpha', machineId: randomBytes(16).toString('hex'), bootId: `{${crypto.randomUUID()}}`, ping: true, updateCheck: true, events: [] }],
  }));
  return { repo, payload, bodies };
}

/** Runs `rounds` interleaved passes of the whole fleet against FastPatch (and the peer, when given). */
export async function runOmahaLoad(rounds: number, workDir: string): Promise<OmahaLoadFigures> {
  const { repo, payload, bodies } = await prepare(workDir);
  const cli = join(import.meta.dirname, '..', 'src', 'cli.js');
  const fp = await startProcess(process.execPath, [cli, 'serve', repo, '--listen', '127.0.0.1:0', '--state', join(workDir, 'omaha-state.sqlite')], (l) => /Omaha at (http\S+\/v1\/update\/)/.exec(l)?.[1]);
  const goBinary = process.env['FASTPATCH_BENCH_GO_OMAHA'];
  const go = goBinary ? await startProcess(goBinary, ['--file', payload, '--version', '1.1.0', '--port', '18777'], (l) => (/listening on (\S+)/.exec(l) ? 'http://127.0.0.1:18777/v1/update/' : undefined)) : undefined;
  const ours: RoundResult[] = [];
  const theirs: RoundResult[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      progress(`omaha: round ${r + 1} of ${rounds}: ${MACHINES} machines`);
      ours.push(await round(fp.url, bodies, fp.child.pid!));
      if (go) theirs.push(await round(go.url, bodies, go.child.pid!));
    }
  } finally {
    fp.child.kill('SIGTERM');
    go?.child.kill('SIGTERM');
  }
  return report(ours, theirs);
}

function summary(results: readonly RoundResult[]) {
  const all = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  return {
    checksPerSecond: median(results.map((r) => MACHINES / r.seconds)),
    p50Ms: percentile(all, 0.5),
    p99Ms: percentile(all, 0.99),
    perRound: results.map((r) => Math.round(MACHINES / r.seconds)),
    cpuMsPerCheck: median(results.map((r) => r.cpuMs / MACHINES)),
  };
}

function report(ours: readonly RoundResult[], theirs: readonly RoundResult[]): OmahaLoadFigures {
  const a = summary(ours);
  const rows = [[
    '`fastpatch serve` (SQLite state, waves and caps checked, grants written)',
    `${a.checksPerSecond.toFixed(0)} (rounds: ${a.perRound.join(', ')})`, a.p50Ms.toFixed(2), a.p99Ms.toFixed(2), a.cpuMsPerCheck.toFixed(3),
    `${Math.floor(a.checksPerSecond * POLL_SECONDS).toLocaleString('en-US')}`,
  ]];
  let peer: OmahaLoadFigures['peer'];
  if (theirs.length > 0) {
    const b = summary(theirs);
    peer = { checksPerSecond: b.checksPerSecond, p50Ms: b.p50Ms, p99Ms: b.p99Ms };
    rows.push(['go-omaha TrivialServer (in memory, records nothing)', `${b.checksPerSecond.toFixed(0)} (rounds: ${b.perRound.join(', ')})`, b.p50Ms.toFixed(2), b.p99Ms.toFixed(2), b.cpuMsPerCheck.toFixed(3), '–']);
    rows.push(['ratio fastpatch / go-omaha', `${(a.checksPerSecond / b.checksPerSecond).toFixed(2)}×`, '', '', '', '']);
  } else {
    out('(peer: set FASTPATCH_BENCH_GO_OMAHA to a go-omaha server binary to measure it in the same rounds; docs/OMAHA.md says how to build one)\n');
  }
  table(`Update checks: ${MACHINES.toLocaleString('en-US')} machines, ${CONCURRENCY} keep-alive connections, loopback`, ['server', 'checks/s (median)', 'p50 ms', 'p99 ms', 'server CPU ms/check', 'machines at one check per 45 min'], rows);
  return { checksPerSecond: a.checksPerSecond, p50Ms: a.p50Ms, p99Ms: a.p99Ms, serverCpuMsPerCheck: a.cpuMsPerCheck, ...(peer ? { peer } : {}) };
}
