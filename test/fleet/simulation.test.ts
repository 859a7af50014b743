// The fleet simulation, short (npm run fleet runs it at any size): 10 machines on 2 reboot slots
// roll a good release out under every fault (an etcd member killed, the quorum lost for a while,
// a machine killed holding its slot, the update service restarted, one machine whose new slot
// never comes up healthy), then a bad release that must stop itself; checked from etcd's own
// history and the machines' disks.
import { describe, expect, it } from 'vitest';
import { runFleet } from '../../dist/check/fleet/simulation.js';
import { etcdMissing } from '../helpers/etcd.js';

const missing = etcdMissing();
if (missing) console.warn(`skipping the fleet simulation: ${missing}`);

describe.skipIf(missing !== undefined)('fleet simulation', () => {
  it('10 machines, 2 slots, every fault: every check holds, in bounded time', async () => {
    const report = await runFleet({ machines: 10, max: 2, seed: 20261205 });
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed, `seed ${report.seed}\n${report.timeline.join('\n')}`).toEqual([]);
    expect(report.checks.map((c) => c.name)).toHaveLength(5);
    expect(report.seconds).toBeLessThan(240);
  });
});
