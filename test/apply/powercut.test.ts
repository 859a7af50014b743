// Power cuts of the real CLI (check/powercut/engine.ts, `npm run powercut` for the long run): a
// full and a delta apply onto a loop device killed with SIGKILL at random points, then
// `apply --resume`: the target must read back byte-identical and the resume must fetch at most the
// head plus the data of the operations the target lacked after the kill; and `gpt set-next` /
// `gpt mark-good` killed at random points: the disk reads back (repaired if need be) in the old or
// the new state and stays bootable. SIGKILL keeps completed writes (page cache): this is not a
// sector-level power cut; that lives in test/disk/cycle.test.ts. Root only (loop devices).
import { describe, expect, it } from 'vitest';
import { failuresOf, formatSummary, runPowercut } from '../../dist/check/powercut/engine.js';
import { rootOrWarn } from '../helpers/payloads.js';

const canLoop = rootOrWarn('power-cut tests (kill -9 of apply and gpt on loop devices)');

describe('power cuts (kill -9) of the real CLI', () => {
  it.skipIf(!canLoop)('10 full + 10 delta apply cuts resume byte-identical within the bound; 10 gpt kills each stay old-or-new and bootable', async () => {
    const summary = await runPowercut({ cuts: 10, gptKills: 10, seed: 20240, sizeMiB: 16 });
    const report = formatSummary(summary);
    console.log(report);
    expect(summary.cuts).toHaveLength(20);
    expect(summary.gpt).toHaveLength(20);
    expect(failuresOf(summary), report).toBe(0);
    for (const c of summary.cuts) {
      expect(c.identical, `${c.kind} cut ${c.cut} at ${c.delayMs} ms`).toBe(true);
      expect(c.fetched, `${c.kind} cut ${c.cut} at ${c.delayMs} ms`).toBeLessThanOrEqual(c.bound);
    }
    for (const g of summary.gpt) {
      expect(['old', 'new'], `gpt ${g.command} run ${g.run} at ${g.delayMs} ms`).toContain(g.state);
      expect(g.bootable).toBe(true);
    }
  });
});
