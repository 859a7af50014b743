/**
 * `npm run fleet -- [--machines N] [--max M] [--seed S] [--etcd URLS] [--json]`: the fleet
 * simulation (simulation.ts). Prints the timeline as it goes and the checks at the end; exits 0
 * when every check holds, 1 otherwise. The seed (random when not given) is printed first, so a
 * failing run is repeated with `--seed S`.
 */
import { parseEndpoints } from '../../src/fleet/endpoints.js';
import { tuneRuntime } from '../../src/runtime/tune.js';
import { runFleet } from './simulation.js';

function parseArgs(argv: readonly string[]) {
  const o = { machines: 10, max: 2, seed: Math.floor(Math.random() * 1e9), etcd: undefined as string[] | undefined, json: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${arg} needs a value`);
      return v;
    };
    const whole = (v: string, lo: number, hi: number) => {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < lo || n > hi) throw new RangeError(`${arg} expects a whole number ${lo}-${hi}, got "${v}"`);
      return n;
    };
    if (arg === '--machines') o.machines = whole(value(), 1, 100);
    else if (arg === '--max') o.max = whole(value(), 1, 100);
    else if (arg === '--seed') o.seed = whole(value(), 0, 2 ** 31);
    else if (arg === '--etcd') o.etcd = parseEndpoints(value());
    else if (arg === '--json') o.json = true;
    else if (arg === '--verbose') o.verbose = true;
    else throw new RangeError(`unknown argument "${arg}"; usage: npm run fleet -- [--machines N] [--max M] [--seed S] [--etcd URLS] [--json]`);
  }
  return o;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  tuneRuntime({ collections: true });
  process.stderr.write(`fleet: seed ${o.seed} (repeat with --seed ${o.seed})\n`);
  const report = await runFleet({ machines: o.machines, max: o.max, seed: o.seed, verbose: o.verbose, ...(o.etcd ? { etcd: o.etcd } : {}), log: o.json ? undefined : (l) => process.stdout.write(`${l}\n`) });
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`fleet: ${report.ok ? 'every check holds' : 'CHECKS FAILED'} in ${report.seconds.toFixed(1)} s (seed ${report.seed})\n`);
  process.exitCode = report.ok ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`fleet: ${err instanceof RangeError ? err.message : ((err as Error).stack ?? String(err))}\n`);
  process.exitCode = err instanceof RangeError ? 2 : 1;
});
