// Issue 11, class 7: twelve signed SOURCE_DIFF operations, each at every per-operation limit
// (16 MiB of source, control, difference and output, brotli and the x86 filter), took `fastpatch
// verify` to 530-560 MiB peak RSS with 2 decode workers: the delta module's memory grew by 64 MiB per
// worker and was never returned, the filter copied each stream, zlib held each one twice, and no
// worker-side buffer was counted. The peak above the same process's baseline must stay under the
// bound the applier states (memoryBound, for verify), with 2 and with 4 workers. Peak RSS is the
// kernel's VmHWM of the child process, read as it exits: memory, not speed.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryBound, PIPELINE_BYTES } from '../../dist/src/apply/applier.js';
import { DecodePool } from '../../dist/src/apply/decode-pool.js';
import { CLI_PATH } from '../helpers/cli.js';
import { writeHeavyDeflate, writeHeavyDelta, type HeavyDelta } from '../helpers/heavy-diff.js';
import { MiB, buildPayload, chunksOf, makeKeyPair, removeDir, tempDir, textBytes, type BuiltPayload } from '../helpers/payloads.js';
import { applyPayload, formatPublicKey, parseKey, type PublicKey } from '../../dist/src/index.js';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';

/** The CLI to measure (FASTPATCH_CLI: another build, e.g. the one before a fix). */
const cli = process.env['FASTPATCH_CLI'] ?? CLI_PATH;
let dir: string;
let heavy: HeavyDelta;
let heavyStored: HeavyDelta;
let controlOnly: HeavyDelta;
let deflate: Omit<HeavyDelta, 'sourcePath'>;
let small: BuiltPayload;
let smallKey: string;

beforeAll(async () => {
  if (!existsSync('/proc/self/status')) return;
  dir = await tempDir('worker-memory');
  heavy = await writeHeavyDelta(await fsp.mkdtemp(join(dir, 'b-')), 12);
  heavyStored = await writeHeavyDelta(await fsp.mkdtemp(join(dir, 's-')), 12, { storedControl: true });
  controlOnly = await writeHeavyDelta(await fsp.mkdtemp(join(dir, 'c-')), 24, { outputBytes: 4096 });
  deflate = await writeHeavyDeflate(await fsp.mkdtemp(join(dir, 'd-')), 12);
  const signer = makeKeyPair();
  small = await buildPayload(dir, 'small', textBytes(4 * MiB, 3), { keys: [signer.key] });
  smallKey = join(dir, 'small.pub');
  await fsp.writeFile(smallKey, formatPublicKey(signer.pub));
}, 300_000);
afterAll(() => removeDir(dir));

/** Runs the CLI with `args` and `workers` decode workers; resolves with its exit code, stderr and VmHWM in bytes. */
function peakOf(args: string[], workers: number): Promise<{ code: number | null; stderr: string; peak: number }> {
  // The CLI runs inside a wrapper that reads its own VmHWM as the process exits (threads included).
  const wrapper = `process.on('exit', () => { const s = require('fs').readFileSync('/proc/self/status', 'utf8'); process.stderr.write('VmHWM ' + /VmHWM:\\s+(\\d+)/.exec(s)[1] + '\\n'); });
process.argv.splice(1, 0, ${JSON.stringify(cli)}); import(${JSON.stringify(cli)});`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', wrapper, ...args], { env: { ...process.env, FASTPATCH_DECODE_WORKERS: String(workers) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /VmHWM (\d+)/.exec(stderr);
      if (!m) return reject(new Error(`no VmHWM from the child (exit ${code}): ${stderr}`));
      resolve({ code, stderr, peak: Number(m[1]) * 1024 });
    });
  });
}

const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;

const hasProc = existsSync('/proc/self/status');
if (!hasProc) console.warn('worker-memory: skipped: no /proc/self/status to read VmHWM from (Linux only)');

describe.skipIf(!hasProc)('peak memory of verify on SOURCE_DIFF operations at every limit', { timeout: 600_000 }, () => {
  for (const workers of [2, 4]) {
    it(`${workers} decode workers: peak above the baseline stays under memoryBound`, async () => {
      const base = await peakOf(['verify', small.payloadPath, '--pubkey', smallKey], workers);
      expect(base.code, base.stderr).toBe(0);
      const names = new Map<Omit<HeavyDelta, 'sourcePath'> & { sourcePath?: string }, string>([
        [heavy, 'every limit, brotli control'], [heavyStored, 'every limit, stored control'], [controlOnly, '16 MiB control, 4 KiB output'], [deflate, 'REPLACE_DEFLATE of 16 MiB'],
      ]);
      for (const [payload, name] of names) {
        const source = payload.sourcePath ? ['--source', payload.sourcePath] : [];
        const run = await peakOf(['verify', payload.payloadPath, '--pubkey', payload.pubkeyPath, ...source], workers);
        expect(run.code, run.stderr).toBe(0);
        const above = run.peak - base.peak;
        const manifestBytes = (await fsp.readFile(payload.payloadPath)).readUInt32LE(12);
        const bound = memoryBound({ manifestBytes, writes: false, workers });
        process.stderr.write(`worker-memory: ${workers} workers, ${name}: peak ${mib(run.peak)}, baseline ${mib(base.peak)}, above ${mib(above)} (bound ${mib(bound)})\n`);
        expect.soft(above, name).toBeLessThan(bound);
      }
    });
  }
});

describe('the window counts the buffers of operations sent to the workers', () => {
  it('REPLACE_DEFLATE operations of 16 MiB: the jobs in flight never hold more than the window allows', { timeout: 300_000 }, async () => {
    const own = await tempDir('window');
    const original = DecodePool.prototype.decode;
    let held = 0;
    let peak = 0;
    try {
      const payload = await writeHeavyDeflate(own, 16);
      const pub = parseKey(await fsp.readFile(payload.pubkeyPath, 'utf8'));
      // Bytes each job carries, read before the transfer empties them.
      DecodePool.prototype.decode = async function (this: DecodePool, job: Parameters<DecodePool['decode']>[0]) {
        const bytes = job.blob.buffer.byteLength + (job.out?.buffer.byteLength ?? 0) + (job.source?.buffer.byteLength ?? 0);
        held += bytes;
        peak = Math.max(peak, held);
        try {
          return await original.call(this, job);
        } finally {
          held -= bytes;
        }
      };
      await applyPayload(chunksOf(await fsp.readFile(payload.payloadPath), MiB), { trustedKeys: [pub as PublicKey], decodeWorkers: 2 });
    } finally {
      DecodePool.prototype.decode = original;
      await removeDir(own);
    }
    // At most PIPELINE_BYTES and one more operation, or two operations (3 × 16 MiB each at most).
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(Math.max(PIPELINE_BYTES, 48 * MiB) + 48 * MiB);
  });
});
