/**
 * The fuzz engine behind `npm run fuzz` and test/fuzz/payload-fuzz.test.ts: mutates valid payloads
 * and GPT disk images and feeds them to inspect, verify, apply, `gpt show` and `gpt set-next`. Every
 * case must end in success (only where the mutation was harmless, and then with the image the
 * manifest claims) or a FastPatchError with a known code and its documented exit code, within a
 * time limit and under the RSS bound; nothing may be written to the target unless the payload's
 * head is signed by a trusted key and validates. Anything else is a finding, reported with the
 * seed and case number that reproduce it (`npm run fuzz -- --seed S --case N`).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DecodePool } from '../../src/apply/decode-pool.js';
import type { Decoded, DecodeJob } from '../../src/apply/decode.js';
import { applyPayload } from '../../src/apply/applier.js';
import { inspectPayload } from '../../src/apply/inspect.js';
import { ERROR_CODES, FastPatchError } from '../../src/errors.js';
import { BLOCK_SIZE, HEADER_SIZE } from '../../src/format/constants.js';
import { generateDeltaPayload } from '../../src/generate/delta.js';
import { generateFullPayload } from '../../src/generate/generator.js';
import { getSlotBits } from '../../src/gpt/attributes.js';
import { grubNext, vbootNext } from '../../src/gpt/boot-model.js';
import { PARTITION_TYPES } from '../../src/gpt/guid.js';
import { setNext } from '../../src/gpt/prioritize.js';
import { isUsed } from '../../src/gpt/table.js';
import { changeSlots, createFlatcarDisk, findSlot, readDiskGpt } from '../../src/disk/transaction.js';
import { generateKey, publicKeyOf, type PrivateKey, type PublicKey } from '../../src/sign/keys.js';
import { DISK_SIZE, EDGE, mutateGpt, writeDisk, type GptTemplate } from './gpt.js';
import { mutateRaw, mutateStruct } from './mutate.js';
import { assembleLoose, blockListHashRef, headValidates, looseFromPayload, type LooseManifest } from './payload.js';
import { caseSeed, Rng } from './rng.js';
import { tuneRuntime } from '../../src/runtime/tune.js';

export type Family = 'raw' | 'struct' | 'gpt';
export const FAMILIES: readonly Family[] = ['raw', 'struct', 'gpt'];

/**
 * Peak RSS allowed for the whole fuzz process (main thread, decode workers, everything). The fuzz
 * payloads are small (their images are a few MiB), so this stays under the applier's worst case
 * (memoryBound in src/apply/applier.ts, with the baseline); test/apply/worker-memory.test.ts
 * measures that one with payloads at every per-operation limit.
 */
export const RSS_BOUND_MIB = 512;

export interface FuzzOptions {
  seed: number;
  count: number;
  /** Families cycled through (case n runs families[n % length]). */
  families: readonly Family[];
  /** Run only this case number (to reproduce a finding). */
  only?: number;
  /** Per-case time limit for async work, ms. */
  caseTimeoutMs?: number;
  /** A blocked main thread (a synchronous hang) kills the process after this many ms. 0: no watchdog. */
  watchdogMs?: number;
  rssBoundMiB?: number;
  /** Use a fresh decode pool per apply (as the CLI does) instead of one shared pool, every N cases; 0: never. */
  realPoolEvery?: number;
  /** Stop at the first finding. */
  stopOnFinding?: boolean;
  onProgress?: (done: number, total: number, s: FuzzSummary) => void;
  log?: (line: string) => void;
}

export interface Finding {
  seed: number;
  caseNo: number;
  family: Family;
  action: string;
  mutation: string;
  problem: string;
}

export interface FuzzSummary {
  cases: number;
  /** Outcome counts: "family/action: CODE" or "...: ok". */
  outcomes: Record<string, number>;
  findings: Finding[];
  /** Known, reported issues (see KNOWN_ISSUES): counted, not findings. */
  known: Record<string, number>;
  peakRssMiB: number;
  maxRssMiB: number;
  rssBoundMiB: number;
  seconds: number;
}

/**
 * Issues found by this harness whose fix lies in files this harness's author could not change.
 * Each is counted under its name instead of failing the run.
 */
export const KNOWN_ISSUES: { name: string; family: Family; action: string; match: (err: unknown) => boolean }[] = [
  // Empty: set-next on a non-slot partition threw RangeError (exit 1); it is now a USAGE error.
];

