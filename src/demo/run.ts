import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPayload, type ApplyResult } from '../apply/applier.js';
import { FastPatchError } from '../errors.js';
import { generateDeltaPayload, type DeltaResult } from '../generate/delta.js';
import { DEFAULT_LEVELS, generateFullPayload, type GenerateResult } from '../generate/generator.js';
import { readPayloadChunks } from '../io/input.js';
import { writeKeyPair } from '../sign/files.js';
import { generateKey, publicKeyOf, type PrivateKey, type PublicKey } from '../sign/keys.js';
import { markGood } from '../gpt/prioritize.js';
import { grubNext } from '../gpt/boot-model.js';
import { isUsed } from '../gpt/table.js';
import { changeSlots, createFlatcarDisk, readDiskGpt } from '../disk/transaction.js';
import { defaultStatusPath, writeStatus } from '../update/status.js';
import { updateDisk } from '../update/update.js';
import { sampleImage } from './sample.js';
import { releaseStory, type ReleaseStoryResult } from './release-story.js';

/** zstd level of the demo's payloads (see the full payload's generate below). */
const DEMO_LEVEL = 9;

export interface DemoResult {
  dir: string;
  imageSize: number;
  payloadSize: number;
  generateSeconds: number;
  applySeconds: number;
  identical: boolean;
  tamperRefused: string;
  tamperedTargetUnchanged: boolean;
  deltaSize: number;
  deltaIdentical: boolean;
  wrongSourceRefused: string;
  /** The A/B cycle on a disk image: which partition each boot picked, in order. */
  boots: number[];
  cycleOk: boolean;
  /** The error the device gave for release 1 once release 2 ran and was marked good. */
  downgradeRefused: string;
  /** Releases through channels to a device over Omaha (release-story.ts). */
  releaseStory: ReleaseStoryResult;
}

/** Size of the demo's sample images: big enough to show throughput, small enough to build in a second. */
export const DEMO_IMAGE_SIZE = 64 * 1024 * 1024;

/**
 * The main job end to end on built-in data, in a temporary folder: two releases of a sample image,
 * a signing key, a full payload of release 2, applied onto a slot that holds release 1, checked
 * byte for byte; then a tampered copy of the payload, refused before the slot is touched; then a
 * delta from release 1 to release 2, applied with slot A (release 1) as its source, and refused
 * when given the wrong source; the A/B cycle on a disk image; then the release story: channels,
 * promotion, `serve`, and a device's `check` (release-story.ts).
 * `log` receives one line per step.
 */
export async function runDemo(options: { keep?: boolean; log?: (line: string) => void } = {}): Promise<DemoResult> {
  const log = options.log ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'fastpatch-demo-'));
  try {
    const demo = await prepareDemo(dir, log);
    const { payloadPath, gen, applied, identical } = await fullPayloadStep(demo);
    const { slotA, refusal, unchanged } = await tamperStep(demo, payloadPath);
    const { deltaPath, delta, deltaIdentical, wrongSource } = await deltaStep(demo, slotA, gen.payload.totalSize);

    // Release 1 as a full payload, for the downgrade the device refuses at the end.
    const v1Path = join(dir, 'v1.fpay');
    await generateFullPayload({ target: join(dir, 'v1.img'), keys: [demo.key], version: '1.0.0', out: v1Path, level: DEMO_LEVEL });
    const { boots, ok: cycleOk, downgradeRefused } = await abCycle(dir, deltaPath, v1Path, gen.targetSize, demo.trustedKeys, demo.v1, demo.v2, log);
    const story = await releaseStory(dir, demo.key, demo.trustedKeys, log);
    return {
      dir,
      imageSize: DEMO_IMAGE_SIZE,
      payloadSize: gen.payload.totalSize,
      generateSeconds: gen.seconds,
      applySeconds: applied.seconds,
      identical,
      tamperRefused: refusal,
      tamperedTargetUnchanged: unchanged,
      deltaSize: delta.payload.totalSize,
      deltaIdentical,
      wrongSourceRefused: wrongSource,
      boots,
      cycleOk,
      downgradeRefused,
      releaseStory: story,
    };
  } finally {
    if (!options.keep) await rm(dir, { recursive: true, force: true });
  }
}

