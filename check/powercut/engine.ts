/**
 * Power-cut engine (check/powercut/run.ts, test/apply/powercut.test.ts): kills the real CLI with
 * SIGKILL at random points and checks what is left.
 *
 *  - apply: a full and a delta payload (v1 -> v2) are applied onto a loop device that holds v1;
 *    `node dist/src/cli.js apply` is killed after a random delay: uniform over the measured
 *    duration of an uninterrupted apply, or over its part after the head, or within its first ~100 ms;
 *    then `apply --resume --json` runs to completion and the device must read back as v2, byte
 *    for byte. Bytes fetched by the resume (its `payloadBytes`: the bytes fed to the applier) are
 *    checked against a bound computed from the target as the kill left it: the head plus the data
 *    of every operation whose destination does not yet hash to its signed output hash
 *    (scanTarget). That bound is exact and must always hold.
 *  - gpt: `gpt set-next --slot USR-B --running USR-A` and `gpt mark-good --slot USR-B` on a Flatcar
 *    disk on a loop device, killed after 0..max(150 ms, 1.1 x the command's duration) (half of the kills in the last 40 % of that span, where it writes); the disk must
 *    read back with no problems (or be repaired by `gpt repair`) in the old or the new state, and
 *    GRUB's and vboot's models must boot it.
 *
 * Caveat: SIGKILL is not a power cut. The kernel keeps every write() the process completed (in the
 * page cache, written back later), so this tests the process dying at any instruction, not lost
 * or torn sector writes. Sector-level crash injection (the disk stopped after every single sector
 * write of a GPT flip) lives in test/disk/cycle.test.ts; resume's distrust of torn operations is in
 * test/apply/resume.test.ts.
 *
 * Needs root (losetup). Loop devices are always detached, the temporary folder always removed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findSlot,
  format,
  formatPublicKey,
  generateDeltaPayload,
  generateFullPayload,
  generateKey,
  grubNext,
  markGood,
  publicKeyOf,
  readDiskGpt,
  createFlatcarDisk,
  sampleImage,
  setNext,
  vbootNext,
  type GptEntry,
} from '../../src/index.js';
import { scanTarget } from '../../src/apply/resume.js';
import { WasmCore } from '../../src/wasm/core.js';
import { openImageForRead } from '../../src/io/device.js';
import { Prng as SamplePrng } from '../../src/demo/sample.js';

const MiB = 1024 * 1024;
export const CLI_PATH = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const USR = '5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6';
const EMPTY_TYPE = '00000000-0000-0000-0000-000000000000';

/** Seeded integers, so every failure reproduces from (seed, cut number). */
export class Rng extends SamplePrng {
  constructor(seed: number) {
    super(0);
    this.state = (seed * 0x9e3779b1 + 0x7654321) >>> 0;
  }
  /** Uniform in [0, 1). */
  unit(): number {
    return this.next32() / 2 ** 32;
  }
}

export interface PowercutOptions {
  /** Cuts per payload kind (full, delta). */
  cuts: number;
  /** Kills per GPT command (set-next, mark-good). */
  gptKills: number;
  seed: number;
  /** Image size in MiB. */
  sizeMiB: number;
  log?: (line: string) => void;
}

export interface CutRecord {
  kind: 'full' | 'delta';
  cut: number;
  delayMs: number;
  /** The killed process had already exited on its own before the kill. */
  finishedBeforeKill: boolean;
  opsDoneAfterKill: number;
  /** Operations the killed process wrote: on the target after the kill, not before the apply (v1 already matches some). */
  opsWrittenByKilled: number;
  operations: number;
  identical: boolean;
  fetched: number;
  bound: number;
  /** At least this many data bytes were fetched by the killed process and again by the resume, beyond one operation's. */
  refetchedBeyondOneOp: number;
  error?: string;
}

export interface GptRecord {
  command: 'set-next' | 'mark-good';
  run: number;
  delayMs: number;
  exitedBeforeKill: boolean;
  state: 'old' | 'new' | 'other' | 'unreadable';
  repaired: boolean;
  bootable: boolean;
  error?: string;
}

export interface PowercutSummary {
  sizeMiB: number;
  seed: number;
  durations: { full: number; delta: number; setNext: number; markGood: number; fullStartup: number; deltaStartup: number };
  operations: { full: number; delta: number };
  payloadBytes: { full: number; delta: number };
  cuts: CutRecord[];
  gpt: GptRecord[];
}

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  exitedBeforeKill: boolean;
  ms: number;
}