const RAW_CODES = new Set(['BAD_SIGNATURE', 'UNTRUSTED_KEY', 'CORRUPT_PAYLOAD', 'TRUNCATED_PAYLOAD']);
const DATA_CODES = new Set(['HASH_MISMATCH', 'CORRUPT_PAYLOAD', 'TRUNCATED_PAYLOAD']);
const STRUCT_CODES = new Set(['BAD_SIGNATURE', 'UNTRUSTED_KEY', 'CORRUPT_PAYLOAD', 'TRUNCATED_PAYLOAD', 'HASH_MISMATCH', 'SOURCE_MISMATCH', 'TARGET_TOO_SMALL']);
const GPT_CODES = new Set(['GPT_CORRUPT', 'GPT_UNSAFE', 'USAGE']);

// ---------------------------------------------------------------------------------------------
// Fixtures

interface Base {
  name: 'full' | 'delta';
  payload: Buffer;
  dataStart: number;
  loose: LooseManifest;
  targetSize: number;
  targetBlocks: number;
  sourceBlocks: number;
  /** The target file, pre-filled with `pattern`. */
  targetPath: string;
  pattern: Buffer;
}

interface Fixtures {
  dir: string;
  key: PrivateKey;
  pub: PublicKey;
  untrusted: PrivateKey;
  bases: Base[];
  sourcePath: string;
  sourceHash: string;
  gpt: GptTemplate;
  diskPath: string;
}

function image(rng: Rng, size: number): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const kind = rng.below(4);
    const len = Math.min(size - at, rng.between(1, 12) * BLOCK_SIZE + (rng.chance(0.2) ? rng.below(BLOCK_SIZE) : 0));
    if (kind === 0) out.set(rng.bytes(len), at);
    else if (kind === 1) for (let i = 0; i < len; i++) out[at + i] = 'boot kernel module update '.charCodeAt((at + i) % 26);
    else if (kind === 2) out.fill(0, at, at + Math.min(len + 16 * BLOCK_SIZE, size - at)); // long zero run: ZERO ops
    else out.fill(rng.below(256), at, at + len);
    at += kind === 2 ? Math.min(len + 16 * BLOCK_SIZE, size - at) : len;
  }
  return out;
}

function pattern(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = ((i % 251) ^ 0x5a ^ (i >>> 12)) | 1;
  return out;
}

async function makeFixtures(): Promise<Fixtures> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'fastpatch-fuzz-'));
  const key = generateKey();
  const untrusted = generateKey();
  const rng = new Rng(0xf00d);
  // Full: 192 KiB + a partial block, so the last block is short.
  const fullImage = image(rng, 192 * 1024 + 1000);
  await fsp.writeFile(join(dir, 'full.img'), fullImage);
  await generateFullPayload({ target: join(dir, 'full.img'), keys: [key], version: '1.0.0', out: join(dir, 'full.fpay') });
  // Delta: a source and a target made from it by edits and moved blocks, so the payload has
  // SOURCE_COPY and SOURCE_DIFF operations.
  const source = image(rng, 160 * 1024);
  const target = Buffer.from(source);
  for (let i = 0; i < 40; i++) target[rng.below(target.length)] = rng.below(256);
  target.copy(target, 64 * 1024, 8 * 1024, 24 * 1024);
  const deltaTarget = Buffer.concat([target, rng.bytes(5 * 1024 + 300)]);
  const sourcePath = join(dir, 'source.img');
  await fsp.writeFile(sourcePath, source);
  await fsp.writeFile(join(dir, 'delta-target.img'), deltaTarget);
  await generateDeltaPayload({ source: sourcePath, target: join(dir, 'delta-target.img'), keys: [key], version: '2.0.0', sourceVersion: '1.0.0', out: join(dir, 'delta.fpay'), workers: 1 });
  const bases: Base[] = [];
  for (const [name, imageBytes] of [['full', fullImage], ['delta', deltaTarget]] as const) {
    const payload = await fsp.readFile(join(dir, `${name}.fpay`));
    const v = new DataView(payload.buffer, payload.byteOffset, HEADER_SIZE);
    const loose = looseFromPayload(payload);
    const targetPath = join(dir, `${name}.target`);
    const pat = pattern(imageBytes.length);
    await fsp.writeFile(targetPath, pat);
    bases.push({
      name, payload, dataStart: HEADER_SIZE + v.getUint32(12, true) + v.getUint32(16, true), loose,
      targetSize: imageBytes.length, targetBlocks: Math.ceil(imageBytes.length / BLOCK_SIZE), sourceBlocks: Math.ceil(source.length / BLOCK_SIZE),
      targetPath, pattern: pat,
    });
  }
  const template = join(dir, 'template.disk');
  await createFlatcarDisk(template, { size: DISK_SIZE });
  const disk = await fsp.readFile(template);
  await fsp.rm(template);
  return {
    dir, key, pub: publicKeyOf(key), untrusted, bases, sourcePath, sourceHash: sha(source),
    gpt: { head: disk.subarray(0, EDGE), tail: disk.subarray(DISK_SIZE - EDGE) }, diskPath: join(dir, 'fuzz.disk'),
  };
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Op types, for the fuzz log: how many of each the bases carry. */
export function describeBases(f: { bases: { name: string; loose: LooseManifest }[] }): string {
  return f.bases.map((b) => `${b.name}: ${b.loose.ops.map((o) => o.type).join(',')}`).join('; ');
}