/** What every step of the demo works with: its folder, the two releases, the signing key and the log. */
interface Demo {
  dir: string;
  v1: Uint8Array;
  v2: Uint8Array;
  key: PrivateKey;
  trustedKeys: PublicKey[];
  log: (line: string) => void;
}

/** Writes the two releases of the sample image (v1.img, v2.img) and a signing key into `dir`. */
async function prepareDemo(dir: string, log: (line: string) => void): Promise<Demo> {
  const v1 = sampleImage({ size: DEMO_IMAGE_SIZE, variant: 1 });
  const v2 = sampleImage({ size: DEMO_IMAGE_SIZE, variant: 2 });
  await writeFile(join(dir, 'v1.img'), v1);
  await writeFile(join(dir, 'v2.img'), v2);
  log(`built sample images v1.img and v2.img (${DEMO_IMAGE_SIZE >> 20} MiB each) in ${dir}`);

  const key = generateKey();
  await writeKeyPair(join(dir, 'release.key'), key);
  log('generated signing key release.key and release.key.pub');
  return { dir, v1, v2, key, trustedKeys: [publicKeyOf(key)], log };
}

/** A full payload of release 2 (v2.fpay), applied onto a slot that holds release 1 and checked byte for byte. */
async function fullPayloadStep({ dir, v1, v2, key, trustedKeys, log }: Demo): Promise<{ payloadPath: string; gen: GenerateResult; applied: ApplyResult; identical: boolean }> {
  const payloadPath = join(dir, 'v2.fpay');
  // zstd level 9, not the default 16: the demo is a walk through, and 16's optimal parser takes
  // several times as long on these 64 MiB for a few percent (bench/RESULTS.md).
  const gen = await generateFullPayload({ target: join(dir, 'v2.img'), keys: [key], version: '2.0.0', out: payloadPath, level: DEMO_LEVEL });
  log(`generate: v2.fpay is ${mib(gen.payload.totalSize)} MiB (${pct(gen.payload.totalSize, gen.targetSize)}% of the image, zstd level ${DEMO_LEVEL}; releases default to ${DEFAULT_LEVELS.zstd}), ` +
    `${Object.entries(gen.operations).map(([k, s]) => `${s.count} ${k}`).join(', ')}; ${rate(gen.targetSize, gen.seconds)}`);

  // The passive slot still holds the previous release, as on a device.
  const slot = join(dir, 'slot-b.img');
  await writeFile(slot, v1);
  const applied = await applyPayload(readPayloadChunks(payloadPath), { trustedKeys, target: slot });
  const identical = Buffer.compare(await readFile(slot), v2) === 0;
  log(`apply: wrote slot-b.img, signature and ${applied.operations} operations verified, image hash checked; ${rate(applied.targetSize, applied.seconds)}`);
  log(`check: slot-b.img ${identical ? 'is byte-identical to' : 'DIFFERS from'} v2.img`);
  return { payloadPath, gen, applied, identical };
}

/**
 * A tampered copy of the payload, refused before slot A (release 1, written here) is touched.
 * Returns slot A, the delta's source next, with the refusal and whether slot A is unchanged.
 */
