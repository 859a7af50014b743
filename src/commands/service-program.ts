/**
 * The definitions of the update-service commands (`release ...`, `serve`, `check`), kept beside
 * cli.ts so that file stays readable; each action lazy-loads its module, as cli.ts does.
 */
import { Option, type Command } from 'commander';
import { addDeviceOptions, collect, parseDuration, parseInteger, parsePercent } from './parse.js';

/** Adds `release init|add|promote|list`, `serve` and `check` to `program`. */
export function addServiceCommands(program: Command): void {
  addReleaseCommands(program);
  addRolloutCommands(program);
  program
    .command('serve')
    .description('the update service: Omaha at /v1/update/ for devices, payloads with Range, rollout state in SQLite')
    .argument('<repo>', 'release repository to serve')
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:8080')
    .option(STATE[0], 'SQLite database of rollout policy, machines and events (created if missing)', STATE[2])
    .option('--base-url <url>', 'public URL of the repository folder, when payloads are served from elsewhere (a CDN)')
    .option('--pubkey <file>', "key the channel documents must be signed by (repeatable; default: the repository's keys)", collect)
    .option('--app-id <id>', 'Omaha app id to serve (repeatable; default the CoreOS one)', collect)
    .addOption(new Option('--max-machines <n>', 'most machines recorded; new ones past it get an error status (default 1000000)').argParser((v) => parseInteger(v, '--max-machines')))
    .action(async (dir, opts) => (await import('./serve.js')).run(dir, opts));
  addDeviceOptions(program
    .command('check')
    .description('one update cycle of a device: ask the update service, install an offered payload into the passive slot, report each step'))
    .option('--json', 'print the result as JSON')
    .action(async (opts) => (await import('./check.js')).run({ ...opts, verbose: program.opts().verbose }));
}

const STATE = ['--state <file>', 'the update service\'s state database (as `serve --state`)', '/var/lib/fastpatch/server.sqlite'] as const;

/** `rollout show|set|pause|resume|clear-failure`: the operator's side of the rollout policy. */
function addRolloutCommands(program: Command): void {
  const rollout = program.command('rollout').description("how fast releases spread, per group of machines: show, set (waves, caps, self-pause), pause, resume, clear-failure");
  rollout.command('show').description('each group: its policy, who has what, who failed, and why the rollout stands where it does')
    .argument('[group]', 'one group (default: all)').option(...STATE).option('--json', 'print the result as JSON')
    .action(async (group, opts) => (await import('./rollout.js')).show(group, opts));
  rollout.command('set').description("change a group's policy (made with --channel when new)")
    .argument('<group>', 'group name: what devices send as GROUP= (a channel name is its own group)').option(...STATE)
    .option('--channel <name>', 'channel the group follows')
    .addOption(new Option('--open <percent>', 'share of machines (by their fixed wave place) offered a new release: canaries first').argParser((v) => parsePercent(v, '--open')))
    .addOption(new Option('--max-per-period <n>', 'updates granted per period (0: no cap)').argParser((v) => parseInteger(v, '--max-per-period')))
    .addOption(new Option('--period <duration>', 'the period of --max-per-period: seconds, or 30m, 1h, 1d').argParser((v) => parseDuration(v, '--period')))
    .addOption(new Option('--max-in-progress <n>', 'machines updating at once (0: no cap)').argParser((v) => parseInteger(v, '--max-in-progress')))
    .addOption(new Option('--timeout <duration>', 'an update not finished after this no longer counts as in progress').argParser((v) => parseDuration(v, '--timeout')))
    .addOption(new Option('--failure-threshold <n>', 'failures + rollbacks of the release that pause the group (0: never)').argParser((v) => parseInteger(v, '--failure-threshold')))
    .option('--json', 'print the result as JSON')
    .action(async (group, opts) => (await import('./rollout.js')).set(group, opts));
  rollout.command('pause').description('stop offering the release to machines of the group that have not started it')
    .argument('<group>', 'group name').option(...STATE).requiredOption('--reason <text>', 'why, shown by `rollout show` and `release status`').option('--json', 'print the result as JSON')
    .action(async (group, opts) => (await import('./rollout.js')).pause(group, opts));
  rollout.command('resume').description('offer the release again; failures are counted afresh')
    .argument('<group>', 'group name').option(...STATE).option('--json', 'print the result as JSON')
    .action(async (group, opts) => (await import('./rollout.js')).resume(group, opts));
  rollout.command('clear-failure').description('let a machine that failed or rolled back the release be offered it again')
    .argument('<machine-id>', 'the machine id it reports').option(...STATE).option('--json', 'print the result as JSON')
    .action(async (id, opts) => (await import('./rollout.js')).clearFailure(id, opts));
}

function addReleaseCommands(program: Command): void {
  const release = program.command('release').description('a release repository: content-addressed payloads, channels promoted bit for bit (init, add, promote, list)');
  release
    .command('init')
    .description('make a folder a release repository, signed by --key')
    .argument('<repo>', 'folder to create or use (empty of a repository)')
    .requiredOption('--key <file>', "private key that signs the repository's documents (repeatable)", collect)
    .option('--channels <list>', 'channel order, lowest first, comma-separated', 'alpha,beta,stable')
    .addOption(new Option('--keep-deltas <n>', 'deltas per release, from the most recent releases any channel carried (0-16)').default(3).argParser((v) => parseInteger(v, '--keep-deltas')))
    .option('--json', 'print the result as JSON')
    .action(async (dir, opts) => (await import('./release.js')).init(dir, opts));
  release
    .command('add')
    .description('add an image as a release: its full payload, deltas from recent releases, and the lowest channel moved to it')
    .argument('<repo>', 'release repository')
    .argument('<image>', 'the new image (file or block device; only read)')
    .requiredOption('--version <version>', 'release version, e.g. 1.3.0 (never reused)')
    .requiredOption('--key <file>', 'private key to sign with (repeatable)', collect)
    .option('--channel <name>', 'channel to move to it: the lowest (the default; releases enter there)')
    .addOption(new Option('--deltas <n>', "deltas to generate (default: the repository's keep_deltas)").argParser((v) => parseInteger(v, '--deltas')))
    .option('--json', 'print the result as JSON')
    .action(async (dir, image, opts) => (await import('./release.js')).add(dir, image, opts));
  release
    .command('promote')
    .description('move a channel to a release the next-lower channel carried: the same payload files, nothing generated')
    .argument('<repo>', 'release repository')
    .requiredOption('--version <version>', 'the release to promote')
    .requiredOption('--to <channel>', 'the channel to move')
    .requiredOption('--key <file>', 'private key to sign with (repeatable)', collect)
    .option('--force', 'allow a move backwards, or of a release the lower channel never carried (recorded)')
    .option('--reason <text>', 'why, recorded in the channel history with --force')
    .option('--json', 'print the result as JSON')
    .action(async (dir, opts) => (await import('./release.js')).promote(dir, opts));
  release
    .command('list')
    .description('channels and releases, every signature checked')
    .argument('<repo>', 'release repository')
    .option('--json', 'print the result as JSON')
    .action(async (dir, opts) => (await import('./release.js')).list(dir, opts));
  release
    .command('status')
    .description("per channel: its release, and for each group following it who has what, who failed, and why the rollout stands where it does")
    .argument('<repo>', 'release repository')
    .option(...STATE)
    .option('--json', 'print the result as JSON')
    .action(async (dir, opts) => (await import('./rollout.js')).status(dir, opts));
}
