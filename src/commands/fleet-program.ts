/**
 * The definitions of the fleet commands (`fleetlock`, `lock ...`, `agent`), kept beside cli.ts as
 * service-program.ts is; each action lazy-loads its module.
 */
import type { Command } from 'commander';
import { collect } from './parse.js';

/** Adds the fleet commands to `program`. */
export function addFleetCommands(program: Command): void {
  program
    .command('fleetlock')
    .description('a FleetLock v1 server (Zincati, Fedora CoreOS) on the same etcd reboot semaphore as `lock` and the agent')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:3333')
    .option('--etcd <urls>', 'etcd client URLs, comma-separated (default: ETCD_ENDPOINTS of update.conf, else http://127.0.0.1:2379)')
    .option('--group <name=slots>', 'slots of a group whose semaphore does not exist yet (repeatable)', collect)
    .action(async (opts) => (await import('./fleetlock.js')).run(opts));
}
