/**
 * A short fixed-seed run of the fuzz harness (check/fuzz/engine.ts; `npm run fuzz` runs 100,000
 * cases): mutated payloads through inspect, verify and apply, mutated GPT images through `gpt show`
 * and `gpt set-next`. Every case must end in success or a FastPatchError with a known code, with
 * nothing written before the signature checks out, within time and under the RSS bound. Like the
 * other suites it runs the built code in dist/ (the decode workers are compiled files).
 */
import { describe, expect, it } from 'vitest';
import { formatSummary, runFuzz, RSS_BOUND_MIB } from '../../dist/check/fuzz/engine.js';
import { readGpt } from '../../dist/src/gpt/table.js';

describe('fuzz: hostile payloads and GPT images', () => {
  it('1500 fixed-seed cases end in success or a known FastPatchError, under the RSS bound', async () => {
    const summary = await runFuzz({ seed: 20240611, count: 1500, families: ['raw', 'struct', 'struct', 'gpt'], caseTimeoutMs: 20_000, realPoolEvery: 100 });
    const text = formatSummary(summary, 20240611);
    expect(summary.findings, text).toEqual([]);
    expect(summary.cases).toBe(1500);
    expect(summary.peakRssMiB, text).toBeLessThan(RSS_BOUND_MIB);
    // The run reached past the signature check: structural mutations were parsed, applied and refused.
    const keys = Object.keys(summary.outcomes).join('\n');
    for (const code of ['BAD_SIGNATURE', 'CORRUPT_PAYLOAD', 'HASH_MISMATCH', 'TRUNCATED_PAYLOAD', 'GPT_CORRUPT']) expect(keys, text).toContain(code);
    expect(keys, text).toMatch(/struct (full|delta)\/apply: ok/);
  }, 170_000);
});

describe('fuzz regressions', () => {
  it('readGpt reports a disk of fewer than 3 sectors instead of throwing RangeError', () => {
    for (const sectors of [0, 1, 2]) {
      const disk = new Uint8Array(sectors * 512);
      const result = readGpt((lba, count) => disk.subarray(lba * 512, (lba + count) * 512), 512, sectors);
      expect(result.table).toBeUndefined();
      expect(result.problems[0]?.severity).toBe('invalid');
      expect(result.problems[0]?.message).toMatch(/too small for a GPT/);
    }
    // A bad sector size is still an argument error.
    expect(() => readGpt(() => new Uint8Array(0), 1000, 1)).toThrow(RangeError);
  });
});
