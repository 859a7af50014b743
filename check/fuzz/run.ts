/**
 * `npm run fuzz [-- --count N] [--seed S] [--family raw|struct|gpt|all] [--case N] [--timeout MS]`:
 * mutates payloads and GPT disk images and feeds them to inspect, verify, apply, `gpt show` and
 * `gpt set-next` (check/fuzz/engine.ts). Progress on stderr, the summary on stdout; exits 1 on any
 * finding (crash, wrong code, hang, write before the signature checks out, RSS over the bound),
 * printing the seed and case number that reproduce it.
 */
import { formatSummary, runFuzz, RSS_BOUND_MIB, type Family } from './engine.js';

function parseArgs(argv: readonly string[]) {
  const o = { count: 100_000, seed: 1, family: 'all', only: undefined as number | undefined, timeout: 20_000, watchdog: 60_000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${arg} expects a non-negative integer, got ${argv[i]}`);
      return v;
    };
    if (arg === '--count') o.count = num();
    else if (arg === '--seed') o.seed = num();
    else if (arg === '--case') o.only = num();
    else if (arg === '--timeout') o.timeout = num();
    else if (arg === '--watchdog') o.watchdog = num();
    else if (arg === '--family') {
      o.family = argv[++i] ?? '';
      if (!['raw', 'struct', 'gpt', 'all'].includes(o.family)) throw new RangeError(`--family expects raw, struct, gpt or all, got ${o.family}`);
    } else throw new RangeError(`unknown argument "${arg}"; usage: npm run fuzz -- [--count N] [--seed S] [--family raw|struct|gpt|all] [--case N] [--timeout MS] [--watchdog MS]`);
  }
  return o;
}

const args = parseArgs(process.argv.slice(2));
const families: Family[] = args.family === 'all' ? ['raw', 'struct', 'struct', 'gpt'] : [args.family as Family];
process.stderr.write(`fuzz: ${args.only !== undefined ? `case ${args.only}` : `${args.count} cases`}, seed ${args.seed}, families ${families.join(',')}, RSS bound ${RSS_BOUND_MIB} MiB\n`);
const summary = await runFuzz({
  seed: args.seed,
  count: args.count,
  families,
  ...(args.only !== undefined ? { only: args.only } : {}),
  caseTimeoutMs: args.timeout,
  watchdogMs: args.watchdog,
  realPoolEvery: 250,
  log: (line) => process.stderr.write(`${line}\n`),
  onProgress: (done, total, s) =>
    process.stderr.write(`  ${done}/${total} cases, ${s.findings.length} findings, RSS peak ${s.peakRssMiB.toFixed(0)} MiB, ${((performance.now()) / 1000).toFixed(0)} s\n`),
});
process.stdout.write(`${formatSummary(summary, args.seed)}\n`);
process.exitCode = summary.findings.length > 0 ? 1 : 0;
