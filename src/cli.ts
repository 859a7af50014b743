#!/usr/bin/env node
/**
 * The fastpatch command: a commander program that parses arguments, lazy-loads one module per
 * command from ./commands, and turns errors into one line on stderr and the exit code of their
 * class (README.md, "Exit codes"). The only place that prints or exits.
 */
import './commands/runtime.js'; // first: refuses an old Node.js before anything else loads
import './commands/allocator.js'; // second: delta generation restarts itself with glibc's trim threshold set
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Help, Option } from 'commander';
import { checkCommandLine, commandPath, commandTree } from './commands/command-line.js';
import { EXAMPLES } from './commands/examples.js';
import { addServiceCommands } from './commands/service-program.js';
import { addFleetCommands } from './commands/fleet-program.js';
import { collect, downloadOption, parseInteger, parseSectorSize, parseSize, parseTries } from './commands/parse.js';
import { EXIT, FastPatchError } from './errors.js';
import { removeTempFilesSync } from './io/safe-files.js';
import { escapeText } from './text.js';

/** Handled in main() before commander runs: `generate --version 1.2.0` is an option of its own. */
const VERSION_OPTION = new Option('-V, --version', 'print the version of fastpatch');

const program = new Command('fastpatch')
  .description('Signed OS image payloads: generate, inspect, verify and apply them onto block devices.')
  .option('--verbose', 'print stack traces with errors')
  // Argument errors follow the same one-line form as every other error (README, "Exit codes").
  .configureOutput({ outputError: (text, write) => write(`fastpatch: USAGE: ${usageLine(text)} (see --help)\n`) })
  // Inherited by every command defined below: required options say so; the top level lists --version.
  .configureHelp({
    optionDescription(option) {
      return `${Help.prototype.optionDescription.call(this as Help, option)}${option.mandatory ? ' (required)' : ''}`;
    },
    visibleOptions(cmd) {
      return [...(cmd.parent ? [] : [VERSION_OPTION]), ...Help.prototype.visibleOptions.call(this as Help, cmd)];
    },
  })
  .exitOverride();

program
  .command('keygen')
  .description('create an ed25519 signing key (OUT) and its public key (OUT.pub)')
  .requiredOption('--out <path>', 'private key file to write; the public key goes to <path>.pub')
  .option('--force', 'overwrite existing key files')
  .option('--json', 'print the result as JSON')
  .action(async (opts) => (await import('./commands/keygen.js')).run(opts));

program
  .command('generate')
  .description('package an image (file or block device) as a signed payload: full, or a delta with --source')
  .requiredOption('--target <image>', 'the new image')
  .option('--source <image>', 'the image devices run now: write a delta payload against it (only read)')
  .requiredOption('--key <file>', 'private key to sign with, mode 0600 (repeat for several keys)', collect)
  .requiredOption('--version <version>', 'release version of the image, e.g. 1.2.0')
  .option('--source-version <version>', "for a delta: the source image's release, e.g. 1.1.0 (devices on another release are told which one they need)")
  .requiredOption('-o, --out <payload>', 'payload file to write (refused if it exists, unless --force)')
  .option('--force', 'replace an existing payload file')
  .addOption(new Option('--format-version <n>', 'payload format: 2 (zstd data) or 1 (deflate and brotli only, for devices with fastpatch 0.1)').default(2).argParser((v) => parseInteger(v, '--format-version')))
  .addOption(new Option('--level <n>', 'compression level of full payloads: zstd 1-19 (default 16), or deflate 1-9 with --format-version 1 (default 6)').argParser((v) => parseInteger(v, '--level')))
  .addOption(new Option('--quality <n>', 'brotli quality 1-11 of delta diff streams').default(9).argParser((v) => parseInteger(v, '--quality')))
  .option('--json', 'print the result as JSON')
  .action(async (opts) => (await import('./commands/generate.js')).run(opts));

program
  .command('inspect')
  .description("describe a payload from its header and manifest (reads no data); '-' reads stdin")
  .argument('<payload>', "payload file, http(s):// URL, or '-' for standard input")
  .option('--pubkey <file>', 'also verify the signature against this public key (repeatable)', collect)
  .option('--json', 'print the result as JSON')
  .action(async (payload, opts) => (await import('./commands/inspect.js')).run(payload, opts));