async function tamperStep({ dir, v1, trustedKeys, log }: Demo, payloadPath: string): Promise<{ slotA: string; refusal: string; unchanged: boolean }> {
  // A single flipped bit in the manifest (in the signed image hash): refused by the signature
  // check before the slot is opened.
  const tampered = Buffer.from(await readFile(payloadPath));
  tampered[32 + 20] = tampered[32 + 20]! ^ 0x01;
  await writeFile(join(dir, 'tampered.fpay'), tampered);
  const slotA = join(dir, 'slot-a.img');
  await writeFile(slotA, v1);
  let refusal = 'not refused';
  try {
    await applyPayload(readPayloadChunks(join(dir, 'tampered.fpay')), { trustedKeys, target: slotA });
  } catch (err) {
    if (!(err instanceof FastPatchError)) throw err;
    refusal = `${err.code}: ${err.message}`;
  }
  const unchanged = Buffer.compare(await readFile(slotA), v1) === 0;
  log(`tamper: one flipped bit in the manifest was refused (${refusal}); slot-a.img ${unchanged ? 'unchanged' : 'MODIFIED'}`);
  return { slotA, refusal, unchanged };
}

/**
 * A delta from release 1 to release 2 (v1-to-v2.fpay), applied with slot A as its source and
 * checked byte for byte, then refused when given the wrong source. `fullSize`: the full payload's
 * size, to compare with.
 */
async function deltaStep({ dir, v2, key, trustedKeys, log }: Demo, slotA: string, fullSize: number): Promise<{ deltaPath: string; delta: DeltaResult; deltaIdentical: boolean; wrongSource: string }> {
  // The delta: slot A runs release 1 and is the source; slot B (holding anything) gets release 2.
  const deltaPath = join(dir, 'v1-to-v2.fpay');
  const delta = await generateDeltaPayload({ source: slotA, target: join(dir, 'v2.img'), keys: [key], version: '2.0.0', sourceVersion: '1.0.0', out: deltaPath, zstdLevel: DEMO_LEVEL });
  log(`generate --source: v1-to-v2.fpay is ${mib(delta.payload.totalSize)} MiB (${pct(delta.payload.totalSize, delta.targetSize)}% of the image, ` +
    `${pct(delta.payload.totalSize, fullSize)}% of the full payload), ${Object.entries(delta.operations).map(([k, s]) => `${s.count} ${k}`).join(', ')}; ${rate(delta.targetSize, delta.seconds)}`);
  const slotB2 = join(dir, 'slot-b2.img');
  await writeFile(slotB2, new Uint8Array(DEMO_IMAGE_SIZE));
  const deltaApplied = await applyPayload(readPayloadChunks(deltaPath), { trustedKeys, source: slotA, target: slotB2 });
  const deltaIdentical = Buffer.compare(await readFile(slotB2), v2) === 0;
  log(`apply --source slot-a.img: every source block read checked, ${deltaApplied.operations} operations verified; slot-b2.img ${deltaIdentical ? 'is byte-identical to' : 'DIFFERS from'} v2.img; ${rate(deltaApplied.targetSize, deltaApplied.seconds)}`);
  let wrongSource = 'not refused';
  try {
    await applyPayload(readPayloadChunks(deltaPath), { trustedKeys, source: join(dir, 'v2.img'), target: join(dir, 'slot-b3.img') });
  } catch (err) {
    if (!(err instanceof FastPatchError)) throw err;
    wrongSource = `${err.code}: ${err.message}`;
  }
  log(`wrong source: the delta applied to v2.img instead of release 1 was refused (${wrongSource})`);
  return { deltaPath, delta, deltaIdentical, wrongSource };
}

/**
 * The device's A/B cycle on a GPT disk image: USR-A holds release 1 and runs; `update` writes the
 * delta into USR-B and sets it to boot next once; the bootloader (GRUB's gptprio, modelled) boots
 * B, which "fails" (is never marked good), so the next boot falls back to A; a second update boots
 * B, which is marked good and sticks; then release 1 is offered again and refused as a downgrade.
 */