/** Runs the CLI; with `killAfterMs`, sends SIGKILL that long after the spawn. */
export function runCli(args: readonly string[], killAfterMs?: number): Promise<Child> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let exited = false;
    let killed = false;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => {
      if (!exited) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, killAfterMs);
    const guard = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('exit', () => {
      exited = true;
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      clearTimeout(guard);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), exitedBeforeKill: !killed, ms: performance.now() - started });
    });
  });
}

function attachLoop(backing: string): string {
  return execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
}

function detachLoop(device: string): void {
  execFileSync('losetup', ['--detach', device]);
}

async function readAt(path: string, length: number, position = 0): Promise<Buffer> {
  const handle = await fsp.open(path, 'r');
  try {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(out, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return out.subarray(0, done);
  } finally {
    await handle.close();
  }
}

async function writeAt(path: string, data: Uint8Array, position = 0): Promise<void> {
  const handle = await fsp.open(path, 'r+');
  try {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Apply

interface Fixture {
  dir: string;
  v1: Uint8Array;
  v2: Uint8Array;
  v1Path: string;
  pubPath: string;
  /** A key that signed nothing: apply with it stops right after the head (start-up time). */
  otherPubPath: string;
  payloads: Record<'full' | 'delta', { path: string; head: number; size: number; manifest: format.Manifest }>;
}

/** v1 and v2 images (v2: a sample-image variant with scattered edits, so the delta has many operations), a key, and both payloads. */
async function prepare(dir: string, sizeMiB: number, seed: number): Promise<Fixture> {
  const size = sizeMiB * MiB;
  const v1 = sampleImage({ size, variant: 0, seed });
  const v2 = sampleImage({ size, variant: 1, seed });
  const rng = new Rng(seed ^ 0x5eed);
  for (let i = 0; i < 64 * sizeMiB; i++) {
    const at = rng.below(size - 64);
    for (let j = 0; j < 1 + rng.below(48); j++) v2[at + j] = rng.below(256);
  }
  const v1Path = join(dir, 'v1.img');
  const v2Path = join(dir, 'v2.img');
  await fsp.writeFile(v1Path, v1);
  await fsp.writeFile(v2Path, v2);
  const key = generateKey();
  const pubPath = join(dir, 'key.pub');
  await fsp.writeFile(pubPath, formatPublicKey(publicKeyOf(key)));
  const otherPubPath = join(dir, 'other.pub');
  await fsp.writeFile(otherPubPath, formatPublicKey(publicKeyOf(generateKey())));
  const fullPath = join(dir, 'v2.fpay');
  const deltaPath = join(dir, 'v1-v2.fpay');
  await generateFullPayload({ target: v2Path, keys: [key], version: '2.0.0', out: fullPath });
  await generateDeltaPayload({ source: v1Path, target: v2Path, keys: [key], version: '2.0.0', sourceVersion: '1.0.0', out: deltaPath });
  const describe = async (path: string) => {
    const bytes = await fsp.readFile(path);
    const manifestSize = bytes.readUInt32LE(12);
    const head = 32 + manifestSize + bytes.readUInt32LE(16);
    return { path, head, size: bytes.length, manifest: format.decodeManifest(bytes.subarray(32, 32 + manifestSize)) };
  };
  return { dir, v1, v2, v1Path, pubPath, otherPubPath, payloads: { full: await describe(fullPath), delta: await describe(deltaPath) } };
}

function applyArgs(f: Fixture, kind: 'full' | 'delta', target: string, resume: boolean): string[] {
  return ['apply', f.payloads[kind].path, '--target', target, '--pubkey', f.pubPath, ...(kind === 'delta' ? ['--source', f.v1Path] : []), ...(resume ? ['--resume', '--json'] : [])];
}

async function scan(core: WasmCore, target: string, manifest: format.Manifest): Promise<Uint8Array> {
  const image = await openImageForRead(target);
  try {
    return (await scanTarget(core, image, manifest)).done;
  } finally {
    await image.handle.close();
  }
}

async function oneCut(f: Fixture, core: WasmCore, kind: 'full' | 'delta', target: string, cut: number, delayMs: number, before: Uint8Array): Promise<CutRecord> {
  const p = f.payloads[kind];
  const ops = p.manifest.operations;
  const record: CutRecord = { kind, cut, delayMs, finishedBeforeKill: false, opsDoneAfterKill: 0, opsWrittenByKilled: 0, operations: ops.length, identical: false, fetched: -1, bound: -1, refetchedBeyondOneOp: 0 };
  try {
    await writeAt(target, f.v1); // the passive slot held the old release
    const killed = await runCli(applyArgs(f, kind, target, false), delayMs);
    record.finishedBeforeKill = killed.exitedBeforeKill;
    if (killed.exitedBeforeKill && killed.code !== 0) throw new Error(`the interrupted apply failed on its own (exit ${killed.code}): ${killed.stderr.trim()}`);
    // What the kill left: which operations already hash to their signed output.
    const done = await scan(core, target, p.manifest);
    let missing = 0;
    let lastWritten = -1;
    ops.forEach((op, i) => {
      if (done[i] === 1) {
        record.opsDoneAfterKill++;
        if (before[i] !== 1) {
          record.opsWrittenByKilled++;
          lastWritten = i;
        }
      } else missing += op.dataLength;
    });
    record.bound = p.head + missing;
    // Operations before the last one the killed process wrote were certainly read by it (the
    // payload is read in order): their data, fetched again, beyond the largest one's.
    let inFlight = 0;
    let largest = 0;
    for (let i = 0; i < lastWritten; i++) {
      if (done[i] === 1) continue;
      inFlight += ops[i]!.dataLength;
      largest = Math.max(largest, ops[i]!.dataLength);
    }
    record.refetchedBeyondOneOp = inFlight - largest;
    const resumed = await runCli(applyArgs(f, kind, target, true));
    if (resumed.code !== 0) throw new Error(`apply --resume exited ${resumed.code ?? resumed.signal}: ${resumed.stderr.trim()}`);
    const result = JSON.parse(resumed.stdout) as { payloadBytes: number; resumed?: { operationsSkipped: number } };
    record.fetched = result.payloadBytes;
    const back = await readAt(target, f.v2.length);
    record.identical = back.length === f.v2.length && Buffer.compare(back, f.v2) === 0;
    const problems: string[] = [];
    if (!record.identical) problems.push(`target differs from v2 at byte ${firstDifference(back, f.v2)}`);
    if (record.fetched > record.bound) problems.push(`resume fetched ${record.fetched} bytes, bound ${record.bound}`);
    if (result.resumed?.operationsSkipped !== record.opsDoneAfterKill) problems.push(`resume skipped ${result.resumed?.operationsSkipped} operations, the scan after the kill found ${record.opsDoneAfterKill} done`);
    if (problems.length > 0) record.error = problems.join('; ');
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
  }
  return record;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Median wall time of 3 uninterrupted applies after a warm-up (including node's start-up), and
 * of its start-up: an apply with a key that signed nothing, which stops right after the head.
 */
async function measureApply(f: Fixture, kind: 'full' | 'delta', target: string): Promise<{ total: number; startup: number }> {
  const totals: number[] = [];
  for (let i = 0; i < 4; i++) {
    await writeAt(target, f.v1);
    const run = await runCli(applyArgs(f, kind, target, false));
    if (run.code !== 0) throw new Error(`uninterrupted ${kind} apply failed (exit ${run.code}): ${run.stderr.trim()}`);
    if (i > 0) totals.push(run.ms);
  }
  const back = await readAt(target, f.v2.length);
  if (Buffer.compare(back, f.v2) !== 0) throw new Error(`uninterrupted ${kind} apply did not produce v2`);
  const startups: number[] = [];
  for (let i = 0; i < 3; i++) {
    const args = applyArgs(f, kind, target, false);
    args[args.indexOf(f.pubPath)] = f.otherPubPath;
    const run = await runCli(args);
    if (run.code === 0) throw new Error(`apply with a key that signed nothing succeeded`);
    startups.push(run.ms);
  }
  return { total: median(totals), startup: median(startups) };
}

// ---------------------------------------------------------------------------------------------
// GPT

/** The A/B state: every used entry's number and attribute bits. */
function slotState(entries: readonly GptEntry[] | undefined): string {
  return JSON.stringify((entries ?? []).filter((e) => e.typeGuid !== EMPTY_TYPE).map((e) => [e.index, e.attributes.toString(16)]));
}

const usedOf = (entries: readonly GptEntry[]) => entries.filter((e) => e.typeGuid !== EMPTY_TYPE);

/** The disk's GPT regions: its first and last MiB. */
async function snapshot(dev: string, size: number): Promise<{ head: Buffer; tail: Buffer }> {
  return { head: await readAt(dev, MiB, 0), tail: await readAt(dev, MiB, size - MiB) };
}

async function restore(dev: string, size: number, s: { head: Buffer; tail: Buffer }): Promise<void> {
  await writeAt(dev, s.head, 0);
  await writeAt(dev, s.tail, size - MiB);
}

async function gptRuns(dir: string, kills: number, rng: Rng, log: (line: string) => void, durations: PowercutSummary['durations']): Promise<GptRecord[]> {
  const size = 64 * MiB;
  const backing = join(dir, 'disk.img');
  await fsp.writeFile(backing, new Uint8Array(0));
  await fsp.truncate(backing, size);
  const dev = attachLoop(backing);
  const records: GptRecord[] = [];
  try {
    await createFlatcarDisk(dev);
    const s0 = await snapshot(dev, size);
    const e0 = (await readDiskGpt(dev)).table!.entries;
    const setNextArgs = ['gpt', 'set-next', dev, '--slot', 'USR-B', '--running', 'USR-A'];
    const markGoodArgs = ['gpt', 'mark-good', dev, '--slot', 'USR-B'];
    // The old and new states, as the library computes them; the uninterrupted commands must agree.
    const e1 = setNext(usedOf(e0), findSlot(e0, 'USR-B').index);
    const e2 = markGood(e1, findSlot(e1, 'USR-B').index);
    const first = await runCli(setNextArgs);
    if (first.code !== 0) throw new Error(`gpt set-next failed: ${first.stderr.trim()}`);
    durations.setNext = first.ms;
    const s1 = await snapshot(dev, size);
    if (slotState((await readDiskGpt(dev)).table?.entries) !== slotState(e1)) throw new Error('gpt set-next did not write the state setNext() computes');
    const second = await runCli(markGoodArgs);
    if (second.code !== 0) throw new Error(`gpt mark-good failed: ${second.stderr.trim()}`);
    durations.markGood = second.ms;
    if (slotState((await readDiskGpt(dev)).table?.entries) !== slotState(e2)) throw new Error('gpt mark-good did not write the state markGood() computes');
    const plans = [
      { command: 'set-next' as const, args: setNextArgs, from: s0, old: slotState(e0), neu: slotState(e1), ms: durations.setNext },
      { command: 'mark-good' as const, args: markGoodArgs, from: s1, old: slotState(e1), neu: slotState(e2), ms: durations.markGood },
    ];
    for (const plan of plans) {
      for (let run = 0; run < kills; run++) {
        // Half uniform over 0..max(150 ms, the command's time), half in its last 40 % where it writes.
        const span = Math.max(150, plan.ms * 1.1);
        const delayMs = Math.round(run % 2 === 0 ? rng.unit() * span : span * (0.6 + 0.4 * rng.unit()));
        const record: GptRecord = { command: plan.command, run, delayMs, exitedBeforeKill: false, state: 'unreadable', repaired: false, bootable: false };
        try {
          await restore(dev, size, plan.from);
          const child = await runCli(plan.args, delayMs);
          record.exitedBeforeKill = child.exitedBeforeKill;
          if (child.exitedBeforeKill && child.code !== 0) throw new Error(`${plan.command} failed on its own (exit ${child.code}): ${child.stderr.trim()}`);
          let read = await readDiskGpt(dev);
          if (read.problems.length > 0) {
            const repair = await runCli(['gpt', 'repair', dev]);
            if (repair.code !== 0) throw new Error(`gpt repair failed (exit ${repair.code}): ${repair.stderr.trim()}; problems: ${read.problems.map((p) => p.message).join('; ')}`);
            record.repaired = true;
            read = await readDiskGpt(dev);
            if (read.problems.length > 0) throw new Error(`still wrong after repair: ${read.problems.map((p) => p.message).join('; ')}`);
          }
          const state = slotState(read.table?.entries);
          record.state = state === plan.old ? 'old' : state === plan.neu ? 'new' : 'other';
          const used = usedOf(read.table?.entries ?? []);
          record.bootable = grubNext(used, USR).bootable && vbootNext(used, { typeGuids: [USR] }).bootable;
          const problems: string[] = [];
          if (record.state === 'other') problems.push(`slot state is neither the old nor the new one: ${state}`);
          if (!record.bootable) problems.push('GRUB or vboot finds nothing to boot');
          if (problems.length > 0) record.error = problems.join('; ');
        } catch (err) {
          record.error = err instanceof Error ? err.message : String(err);
        }
        if (record.error) log(`  GPT FAIL ${plan.command} run ${run} kill at ${delayMs} ms: ${record.error}`);
        records.push(record);
      }
    }
  } finally {
    detachLoop(dev);
  }
  return records;
}

// ---------------------------------------------------------------------------------------------

/** Prepares everything in a temporary folder, runs every cut and kill, and cleans up. */
export async function runPowercut(options: PowercutOptions): Promise<PowercutSummary> {
  const log = options.log ?? (() => {});
  const dir = await fsp.mkdtemp(join(tmpdir(), 'fastpatch-powercut-'));
  const durations = { full: 0, delta: 0, setNext: 0, markGood: 0, fullStartup: 0, deltaStartup: 0 };
  try {
    log(`preparing ${options.sizeMiB} MiB v1/v2 images, key, full and delta payloads in ${dir}`);
    const f = await prepare(dir, options.sizeMiB, options.seed);
    const summary: PowercutSummary = {
      sizeMiB: options.sizeMiB,
      seed: options.seed,
      durations,
      operations: { full: f.payloads.full.manifest.operations.length, delta: f.payloads.delta.manifest.operations.length },
      payloadBytes: { full: f.payloads.full.size, delta: f.payloads.delta.size },
      cuts: [],
      gpt: [],
    };
    log(`full payload: ${summary.payloadBytes.full} bytes, ${summary.operations.full} operations; delta: ${summary.payloadBytes.delta} bytes, ${summary.operations.delta} operations`);
    const rng = new Rng(options.seed);
    const core = WasmCore.load();
    const backing = join(dir, 'target.img');
    await fsp.writeFile(backing, new Uint8Array(0));
    await fsp.truncate(backing, f.v2.length);
    const target = attachLoop(backing);
    try {
      for (const kind of ['full', 'delta'] as const) {
        const m = await measureApply(f, kind, target);
        durations[kind] = m.total;
        durations[kind === 'full' ? 'fullStartup' : 'deltaStartup'] = m.startup;
        log(`${kind}: uninterrupted apply onto ${target} takes ${m.total.toFixed(0)} ms (median of 3 after a warm-up, with node start-up); start-up to the end of the head ${m.startup.toFixed(0)} ms`);
      }
      // Full and delta cuts interleaved, so a slow machine phase hits both alike.
      // What v1 already holds of v2 (unchanged or zero regions): done before any apply.
      await writeAt(target, f.v1);
      const before = { full: await scan(core, target, f.payloads.full.manifest), delta: await scan(core, target, f.payloads.delta.manifest) };
      for (let cut = 0; cut < options.cuts * 2; cut++) {
        const kind = cut % 2 === 0 ? 'full' : 'delta';
        // One cut in six within the first ~100 ms; of the rest, half uniform over the whole
        // uninterrupted apply, half uniform over its part after the head (where it writes: node's
        // start-up alone takes most of a small apply).
        const total = durations[kind];
        const startup = Math.min(total, durations[kind === 'full' ? 'fullStartup' : 'deltaStartup']);
        const pick = rng.below(6);
        const delayMs = Math.round(pick === 0 ? rng.unit() * 100 : pick % 2 === 1 ? rng.unit() * total : startup + rng.unit() * (total - startup));
        const record = await oneCut(f, core, kind, target, cut, delayMs, before[kind]);
        summary.cuts.push(record);
        const line = `${kind.padEnd(5)} cut ${String(cut).padStart(3)} at ${String(delayMs).padStart(5)} ms: ${record.opsDoneAfterKill}/${record.operations} ops on target (${record.opsWrittenByKilled} written by the killed apply), resume fetched ${record.fetched} <= ${record.bound}${record.finishedBeforeKill ? ' (finished before the kill)' : ''}`;
        log(record.error ? `  FAIL ${line}: ${record.error}` : `  ok   ${line}`);
      }
    } finally {
      detachLoop(target);
    }
    if (options.gptKills > 0) summary.gpt = await gptRuns(dir, options.gptKills, rng, log, durations);
    return summary;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** The printed summary. */
export function formatSummary(s: PowercutSummary): string {
  const out: string[] = [];
  const mb = (n: number) => `${(n / MiB).toFixed(2)} MiB`;
  out.push(`power-cut summary (seed ${s.seed}, ${s.sizeMiB} MiB images; kill -9 of the real CLI, not a real power cut)`);
  out.push(`  uninterrupted: full apply ${s.durations.full.toFixed(0)} ms (start-up + head ${s.durations.fullStartup.toFixed(0)} ms), delta apply ${s.durations.delta.toFixed(0)} ms (start-up + head ${s.durations.deltaStartup.toFixed(0)} ms), gpt set-next ${s.durations.setNext.toFixed(0)} ms, gpt mark-good ${s.durations.markGood.toFixed(0)} ms`);
  out.push(`  payloads: full ${mb(s.payloadBytes.full)} / ${s.operations.full} ops, delta ${mb(s.payloadBytes.delta)} / ${s.operations.delta} ops`);
  const ok = s.cuts.filter((c) => !c.error);
  out.push(`  apply cuts: ${s.cuts.length}, survived ${ok.length} (byte-identical after resume, fetched <= bound)`);
  for (const kind of ['full', 'delta'] as const) {
    const cs = s.cuts.filter((c) => c.kind === kind);
    if (cs.length === 0) continue;
    const good = cs.filter((c) => !c.error);
    const fetched = cs.reduce((a, c) => a + Math.max(0, c.fetched), 0);
    const bound = cs.reduce((a, c) => a + c.bound, 0);
    const maxFetched = Math.max(...cs.map((c) => c.fetched));
    const maxRatio = Math.max(...cs.filter((c) => c.bound > 0 && c.fetched >= 0).map((c) => c.fetched / c.bound));
    const before = cs.filter((c) => c.finishedBeforeKill).length;
    const atHead = cs.filter((c) => c.opsWrittenByKilled === 0 && !c.finishedBeforeKill).length;
    const beyond = cs.filter((c) => c.refetchedBeyondOneOp > 0);
    const mid = cs.length - atHead - before;
    out.push(`    ${kind}: ${good.length}/${cs.length} survived; killed before writing any operation ${atHead}, mid-write ${mid}, finished before the kill ${before}`);
    out.push(`      fetched after resume: total ${mb(fetched)} vs bound ${mb(bound)} (max ${mb(maxFetched)}; max fetched/bound ${maxRatio.toFixed(4)})`);
    out.push(`      re-fetched data the killed process had certainly read, beyond one operation: ${beyond.length} cuts, max ${mb(Math.max(0, ...cs.map((c) => c.refetchedBeyondOneOp)))} (a lower bound; the exact read position of a killed process is not observable)`);
  }
  if (s.gpt.length > 0) {
    for (const command of ['set-next', 'mark-good'] as const) {
      const gs = s.gpt.filter((g) => g.command === command);
      const good = gs.filter((g) => !g.error);
      out.push(`  gpt ${command}: ${gs.length} kills, survived ${good.length}; old state ${gs.filter((g) => g.state === 'old').length}, new state ${gs.filter((g) => g.state === 'new').length}, repaired ${gs.filter((g) => g.repaired).length}, exited before the kill ${gs.filter((g) => g.exitedBeforeKill).length}`);
    }
  }
  const failures = [...s.cuts.filter((c) => c.error).map((c) => `${c.kind} cut ${c.cut} (seed ${s.seed}, kill at ${c.delayMs} ms): ${c.error}`), ...s.gpt.filter((g) => g.error).map((g) => `gpt ${g.command} run ${g.run} (seed ${s.seed}, kill at ${g.delayMs} ms): ${g.error}`)];
  out.push(failures.length === 0 ? '  RESULT: every cut survived' : `  RESULT: ${failures.length} FAILED`);
  for (const f of failures) out.push(`    ${f}`);
  return out.join('\n');
}

export function failuresOf(s: PowercutSummary): number {
  return s.cuts.filter((c) => c.error).length + s.gpt.filter((g) => g.error).length;
}
