/**
 * The demo's release story: a repository gets releases 1 and 2 on alpha, 2 is promoted to beta
 * (after a refused jump straight to stable), `fastpatch serve` answers on loopback, and a device
 * on beta (GROUP=beta in its update.conf) runs its agent: it installs the delta into its passive
 * slot and reboots (REBOOT_STRATEGY=reboot); after the boot the agent's health check passes, it
 * marks the slot good and reports the success, which the server records.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { CheckOptions } from '../agent/check.js';
import { runAgent } from '../agent/daemon.js';
import { FastPatchError } from '../errors.js';
import { addRelease } from '../release/add.js';
import { promoteRelease } from '../release/promote.js';
import { ReleaseRepository } from '../release/repository.js';
import { startServer } from '../server/http-server.js';
import { openPayload } from '../io/payload-source.js';
import { installSlot } from '../update/install.js';
import { changeSlots, createFlatcarDisk, readDiskGpt } from '../disk/transaction.js';
import { grubNext } from '../gpt/boot-model.js';
import { isUsed } from '../gpt/table.js';
import type { PrivateKey, PublicKey } from '../sign/keys.js';
import { sampleImage } from './sample.js';

const STORY_IMAGE_SIZE = 16 * 1024 * 1024;

export interface ReleaseStoryResult {
  /** Why promoting release 2 straight to stable was refused. */
  stableRefused: string;
  /** What the device installed, and as which kind of payload. */
  installed: string;
  /** The event the device sent after booting the new slot (`3/2`). */
  reported: string;
  /** The server's state of the machine afterwards. */
  machineState: string;
  ok: boolean;
}

/** Runs the story in `dir` with `key`; one line per step to `log`. */
export async function releaseStory(dir: string, key: PrivateKey, trustedKeys: PublicKey[], log: (line: string) => void): Promise<ReleaseStoryResult> {
  const repo = join(dir, 'repo');
  await ReleaseRepository.init(repo, { keys: [key] });
  for (const [version, variant] of [['1.0.0', 1], ['2.0.0', 2]] as const) {
    const image = join(dir, `story-${version}.img`);
    await writeFile(image, sampleImage({ size: STORY_IMAGE_SIZE, variant, seed: 7 }));
    const added = await addRelease(repo, { image, version, keys: [key] });
    log(`release add: ${version} with ${added.release.payloads.map((p) => (p.kind === 'full' ? `full ${p.size} B` : `delta from ${p.from} ${p.size} B`)).join(', ')}; alpha -> ${version}`);
  }
  let stableRefused = 'not refused';
  try {
    await promoteRelease(repo, { version: '2.0.0', to: 'stable', keys: [key] });
  } catch (err) {
    if (!(err instanceof FastPatchError)) throw err;
    stableRefused = `${err.code}: ${err.message}`;
  }
  log(`release promote 2.0.0 --to stable: refused (${stableRefused.split(':')[0]}: beta never carried it)`);
  await promoteRelease(repo, { version: '2.0.0', to: 'beta', keys: [key] });
  log('release promote 2.0.0 --to beta: beta now serves the very payload files alpha serves');
  const server = await startServer({ repository: repo, state: join(dir, 'server.sqlite') });
  try {
    log(`serve: Omaha at ${server.url}v1/update/`);
    const device = await prepareDevice(dir, repo, trustedKeys, `${server.url}v1/update/`);
    // The device's agent, one pass at a time, REBOOT_STRATEGY=reboot: its reboot is GRUB's boot model run on the disk.
    const agent = { ...device.options(), once: true, strategy: 'reboot' as const, window: null, healthCheck: 'test "$FASTPATCH_RELEASE" = 2.0.0', healthGraceSeconds: 0, reboot: () => bootNext(device.disk, device.bootIdFile) };
    const first = await runAgent(agent);
    const offered = first.check && !('error' in first.check) ? first.check.offered : undefined;
    const installed = `${offered?.version ?? 'nothing'} (${offered?.kind ?? '-'})`;
    log(`agent --once (device on beta, release 1.0.0, REBOOT_STRATEGY=reboot): installed ${installed} into the passive slot, reported download started, finished, installed; rebooted: ${first.reboot.done}`);
    const second = await runAgent({ ...agent, running: 'USR-B' });
    const boot = second.boot;
    const sent = boot.state === 'confirmed' ? (boot.reported ?? []).map((e) => `${e.type}/${e.result}`).join(', ') || 'nothing' : 'nothing';
    const machine = server.rollout.machine(device.machineId);
    log(`agent --once after the reboot into USR-B: health check passed, ${boot.state === 'confirmed' ? `marked ${boot.markedGood} good` : boot.state}, reported ${sent}; the server has the machine as ${machine?.state}`);
    log(`release status: ${server.rollout.status('beta')[0]?.summary ?? '(no group)'}`);
    const ok = stableRefused.startsWith('RELEASE_REFUSED') && offered?.version === '2.0.0' && offered.kind === 'delta' && first.reboot.done && sent === '3/2' && machine?.state === 'complete';
    return { stableRefused, installed, reported: sent, machineState: machine?.state ?? 'unknown', ok };
  } finally {
    await server.close();
  }
}

/** A device: a disk with release 1.0.0 in USR-A, a machine id, a boot id, update.conf with GROUP=beta. */
async function prepareDevice(dir: string, repo: string, trustedKeys: PublicKey[], server: string) {
  const disk = join(dir, 'device.img');
  await createFlatcarDisk(disk, { size: 4 * STORY_IMAGE_SIZE + 16 * 1024 * 1024 });
  const r = await ReleaseRepository.open(repo);
  const full = (await r.readRelease('1.0.0'))!.payloads.find((p) => p.kind === 'full')!;
  await installSlot(openPayload(r.payloadPath(full.sha256)), { disk, slot: 'USR-A', trustedKeys });
  const machineId = randomUUID().replaceAll('-', '');
  const files = { machine: join(dir, 'machine-id'), boot: join(dir, 'boot_id'), conf: join(dir, 'update.conf'), image: join(dir, 'image-update.conf') };
  await writeFile(files.machine, `${machineId}\n`);
  await writeFile(files.boot, `${randomUUID()}\n`);
  await writeFile(files.image, 'GROUP=stable\n', { mode: 0o644 });
  await writeFile(files.conf, `GROUP=beta\nSERVER=${server}\n`, { mode: 0o644 });
  const options = (): CheckOptions => ({ disk, trustedKeys, config: files.conf, imageConfig: files.image, machineIdFile: files.machine, bootIdFile: files.boot });
  return { disk, machineId, bootIdFile: files.boot, options };
}

/** A boot as GRUB makes it (its tries update written) and a new boot id: the agent's health check then decides. */
async function bootNext(disk: string, bootIdFile: string): Promise<void> {
  const used = (await readDiskGpt(disk)).table!.entries.filter(isUsed);
  const decision = grubNext(used);
  if (!decision.bootable) throw new Error(`demo: nothing bootable: ${decision.reason}`);
  if (decision.written) await changeSlots(disk, () => decision.entries, { allowUnbootable: true });
  await writeFile(bootIdFile, `${randomUUID()}\n`);
}