// ---------------------------------------------------------------------------------------------
// Shared decode pool

/**
 * applyPayload starts a decode pool (one worker per core) per call; 100,000 calls would spend most
 * of their time starting workers. DecodePool's methods are routed to one shared pool instead,
 * except every `realPoolEvery` cases, which keep the per-apply pool as the CLI uses it. The applier
 * awaits every job it started before applyPayload returns, so no job of a case outlives it.
 */
class SharedDecode {
  private pool: DecodePool | undefined;
  private readonly original = DecodePool.prototype.decode;
  active = true;

  install(): void {
    const self = this;
    const original = this.original;
    DecodePool.prototype.decode = function (this: DecodePool, job: DecodeJob): Promise<Decoded> {
      if (!self.active) return original.call(this, job);
      // One long-lived pool, through DecodePool's own decode: its memory budget holds here too.
      self.pool ??= new DecodePool('release');
      return original.call(self.pool, job);
    };
  }

  /** A pool whose worker died fails all later jobs: replace it (the death itself is a finding). */
  async reset(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  async uninstall(): Promise<void> {
    DecodePool.prototype.decode = this.original;
    await this.reset();
  }
}

// ---------------------------------------------------------------------------------------------
// Cases

interface Outcome {
  action: string;
  mutation: string;
  /** 'ok' or the FastPatchError code. */
  result: string;
  problem?: string;
  known?: string;
}

async function* chunked(rng: Rng, bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  const mode = rng.below(3);
  if (mode === 0 || bytes.length === 0) {
    if (bytes.length > 0) yield bytes;
    return;
  }
  const max = mode === 1 ? rng.between(1, 64) : rng.between(512, 64 * 1024);
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, rng.between(1, max));
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

function classify(err: unknown, allowed: ReadonlySet<string>): { result: string; problem?: string } {
  if (err instanceof FastPatchError) {
    if (!allowed.has(err.code)) return { result: err.code, problem: `unexpected code ${err.code}: ${err.message}` };
    if (err.exitCode !== ERROR_CODES[err.code]) return { result: err.code, problem: `exit code ${err.exitCode} for ${err.code}` };
    return { result: err.code };
  }
  const e = err as Error;
  return { result: 'EXCEPTION', problem: `not a FastPatchError: ${e?.name ?? typeof err}: ${e?.message ?? String(err)}${e?.stack ? `\n${e.stack.split('\n').slice(1, 6).join('\n')}` : ''}` };
}

async function resetTarget(b: Base): Promise<void> {
  await fsp.writeFile(b.targetPath, b.pattern);
}

/** Runs one payload through inspect, verify or apply and checks the outcome. */
async function runPayload(
  f: Fixtures, rng: Rng, b: Base, bytes: Uint8Array,
  expect: { allowed: ReadonlySet<string>; headChanged: boolean; mayWrite: boolean; successOk: boolean; inspectSuccessOk: boolean },
  mutation: string,
): Promise<Outcome> {
  const action = rng.pick(['inspect', 'verify', 'apply', 'apply']);
  const out: Outcome = { action: `${b.name}/${action}`, mutation, result: 'ok' };
  let result: { targetHash: string; targetSize: number } | undefined;
  try {
    if (action === 'inspect') {
      await inspectPayload(chunked(rng, bytes), [f.pub]);
      if (!expect.inspectSuccessOk) out.problem = 'inspect accepted a payload whose signed head changed';
      return out;
    }
    result = await applyPayload(chunked(rng, bytes), {
      trustedKeys: [f.pub],
      source: f.sourcePath,
      ...(action === 'apply' ? { target: b.targetPath } : {}),
      ...(rng.chance(0.2) ? { checkSource: true } : {}),
    });
    if (!expect.successOk) out.problem = `${action} succeeded on a mutated payload`;
  } catch (err) {
    const c = classify(err, expect.allowed);
    out.result = c.result;
    if (c.problem) out.problem = c.problem;
  }
  if (action === 'apply') {
    const now = await fsp.readFile(b.targetPath);
    if (result) {
      // Success: the target holds what the manifest claims, the rest of the file is untouched.
      const claimed = Buffer.from(result.targetHash, 'hex');
      if (now.length < result.targetSize || Buffer.compare(blockListHashRef(now.subarray(0, result.targetSize)), claimed) !== 0) {
        out.problem ??= 'apply succeeded but the target does not hash to the signed image hash';
      }
      if (Buffer.compare(now.subarray(result.targetSize), b.pattern.subarray(result.targetSize)) !== 0) out.problem ??= 'apply wrote past the image';
    } else if (!expect.mayWrite && Buffer.compare(now, b.pattern) !== 0) {
      out.problem ??= `target changed although the payload ${expect.headChanged ? 'head was changed' : 'head does not validate'} (${out.result})`;
    } else if (now.length !== b.pattern.length) {
      out.problem ??= `target size changed from ${b.pattern.length} to ${now.length}`;
    }
    if (Buffer.compare(now, b.pattern) !== 0) await resetTarget(b);
  }
  return out;
}

async function rawCase(f: Fixtures, rng: Rng): Promise<Outcome> {
  const b = rng.pick(f.bases);
  const { bytes, what } = mutateRaw(rng, b.payload, b.dataStart);
  const same = Buffer.compare(bytes, b.payload) === 0;
  const headChanged = bytes.length < b.dataStart || Buffer.compare(bytes.subarray(0, b.dataStart), b.payload.subarray(0, b.dataStart)) !== 0;
  return runPayload(f, rng, b, bytes, {
    allowed: headChanged ? RAW_CODES : DATA_CODES,
    headChanged,
    // A changed data section is found operation by operation: earlier operations are written.
    mayWrite: !headChanged,
    successOk: same,
    inspectSuccessOk: !headChanged,
  }, what);
}

async function structCase(f: Fixtures, rng: Rng): Promise<Outcome> {
  const b = rng.pick(f.bases);
  const s = mutateStruct(rng, b.loose, b.targetBlocks, b.sourceBlocks);
  let a;
  try {
    a = assembleLoose(s.m, s.h, [s.untrusted ? f.untrusted : f.key], s.rawSignatures);
  } catch (err) {
    return { action: `${b.name}/assemble`, mutation: s.what.join(', '), result: 'EXCEPTION', problem: `harness could not assemble: ${String(err)}` };
  }
  const signedOk = !s.untrusted && s.rawSignatures === undefined;
  const valid = signedOk && headValidates(a).ok;
  return runPayload(f, rng, b, a.bytes, {
    allowed: STRUCT_CODES,
    headChanged: false,
    // Only a head that is signed by a trusted key and validates may lead to writes.
    mayWrite: valid,
    successOk: valid,
    inspectSuccessOk: valid,
  }, s.what.join(', '));
}

async function gptCase(f: Fixtures, rng: Rng): Promise<Outcome[]> {
  const g = mutateGpt(rng, f.gpt);
  const mutation = g.what.join(', ');
  await writeDisk(f.diskPath, g);
  const outcomes: Outcome[] = [];
  // `gpt show`
  const show: Outcome = { action: 'gpt/show', mutation, result: 'ok' };
  try {
    const result = await readDiskGpt(f.diskPath);
    const entries = result.table ? result.table.entries.filter((e) => e.typeGuid !== PARTITION_TYPES.UNUSED) : [];
    grubNext(entries);
    vbootNext(entries);
    for (const e of entries) getSlotBits(e.attributes);
    JSON.stringify({ problems: result.problems, partitions: entries.map((e) => ({ ...e, attributes: e.attributes.toString(16) })) });
  } catch (err) {
    const c = classify(err, GPT_CODES);
    show.result = c.result;
    if (c.problem) show.problem = c.problem;
  }
  outcomes.push(show);
  // `gpt set-next 4`
  const next: Outcome = { action: 'gpt/set-next', mutation, result: 'ok' };
  const before = await fsp.stat(f.diskPath, { bigint: true });
  try {
    await changeSlots(f.diskPath, (entries) => setNext(entries, findSlot(entries, '4').index) as typeof entries);
    const after = await readDiskGpt(f.diskPath);
    const e4 = after.table?.entries.filter(isUsed).find((e) => e.index === 4);
    if (after.problems.length > 0) next.problem = `set-next succeeded but left problems: ${after.problems[0]!.message}`;
    else if (!e4 || getSlotBits(e4.attributes).tries !== 1 || getSlotBits(e4.attributes).successful) next.problem = 'set-next succeeded but partition 4 is not tries=1, successful=0';
  } catch (err) {
    const known = KNOWN_ISSUES.find((k) => k.family === 'gpt' && k.action === 'set-next' && k.match(err));
    if (known) {
      next.result = 'KNOWN';
      next.known = known.name;
    } else {
      const c = classify(err, GPT_CODES);
      next.result = c.result;
      if (c.problem) next.problem = c.problem;
    }
    // A refused change writes nothing.
    const stat = await fsp.stat(f.diskPath, { bigint: true });
    const fd = await fsp.open(f.diskPath, 'r');
    try {
      const head = Buffer.alloc(Math.min(EDGE, g.size));
      await fd.read(head, 0, head.length, 0);
      if (stat.mtimeNs !== before.mtimeNs || stat.size !== before.size || Buffer.compare(head, Buffer.from(g.head.subarray(0, head.length))) !== 0) {
        next.problem ??= `set-next failed (${next.result}) but changed the disk`;
      }
    } finally {
      await fd.close();
    }
  }
  outcomes.push(next);
  return outcomes;
}

// ---------------------------------------------------------------------------------------------
// Watchdog and the run loop

/**
 * A thread that kills the process when the main thread stops beating for `ms` (a synchronous
 * hang, which no timer on the main thread can see), after writing the case to stderr directly.
 */
function startWatchdog(ms: number, seed: number): { beat: (caseNo: number) => void; stop: () => Promise<number> } {
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const fs = require('node:fs');
     const a = new Int32Array(workerData.sab);
     let last = Atomics.load(a, 1), since = Date.now();
     setInterval(() => {
       const v = Atomics.load(a, 1);
       if (v !== last) { last = v; since = Date.now(); return; }
       if (Date.now() - since > workerData.ms) {
         fs.writeSync(2, '\\nFUZZ FINDING: hang: the main thread has been blocked for ' + workerData.ms + ' ms in case ' + Atomics.load(a, 0) + ' (reproduce: npm run fuzz -- --seed ' + workerData.seed + ' --case ' + Atomics.load(a, 0) + ')\\n');
         process.kill(process.pid, 'SIGKILL');
       }
     }, 250);`,
    { eval: true, workerData: { sab: shared.buffer, ms, seed } },
  );
  worker.unref();
  const timer = setInterval(() => Atomics.add(shared, 1, 1), 100);
  timer.unref();
  return {
    beat: (caseNo) => {
      Atomics.store(shared, 0, caseNo);
      Atomics.add(shared, 1, 1);
    },
    stop: async () => {
      clearInterval(timer);
      return worker.terminate();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))]).finally(() => clearTimeout(timer));
}

/** Runs the fuzz cases; never throws for a finding (they are in the summary). */
export async function runFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  // Its memory bound (RSS_BOUND_MIB) was measured with the collections the applier once set itself.
  tuneRuntime({ collections: true });
  const started = performance.now();
  const bound = options.rssBoundMiB ?? RSS_BOUND_MIB;
  const timeout = options.caseTimeoutMs ?? 20_000;
  const log = options.log ?? (() => {});
  const summary: FuzzSummary = { cases: 0, outcomes: {}, findings: [], known: {}, peakRssMiB: 0, maxRssMiB: 0, rssBoundMiB: bound, seconds: 0 };
  const fixtures = await makeFixtures();
  log(`fixtures in ${fixtures.dir}; operation types: ${describeBases(fixtures)}`);
  const shared = new SharedDecode();
  shared.install();
  const watchdog = options.watchdogMs ? startWatchdog(options.watchdogMs, options.seed) : undefined;
  const sampler = setInterval(() => (summary.peakRssMiB = Math.max(summary.peakRssMiB, process.memoryUsage.rss() / 2 ** 20)), 50);
  sampler.unref();
  const sourceBefore = fixtures.sourceHash;
  try {
    const first = options.only ?? 0;
    const last = options.only !== undefined ? options.only + 1 : options.count;
    for (let n = first; n < last; n++) {
      watchdog?.beat(n);
      const family = options.families[n % options.families.length]!;
      const rng = new Rng(caseSeed(options.seed, n));
      shared.active = !(options.realPoolEvery && n % options.realPoolEvery === 0);
      const work = family === 'raw' ? rawCase(fixtures, rng).then((o) => [o]) : family === 'struct' ? structCase(fixtures, rng).then((o) => [o]) : gptCase(fixtures, rng);
      const outcomes = await withTimeout(work.catch((err): Outcome[] => [{ action: `${family}/harness`, mutation: '?', result: 'EXCEPTION', problem: `harness error: ${(err as Error)?.stack ?? String(err)}` }]), timeout);
      const finding = (action: string, mutation: string, problem: string) => {
        summary.findings.push({ seed: options.seed, caseNo: n, family, action, mutation, problem });
        log(`FUZZ FINDING: case ${n} (reproduce: npm run fuzz -- --seed ${options.seed} --case ${n}) ${family} ${action}: ${problem}\n  mutation: ${mutation}`);
      };
      if (outcomes === 'timeout') {
        finding('?', '?', `hang: no outcome within ${timeout} ms`);
        break; // the case still runs and may touch the fixtures: stop here
      }
      for (const o of outcomes) {
        const key = `${family} ${o.action}: ${o.result}`;
        summary.outcomes[key] = (summary.outcomes[key] ?? 0) + 1;
        if (o.known) summary.known[o.known] = (summary.known[o.known] ?? 0) + 1;
        if (o.problem) {
          finding(o.action, o.mutation, o.problem);
          if (/decode worker/.test(o.problem)) await shared.reset();
        }
      }
      const rss = process.memoryUsage.rss() / 2 ** 20;
      summary.peakRssMiB = Math.max(summary.peakRssMiB, rss);
      if (rss > bound) finding('-', '-', `RSS ${rss.toFixed(0)} MiB over the ${bound} MiB bound`);
      summary.cases++;
      if (options.stopOnFinding && summary.findings.length > 0) break;
      if (options.onProgress && (n + 1) % 500 === 0) options.onProgress(n + 1 - first, last - first, summary);
    }
    const sourceAfter = sha(await fsp.readFile(fixtures.sourcePath));
    if (sourceAfter !== sourceBefore) summary.findings.push({ seed: options.seed, caseNo: -1, family: 'struct', action: 'apply', mutation: '-', problem: 'the delta source image changed' });
  } finally {
    clearInterval(sampler);
    await watchdog?.stop();
    await shared.uninstall();
    await fsp.rm(fixtures.dir, { recursive: true, force: true });
  }
  summary.peakRssMiB = Math.max(summary.peakRssMiB, process.memoryUsage.rss() / 2 ** 20);
  summary.maxRssMiB = process.resourceUsage().maxRSS / 1024;
  if (summary.maxRssMiB > bound) summary.findings.push({ seed: options.seed, caseNo: -1, family: options.families[0]!, action: '-', mutation: '-', problem: `maxRSS ${summary.maxRssMiB.toFixed(0)} MiB over the ${bound} MiB bound` });
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/** The summary as text lines. */
export function formatSummary(s: FuzzSummary, seed: number): string {
  const lines = [`fuzz: ${s.cases} cases (seed ${seed}) in ${s.seconds.toFixed(1)} s (${(s.cases / s.seconds).toFixed(0)} cases/s)`, 'outcomes:'];
  for (const [k, v] of Object.entries(s.outcomes).sort()) lines.push(`  ${String(v).padStart(7)}  ${k}`);
  for (const [k, v] of Object.entries(s.known)) lines.push(`known issue (reported, not a finding): ${v}× ${k}`);
  lines.push(`peak RSS: ${s.peakRssMiB.toFixed(0)} MiB sampled, ${s.maxRssMiB.toFixed(0)} MiB maxRSS (bound ${s.rssBoundMiB} MiB)`);
  lines.push(s.findings.length === 0 ? 'findings: none' : `FINDINGS: ${s.findings.length}`);
  for (const f of s.findings.slice(0, 20)) lines.push(`  case ${f.caseNo} (npm run fuzz -- --seed ${f.seed} --case ${f.caseNo}) ${f.family} ${f.action}: ${f.problem.split('\n')[0]}\n    mutation: ${f.mutation}`);
  return lines.join('\n');
}