async function abCycle(
  dir: string, deltaPath: string, v1Path: string, imageSize: number, trustedKeys: PublicKey[], v1: Uint8Array, v2: Uint8Array, log: (line: string) => void,
): Promise<{ boots: number[]; ok: boolean; downgradeRefused: string }> {
  const disk = join(dir, 'disk.img');
  await createFlatcarDisk(disk, { size: 4 * imageSize + 64 * 1024 * 1024 });
  const table = async () => (await readDiskGpt(disk)).table!;
  const slot = async (index: number) => (await table()).entries.find((e) => e.index === index)!;
  const a = await slot(3);
  // The image builder writes release 1 into USR-A as it is.
  const writer = await open(disk, 'r+');
  try {
    await writer.write(v1, 0, v1.length, a.firstLba * 512);
  } finally {
    await writer.close();
  }
  // ...and records it, as `update` does, so the device knows which release runs.
  const statusPath = defaultStatusPath(disk, false);
  await writeStatus(statusPath, { format: 1, slots: { [a.uniqueGuid.toUpperCase()]: { version: '1.0.0', imageHash: '', imageSize: v1.length, label: a.label, installed: new Date().toISOString() } } });
  log('disk: disk.img with a Flatcar GPT (EFI-SYSTEM, USR-A, USR-B, OEM, ROOT); release 1 installed in USR-A, which runs');
  const boots: number[] = [];
  const boot = async (markGoodAfter: boolean) => {
    const used = (await table()).entries.filter(isUsed);
    const decision = grubNext(used);
    if (!decision.bootable) throw new Error(`demo: nothing bootable: ${decision.reason}`);
    if (decision.written) await changeSlots(disk, () => decision.entries, { allowUnbootable: true });
    boots.push(decision.index);
    if (markGoodAfter) await changeSlots(disk, (e) => markGood(e, decision.index));
    return decision.index;
  };
  const u1 = await updateDisk(readPayloadChunks(deltaPath), { disk, trustedKeys });
  log(`update: delta 1.0.0 → 2.0.0 written into ${u1.updated.label} from ${u1.running.label} (release ${u1.runningVersion}), verified; ${u1.updated.label} boots next, once`);
  const first = await boot(false);
  log(`boot: GRUB boots partition ${first} (USR-B) using its one try; it does not come up (never marked good)`);
  const second = await boot(false);
  log(`boot: GRUB falls back to partition ${second} (USR-A), still successful`);
  await updateDisk(readPayloadChunks(deltaPath), { disk, trustedKeys });
  const third = await boot(true);
  const fourth = await boot(false);
  log(`update again: GRUB boots partition ${third}, it is marked good; the next boot stays on partition ${fourth}`);
  const handle = await open(disk, 'r');
  const b = await slot(4);
  const inB = Buffer.alloc(v2.length);
  const inA = Buffer.alloc(v1.length);
  try {
    await handle.read(inB, 0, inB.length, b.firstLba * 512);
    await handle.read(inA, 0, inA.length, a.firstLba * 512);
  } finally {
    await handle.close();
  }
  let downgradeRefused = 'not refused';
  try {
    await updateDisk(readPayloadChunks(v1Path), { disk, trustedKeys });
  } catch (err) {
    if (!(err instanceof FastPatchError)) throw err;
    downgradeRefused = `${err.code}: ${err.message}`;
  }
  log(`downgrade: release 1 offered while release 2 runs was refused (${downgradeRefused})`);
  const ok = boots.join(',') === '4,3,4,4' && inB.equals(v2) && inA.equals(v1) && downgradeRefused.startsWith('DOWNGRADE');
  log(`check: USR-B ${inB.equals(v2) ? 'holds' : 'DOES NOT hold'} release 2, USR-A ${inA.equals(v1) ? 'still holds' : 'NO LONGER holds'} release 1; boots ${boots.join(' → ')}`);
  return { boots, ok, downgradeRefused };
}

const mib = (n: number) => (n / 1048576).toFixed(1);
const pct = (a: number, b: number) => ((a / b) * 100).toFixed(1);
const rate = (bytes: number, s: number) => `${s.toFixed(2)} s, ${(bytes / 1e6 / s).toFixed(0)} MB/s`;
