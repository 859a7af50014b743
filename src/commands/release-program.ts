/**
 * The definitions of the release-service commands (`release ...`, later `serve`, `check`), kept
 * beside cli.ts so that file stays readable; each action lazy-loads its module, as cli.ts does.
 */
import { Option, type Command } from 'commander';
import { collect, parseInteger } from './parse.js';

/** Adds `release init|add|promote|list` to `program`. */
export function addReleaseCommands(program: Command): void {
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
