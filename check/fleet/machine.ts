/**
 * One simulated machine of the fleet simulation: an A/B disk image whose USR-A runs the first
 * release, its machine id, boot id and update.conf, and `fastpatch agent --once` (runAgent) run
 * again and again as the machine lives: a reboot is GRUB's boot model written to the disk and a
 * new boot id, then the agent starts against the slot that booted. A machine can be "killed"
 * (down for a while, its agent not running, whatever it holds in etcd kept) and comes back.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { runAgent, type AgentResult } from '../../src/agent/daemon.js';
import { changeSlots, createFlatcarDisk } from '../../src/disk/transaction.js';
import { grubNext } from '../../src/gpt/boot-model.js';
import { openPayload } from '../../src/io/payload-source.js';
import type { PublicKey } from '../../src/sign/keys.js';
import { installSlot } from '../../src/update/install.js';
import { runningRelease } from '../../src/agent/running-release.js';

export interface MachineSetup {
  dir: string;
  index: number;
  /** The first release's full payload, installed into USR-A. */
  firstPayload: string;
  trustedKeys: PublicKey[];
  server: string;
  etcd: readonly string[];
  group: string;
  /** The reboot semaphore's group (unique per run, so a shared cluster's other keys are left alone). */
  lockGroup: string;
  /** Simulated time runs this many times faster than real time in the agent's waits. */
  speedup: number;
  log: (machine: string, line: string) => void;
}

export class SimMachine {
  readonly name: string;
  readonly dir: string;
  readonly machineId: string;
  running = 'USR-A';
  /** Until when (ms, performance.now()) the machine is down. */
  downUntil = 0;
  /** Releases whose new slot never comes up healthy on this machine. */
  readonly badReleases = new Set<string>();
  results: AgentResult[] = [];
  /** The release the running slot holds, as of the end of the last run. */
  version: string | undefined = undefined;
  private rebooted = false;

  constructor(private readonly s: MachineSetup) {
    this.name = `m${String(s.index).padStart(2, '0')}`;
    this.dir = join(s.dir, this.name);
    this.machineId = `${'f1ee7'.padEnd(30, '0')}${String(s.index).padStart(2, '0')}`;
  }

  get disk(): string {
    return join(this.dir, 'disk.img');
  }

  /** The disk with the first release in USR-A, and the machine's files. */
  async prepare(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    await createFlatcarDisk(this.disk, { size: 32 * 1024 * 1024 });
    await installSlot(openPayload(this.s.firstPayload), { disk: this.disk, slot: 'USR-A', trustedKeys: this.s.trustedKeys });
    await fsp.writeFile(join(this.dir, 'machine-id'), `${this.machineId}\n`);
    await fsp.writeFile(join(this.dir, 'boot_id'), `${crypto.randomUUID()}\n`);
    const conf = [
      `GROUP=${this.s.group}`, `SERVER=${this.s.server}`, 'REBOOT_STRATEGY=etcd-lock', `ETCD_ENDPOINTS=${this.s.etcd.join(',')}`,
      // The health check: a release listed in bad-releases never comes up healthy on this machine.
      `HEALTH_CHECK='! grep -qx "$FASTPATCH_RELEASE" ${join(this.dir, 'bad-releases')}'`, 'HEALTH_GRACE=0',
    ];
    await fsp.writeFile(join(this.dir, 'update.conf'), `${conf.join('\n')}\n`, { mode: 0o644 });
    await fsp.writeFile(join(this.dir, 'bad-releases'), '');
    await fsp.writeFile(join(this.dir, 'image.conf'), 'GROUP=stable\n', { mode: 0o644 });
  }

  async markBad(release: string): Promise<void> {
    this.badReleases.add(release);
    await fsp.writeFile(join(this.dir, 'bad-releases'), `${[...this.badReleases].join('\n')}\n`);
  }

  /** One run of the agent (--once); a reboot it asks for is carried out before this returns. */
  async cycle(signal: AbortSignal): Promise<AgentResult> {
    this.rebooted = false;
    const result = await runAgent({
      disk: this.disk, trustedKeys: this.s.trustedKeys, once: true, running: this.running, signal,
      config: join(this.dir, 'update.conf'), imageConfig: join(this.dir, 'image.conf'),
      machineIdFile: join(this.dir, 'machine-id'), bootIdFile: join(this.dir, 'boot_id'),
      etcdTimeoutMs: 2000, lockGroup: this.s.lockGroup,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(1, ms / this.s.speedup))),
      reboot: async () => void (this.rebooted = true),
      log: (line) => this.s.log(this.name, line),
      http: { retries: 2 },
    });
    this.results.push(result);
    if (this.rebooted) await this.boot();
    this.version = await this.runningRelease();
    return result;
  }

  /** The release the running slot holds, by the slot status record. */
  async runningRelease(): Promise<string | undefined> {
    return (await runningRelease(this.disk, { running: this.running })).version;
  }

  /** Whether any run of the agent installed `release` (it rebooted into it, or tried to). */
  triedRelease(release: string): boolean {
    return this.results.some((r) => r.check !== undefined && !('error' in r.check) && r.check.outcome === 'updated' && r.check.offered?.version === release);
  }

  /** GRUB's choice written as a boot writes it, and a new boot id: the machine now runs that slot. */
  async boot(): Promise<void> {
    await changeSlots(this.disk, (entries) => {
      const d = grubNext(entries);
      if (!d.bootable) throw new Error(`${this.name}: nothing bootable`);
      this.running = entries.find((e) => e.index === d.index)!.label;
      return d.entries;
    }, { allowUnbootable: true });
    await fsp.writeFile(join(this.dir, 'boot_id'), `${crypto.randomUUID()}\n`);
    this.s.log(this.name, `booted ${this.running}`);
  }
}