program
  .command('verify')
  .description("check a payload's signature and every operation's data and output, writing nothing")
  .argument('<payload>', "payload file, or '-' for standard input")
  .requiredOption('--pubkey <file>', 'trusted public key (repeatable for key rotation)', collect)
  .option('--source <image>', 'for a delta payload: the image it was made from (only read)')
  .addOption(new Option('--max-image-size <bytes>', 'refuse a payload declaring a larger image: bytes, or with K, M, G or T (default 64G)').argParser((v) => parseSize(v, '--max-image-size')))
  .addOption(downloadOption('retries')).addOption(downloadOption('timeout')).addOption(downloadOption('min-rate'))
  .option('--json', 'print the result as JSON')
  .action(async (payload, opts) => (await import('./commands/apply.js')).run(payload, { ...opts, target: undefined, verbose: program.opts().verbose }));

program
  .command('apply')
  .description('verify a payload and write its image onto a file or block device')
  .argument('<payload>', "payload file, http(s):// URL, or '-' for standard input")
  .requiredOption('--target <path>', 'file or block device to write (a missing file is created)')
  .requiredOption('--pubkey <file>', 'trusted public key (repeatable for key rotation)', collect)
  .option('--slot <slot>', 'the target is a whole GPT disk: write into this A/B slot (USR-A; the first install onto a new disk)')
  .option('--status <file>', 'with --slot: slot status record to note the release in (default as update: /var/lib/fastpatch/status.json, DISK.status.json for an image file)')
  .option('--source <image>', 'for a delta payload: the image it was made from, e.g. the running slot (only read)')
  .option('--check-source', 'hash the whole source before writing anything, so a wrong source leaves the target untouched')
  .option('--resume', 'finish an interrupted apply: keep what the target already holds (checked against the signed hashes), fetch the rest')
  .addOption(downloadOption('retries')).addOption(downloadOption('timeout')).addOption(downloadOption('min-rate'))
  .option('--json', 'print the result as JSON')
  .action(async (payload, opts) => (await import('./commands/apply.js')).run(payload, { ...opts, verbose: program.opts().verbose }));

program
  .command('hash')
  .description('print the block-list hash of an image, as a manifest records it')
  .argument('<image>', 'image file or block device')
  .addOption(new Option('--size <bytes>', 'hash only the first <bytes> bytes: bytes, or with K, M, G or T').argParser((v) => parseSize(v)))
  .option('--json', 'print the result as JSON')
  .action(async (image, opts) => (await import('./commands/hash.js')).run(image, opts));

program
  .command('demo')
  .description('build sample images, generate a signed payload, apply and check it, in a temporary folder')
  .option('--keep', 'keep the temporary folder')
  .option('--json', 'print the result as JSON')
  .action(async (opts) => (await import('./commands/demo.js')).run(opts));

program
  .command('update')
  .description('write a payload into the passive A/B slot of a disk, verify it, and make that slot boot next once')
  .argument('<payload>', "payload file, http(s):// URL, or '-' for standard input")
  .requiredOption('--disk <disk>', 'whole disk holding the slots (image file or block device)')
  .requiredOption('--pubkey <file>', 'trusted public key (repeatable for key rotation)', collect)
  .option('--running <slot>', 'the slot running now (default: the one the bootloader boots)')
  .addOption(new Option('--tries <n>', 'boot attempts of the new slot (1-15)').argParser((v) => parseInteger(v, '--tries')))
  .addOption(new Option('--sector-size <bytes>', 'logical sector size of a disk image file: 512 or 4096').argParser(parseSectorSize))
  .option('--resume', 'finish an interrupted update: keep what the passive slot already holds (checked against the signed hashes), fetch the rest')
  .option('--allow-downgrade', "install a release older than the running slot's, or when its release is unknown or its record unreadable")
  .addOption(new Option('--unknown-release <choice>', "when the running slot's release is unknown (no status record): refuse (default) or allow, for a disk installed by other means than `apply --slot` (which records the release)").choices(['allow', 'refuse']))
  .option('--config <file>', 'update settings, KEY=value lines (default /etc/fastpatch/update.conf when present): UNKNOWN_RELEASE=allow|refuse')
  .option('--status <file>', 'slot status record (default /var/lib/fastpatch/status.json; FILE.status.json for an image file or a loop device over one)')
  .addOption(downloadOption('retries')).addOption(downloadOption('timeout')).addOption(downloadOption('min-rate'))
  .option('--json', 'print the result as JSON')
  .action(async (payload, opts) => (await import('./commands/update.js')).run(payload, { ...opts, verbose: program.opts().verbose }));

