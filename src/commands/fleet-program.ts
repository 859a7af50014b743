/**
 * The definitions of the fleet commands (`fleetlock`, `lock ...`, `agent`), kept beside cli.ts as
 * service-program.ts is; each action lazy-loads its module.
 */
import { Option, type Command } from 'commander';
import { addDeviceOptions, collect, parseInteger } from './parse.js';

/** Adds the fleet commands to `program`. */
export function addFleetCommands(program: Command): void {
  addAgentCommand(program);
  addLockCommands(program);
  program
    .command('fleetlock')
    .description('a FleetLock v1 server (Zincati, Fedora CoreOS) on the same etcd reboot semaphore as `lock` and the agent')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:3333')
    .option('--etcd <urls>', 'etcd client URLs, comma-separated (default: ETCD_ENDPOINTS of update.conf, else http://127.0.0.1:2379)')
    .option('--group <name=slots>', 'slots of a group whose semaphore does not exist yet (repeatable)', collect)
    .action(async (opts) => (await import('./fleetlock.js')).run(opts));
}

/** `agent`: the device daemon. Its settings are update.conf's (README, "update.conf"); flags override them. */
function addAgentCommand(program: Command): void {
  addDeviceOptions(program.command('agent'))
    .description('the device daemon: finish the last update (health check, mark good, report, free the reboot slot), check on schedule, install, reboot by strategy')
    .option('--once', 'one pass (finish, one check, act), then exit')
    .addOption(new Option('--strategy <strategy>', 'REBOOT_STRATEGY').choices(['best-effort', 'etcd-lock', 'reboot', 'off']))
    .option('--window-start <when>', "LOCKSMITHD_REBOOT_WINDOW_START: 'HH:MM' daily or 'Thu 04:00' weekly, local time")
    .option('--window-length <duration>', 'LOCKSMITHD_REBOOT_WINDOW_LENGTH, e.g. 1h or 1h30m')
    .option('--etcd <urls>', 'ETCD_ENDPOINTS: etcd client URLs, comma-separated')
    .option('--lock-group <name>', "LOCKSMITHD_GROUP: the reboot semaphore's group (default: locksmith's default key)")
    .option('--health-check <command>', 'HEALTH_CHECK: a command (sh -c) that exits 0 when the new slot is healthy')
    .addOption(new Option('--health-grace <seconds>', 'HEALTH_GRACE: seconds after boot before the health check (default 60)').argParser((v) => parseInteger(v, '--health-grace')))
    .addOption(new Option('--health-timeout <seconds>', 'the health check is killed after this (default 300)').argParser((v) => parseInteger(v, '--health-timeout')))
    .option('--reboot-command <command>', "REBOOT_COMMAND (default 'systemctl reboot')")
    .option('--json', 'print the result as JSON when the agent returns')
    .action(async (opts) => (await import('./agent.js')).run({ ...opts, verbose: program.opts().verbose }));
}

/** `lock status|acquire|release|set-max`: what locksmithctl does, on locksmith's key through etcd's v3 API. */
function addLockCommands(program: Command): void {
  const lock = program.command('lock').description("the reboot semaphore in etcd, as locksmithctl shows and changes it: status, acquire, release, set-max");
  const common = (c: Command) => c
    .option('--etcd <urls>', 'etcd client URLs, comma-separated (default: ETCD_ENDPOINTS of update.conf, else http://127.0.0.1:2379)')
    .option('--group <name>', "the semaphore's group (default: locksmith's default key)")
    .option('--machine-id-file <file>', 'the id used when none is given (default /etc/machine-id)')
    .option('--json', 'print the result as JSON');
  common(lock.command('status').description('free slots, max, and each holder with its release, since when and what it is doing'))
    .action(async (opts) => (await import('./lock.js')).status(opts));
  common(lock.command('acquire').description('take a slot for ID (default: this machine), as `locksmithctl lock`').argument('[id]', 'machine id'))
    .action(async (id, opts) => (await import('./lock.js')).acquire(id, opts));
  common(lock.command('release').description("free ID's slot (default: this machine), as `locksmithctl unlock`").argument('[id]', 'machine id'))
    .option('--since <time>', "free it only if the holder's record still says it took the slot then (from `lock status`): never a slot it took again")
    .action(async (id, opts) => (await import('./lock.js')).release(id, opts));
  common(lock.command('set-max').description('set the number of slots; holders keep theirs').argument('<n>', 'slots'))
    .action(async (n, opts) => (await import('./lock.js')).setMax(parseInteger(n, 'set-max N'), opts));
}
