/**
 * The definitions of the update-service commands (`release ...`, `serve`, `check`), kept beside
 * cli.ts so that file stays readable; each action lazy-loads its module, as cli.ts does.
 */
import { Option, type Command } from 'commander';
import { collect, downloadOption, parseInteger } from './parse.js';

/** Adds `release init|add|promote|list`, `serve` and `check` to `program`. */
export function addServiceCommands(program: Command): void {
  addReleaseCommands(program);
  program
    .command('serve')
    .description('the update service: Omaha at /v1/update/ for devices, payloads with Range, rollout state in SQLite')
    .argument('<repo>', 'release repository to serve')
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:8080')
    .option('--state <file>', 'SQLite database of rollout policy, machines and events (created if missing)', '/var/lib/fastpatch/server.sqlite')
    .option('--base-url <url>', 'public URL of the repository folder, when payloads are served from elsewhere (a CDN)')
    .option('--pubkey <file>', "key the channel documents must be signed by (repeatable; default: the repository's keys)", collect)
    .option('--app-id <id>', 'Omaha app id to serve (repeatable; default the CoreOS one)', collect)
    .action(async (dir, opts) => (await import('./serve.js')).run(dir, opts));
  program
    .command('check')
    .description('one update cycle of a device: ask the update service, install an offered payload into the passive slot, report each step')
    .requiredOption('--disk <disk>', 'whole disk holding the A/B slots (image file or block device)')
    .requiredOption('--pubkey <file>', 'trusted public key (repeatable)', collect)
    .option('--server <url>', 'Omaha endpoint (default: SERVER= of update.conf)')
    .option('--group <name>', 'channel or group (default: GROUP= of update.conf, else stable)')
    .option('--config <file>', "the machine's update.conf (default /etc/fastpatch/update.conf when present)")
    .option('--image-config <file>', "the image's defaults (default /usr/share/fastpatch/update.conf when present)")
    .option('--machine-id-file <file>', 'machine id (default /etc/machine-id)')
    .option('--boot-id-file <file>', 'boot id (default /proc/sys/kernel/random/boot_id)')
    .option('--status <file>', 'slot status record (default as `update` finds it)')
    .option('--running <slot>', 'the slot running now (default: the one the bootloader boots)')
    .option('--app-id <id>', 'Omaha app id (default the CoreOS one)')
    .addOption(downloadOption('retries')).addOption(downloadOption('timeout')).addOption(downloadOption('min-rate'))
    .option('--json', 'print the result as JSON')
    .action(async (opts) => (await import('./check.js')).run({ ...opts, verbose: program.opts().verbose }));
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
}