const gpt = program.command('gpt').description('A/B slots on a GPT disk (image file or whole-disk device): create, show, next, set-next, boot, mark-good, rollback, repair');
/** Options every gpt subcommand takes. */
function gptCommand(name: string, description: string) {
  return gpt
    .command(name)
    .description(description)
    .argument('<disk>', 'disk image file or whole-disk block device')
    .addOption(new Option('--type <type>', 'partition type of the slots').choices(['usr', 'chromeos-kernel']).default('usr'))
    .addOption(new Option('--sector-size <bytes>', 'logical sector size of an image file: 512 or 4096 (default: found from the GPT)').argParser(parseSectorSize))
    .option('--json', 'print the result as JSON');
}
gptCommand('create', 'write a new GPT: EFI-SYSTEM, USR-A, USR-B, OEM, ROOT (--layout flatcar)')
  .option('--layout <layout>', 'partition layout', 'flatcar')
  .addOption(new Option('--size <bytes>', 'size of a new image file: bytes, or with K, M, G or T').argParser((v) => parseSize(v)))
  .option('--force', 'replace an existing file or GPT')
  .action(async (disk, opts) => (await import('./commands/gpt.js')).createCommand(disk, opts));
gptCommand('repair', 'rebuild a bad or disagreeing GPT copy from the good one')
  .option('--move-backup', "move a backup that is not at the disk's end (an image written to a larger disk) to the end")
  .action(async (disk, opts) => (await import('./commands/gpt.js')).repairCommand(disk, opts));
gptCommand('show', 'partitions, priority/tries/successful per slot, and which slot each bootloader boots next')
  .action(async (disk, opts) => (await import('./commands/gpt.js')).show(disk, opts));
gptCommand('set-next', 'boot this slot next, once: tries=1, successful=0, top priority (what Flatcar\'s postinst does)')
  .requiredOption('--slot <slot>', 'partition number, label in any case (USR-B) or unique GUID')
  .option('--running <slot>', 'the slot the system runs from: refused unless it stays a fallback')
  .addOption(new Option('--tries <n>', 'boot attempts before falling back (1-15)').argParser(parseTries))
  .action(async (disk, opts) => (await import('./commands/gpt.js')).setNextCommand(disk, opts));
gptCommand('mark-good', 'this slot booted fine: successful=1, tries=0, top priority')
  .option('--slot <slot>', 'partition number, label in any case (USR-A) or unique GUID (default: the running slot)')
  .action(async (disk, opts) => (await import('./commands/gpt.js')).markGoodCommand(disk, opts));
gptCommand('rollback', 'boot the slot that is not the running one next; refused unless it has booted successfully before')
  .option('--running <slot>', 'the slot the system runs from (default: the slot partition the kernel has in use; required for an image file)')
  .action(async (disk, opts) => (await import('./commands/gpt.js')).rollbackCommand(disk, opts));
gptCommand('next', 'which slot the bootloader would boot next (a query: writes nothing)')
  .addOption(new Option('--model <model>', 'bootloader model').choices(['grub', 'vboot']).default('grub'))
  .action(async (disk, opts) => (await import('./commands/gpt.js')).nextCommand(disk, opts));
gptCommand('boot', 'run the bootloader model as a boot would: writes its tries update (a slot on trial uses a try)')
  .addOption(new Option('--model <model>', 'bootloader model').choices(['grub', 'vboot']).default('grub'))
  .option('--dry-run', 'say what would boot, write nothing (as `gpt next`)')
  .action(async (disk, opts) => (await import('./commands/gpt.js')).bootCommand(disk, opts));
// The old name of `gpt boot`: it sounded like a query but writes. Kept so scripts keep working.
gptCommand('boot-next', 'deprecated name of `gpt boot` (writes the tries update); use `gpt boot`, or `gpt next` to only ask')
  .addOption(new Option('--model <model>', 'bootloader model').choices(['grub', 'vboot']).default('grub'))
  .option('--dry-run', 'say what would boot, write nothing')
  .action(async (disk, opts) => (await import('./commands/gpt.js')).bootCommand(disk, { ...opts, deprecatedName: 'boot-next' }));

addServiceCommands(program);
addFleetCommands(program);

