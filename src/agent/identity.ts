/**
 * Who the machine is, as update_engine tells the update service: the machine id (systemd's
 * /etc/machine-id, 32 hex digits) and the boot id (the kernel's, new at every boot), which lets
 * the service and the device itself tell a reboot from a second check in the same boot.
 */
import { FastPatchError } from '../errors.js';
import { readSmallFile } from '../io/safe-files.js';
import { escapeText } from '../text.js';

export const MACHINE_ID_PATH = '/etc/machine-id';
export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

/** The machine id: 32 lower-case hex digits. Throws FastPatchError('IO' | 'USAGE'). */
export async function readMachineId(path = MACHINE_ID_PATH): Promise<string> {
  const text = (await readSmallFile(path, 4096, 'machine id')).bytes.toString('utf8').trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(text)) {
    throw new FastPatchError('USAGE', `machine id ${path} is not 32 hex digits ("${escapeText(text.slice(0, 40))}"); run systemd-machine-id-setup, or give --machine-id-file`);
  }
  return text;
}

/** The boot id, a UUID in lower case (without braces). Throws FastPatchError('IO' | 'USAGE'). */
export async function readBootId(path = BOOT_ID_PATH): Promise<string> {
  // /proc files report size 0; readSmallFile reads to the end whatever stat says.
  const text = (await readSmallFile(path, 4096, 'boot id')).bytes.toString('utf8').trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(text)) {
    throw new FastPatchError('USAGE', `boot id ${path} is not a UUID ("${escapeText(text.slice(0, 40))}")`);
  }
  return text;
}
