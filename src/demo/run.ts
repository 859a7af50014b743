import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPayload } from '../apply/applier.js';
import { FastPatchError } from '../errors.js';
import { generateDeltaPayload } from '../generate/delta.js';
import { generateFullPayload } from '../generate/generator.js';
import { readPayloadChunks } from '../io/input.js';
import { writeKeyPair } from '../sign/files.js';
import { generateKey, publicKeyOf } from '../sign/keys.js';
import { sampleImage } from './sample.js';

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
}

/** Size of the demo's sample images: big enough to show throughput, small enough to build in a second. */
export const DEMO_IMAGE_SIZE = 64 * 1024 * 1024;

/**
 * The main job end to end on built-in data, in a temporary folder: two releases of a sample image,
 * a signing key, a full payload of release 2, applied onto a slot that holds release 1, checked
 * byte for byte; then a tampered copy of the payload, refused before the slot is touched; then a
 * delta from release 1 to release 2, applied with slot A (release 1) as its source, and refused
 * when given the wrong source.
 * `log` receives one line per step.
 */
export async function runDemo(options: { keep?: boolean; log?: (line: string) => void } = {}): Promise<DemoResult> {
  const log = options.log ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'fastpatch-demo-'));
  try {
    const v1 = sampleImage({ size: DEMO_IMAGE_SIZE, variant: 1 });
    const v2 = sampleImage({ size: DEMO_IMAGE_SIZE, variant: 2 });
    await writeFile(join(dir, 'v1.img'), v1);
    await writeFile(join(dir, 'v2.img'), v2);
    log(`built sample images v1.img and v2.img (${DEMO_IMAGE_SIZE >> 20} MiB each) in ${dir}`);

    const key = generateKey();
    await writeKeyPair(join(dir, 'release.key'), key);
    log('generated signing key release.key and release.key.pub');

    const payloadPath = join(dir, 'v2.fpay');
    const gen = await generateFullPayload({ target: join(dir, 'v2.img'), keys: [key], version: '2.0.0', out: payloadPath });
    log(`generate: v2.fpay is ${mib(gen.payload.totalSize)} MiB (${pct(gen.payload.totalSize, gen.targetSize)}% of the image), ` +
      `${Object.entries(gen.operations).map(([k, s]) => `${s.count} ${k}`).join(', ')}; ${rate(gen.targetSize, gen.seconds)}`);

    // The passive slot still holds the previous release, as on a device.
    const slot = join(dir, 'slot-b.img');
    await writeFile(slot, v1);
    const trustedKeys = [publicKeyOf(key)];
    const applied = await applyPayload(readPayloadChunks(payloadPath), { trustedKeys, target: slot });
    const identical = Buffer.compare(await readFile(slot), v2) === 0;
    log(`apply: wrote slot-b.img, signature and ${applied.operations} operations verified, image hash checked; ${rate(applied.targetSize, applied.seconds)}`);
    log(`check: slot-b.img ${identical ? 'is byte-identical to' : 'DIFFERS from'} v2.img`);

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

    // The delta: slot A runs release 1 and is the source; slot B (holding anything) gets release 2.
    const deltaPath = join(dir, 'v1-to-v2.fpay');
    const delta = await generateDeltaPayload({ source: slotA, target: join(dir, 'v2.img'), keys: [key], version: '2.0.0', out: deltaPath });
    log(`generate --source: v1-to-v2.fpay is ${mib(delta.payload.totalSize)} MiB (${pct(delta.payload.totalSize, delta.targetSize)}% of the image, ` +
      `${pct(delta.payload.totalSize, gen.payload.totalSize)}% of the full payload), ${Object.entries(delta.operations).map(([k, s]) => `${s.count} ${k}`).join(', ')}; ${rate(delta.targetSize, delta.seconds)}`);
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
    };
  } finally {
    if (!options.keep) await rm(dir, { recursive: true, force: true });
  }
}

const mib = (n: number) => (n / 1048576).toFixed(1);
const pct = (a: number, b: number) => ((a / b) * 100).toFixed(1);
const rate = (bytes: number, s: number) => `${s.toFixed(2)} s, ${(bytes / 1e6 / s).toFixed(0)} MB/s`;