for (const cmd of commandTree(program)) {
  const lines = EXAMPLES[commandPath(cmd)];
  if (lines) cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`);
  // Before a subcommand parses: remember which command runs (for an interruption) and catch
  // a positional argument where an option was meant.
  if (cmd.commands.length > 0) {
    cmd.hook('preSubcommand', (parent, sub) => {
      running ??= sub.name();
      checkCommandLine(parent, sub);
    });
  }
}

/** commander's error text (`error: MESSAGE`, maybe a `(Did you mean X?)` line) as one escaped line. */
function usageLine(text: string): string {
  const [first = '', ...rest] = text.replace(/^error: /, '').trimEnd().split('\n');
  // `fastpatch apply --version`: commander would suggest the very option it refused.
  if (/^unknown option '(--version|-V)'/.test(first)) return `${first}: the version is \`fastpatch --version\``;
  const suggestion = rest.map((l) => l.trim()).find((l) => l.startsWith('(Did you mean'));
  return escapeText(suggestion ? `${first} ${suggestion.replace('(Did', '(did')}` : first);
}

/** The top-level command that runs (`apply`, `gpt`...), set as commander dispatches to it. */
let running: string | undefined;

/** Exit codes of an interruption, as a shell reports a process killed by the signal: 128 + its number. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;
/** Commands that can finish an interrupted run with --resume. */
const RESUMABLE = new Set(['apply', 'update']);

/**
 * Ctrl-C or SIGTERM: one line instead of silence and a half-drawn progress line. The process exits
 * at once; writes already handed to the kernel reach the file or device as with any exit, and a
 * resumed apply or update checks what the target holds against the signed hashes, so an
 * interruption at any point is finished by --resume.
 */
function interrupted(signal: keyof typeof SIGNAL_EXIT): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  removeTempFilesSync(); // a half-written payload or record under a temporary name: nothing to keep
  const command = running ?? 'fastpatch';
  const next = RESUMABLE.has(command)
    ? '; run the same command again with --resume to finish it: what the target already holds is checked against the signed hashes and kept, the rest fetched'
    : '';
  process.stderr.write(`fastpatch: INTERRUPTED: ${command} stopped by ${signal}${next}\n`);
  // Ended by the signal itself with its default action back: the shell sees 128 + its number
  // (130, 143) as it would from process.exit, but without exit's wait for libuv's threads, one of
  // which may be blocked for good in an open() (a FIFO nobody writes to), which would hang it.
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  process.exit(SIGNAL_EXIT[signal]); // not reached once the signal has ended the process
}

/** The version in the package.json of this install (dist/src/cli.js reads ../../package.json). */
function packageVersion(): string {
  for (const path of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'fastpatch' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}

async function main(): Promise<void> {
  // A reader that stops early (`fastpatch inspect p | head -1`) is not an error worth a trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') process.stderr.write(`fastpatch: IO: write standard output: ${escapeText(err.message)}\n`);
    process.exit(err.code === 'EPIPE' ? (process.exitCode ?? EXIT.OK) : EXIT.IO);
  });
  // `fastpatch --version` (only before a command: `generate --version 1.2.0` names a release).
  const args = process.argv.slice(2);
  const first = args.findIndex((a) => !a.startsWith('-'));
  if ((first < 0 ? args : args.slice(0, first)).some((a) => a === '--version' || a === '-V')) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  process.on('SIGINT', () => interrupted('SIGINT'));
  process.on('SIGTERM', () => interrupted('SIGTERM'));
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    process.exitCode = report(err);
  }
}

/** Prints one line for an error (with the stack under --verbose) and returns its exit code. */
function report(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed its message (or the help text).
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  const verbose = process.argv.includes('--verbose');
  const message = err instanceof Error ? err.message : String(err);
  // Commands check their own arguments (FastPatchError('USAGE')), so anything else that escapes,
  // a RangeError from an allocation included, is a bug.
  const code = err instanceof FastPatchError ? err.exitCode : EXIT.INTERNAL;
  const tag = err instanceof FastPatchError ? err.code : 'INTERNAL';
  // The message may carry names from a payload, a disk or a server: escaped, it is one line.
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K'); // a progress line left by the failed command
  process.stderr.write(`fastpatch: ${tag}: ${escapeText(message)}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack.split('\n').map(escapeText).join('\n')}\n`);
  return code;
}

await main();
