/**
 * The images of one apply, opened in the order of trust. PayloadApplier (applier.ts) calls accept()
 * only once the head is verified (header, manifest and a trusted signature): then the releases are
 * checked, a delta's source is opened and checked, and the target is checked (identity, mounts and
 * other names, size) and opened or created, each refusal before anything is written. The pipeline
 * (pipeline.ts) reads the source and writes the target through what this holds.
 */
import { sameBytes } from '../bytes.js';
import { FastPatchError } from '../errors.js';
import { hex } from '../hex.js';
import { checkDisjoint, checkOtherNamesFree, createTarget, imageRange, openExistingTarget, openImageForRead, removeCreatedTarget, type OpenImage } from '../io/device.js';
import { DirectWriter } from '../io/direct-writer.js';
import type { WasmCore } from '../wasm/core.js';
import { hashOpenImage } from './hash-image.js';
import { checkDeclaredSize, checkReleases, needsRelease } from './limits.js';
import type { ApplyOptions } from './options.js';
import type { PayloadHead } from './reader.js';
import { scanTarget } from './resume.js';
import { hasTargetDictionaries, targetBlocksFromTarget, targetBlocksInTempFile, type TargetBlocks } from './target-blocks.js';

export class ApplyImages {
  target: OpenImage | undefined;
  /** Writes to a block device target, past the page cache (io/direct-writer.ts); none for a file. */
  direct: DirectWriter | undefined;
  source: OpenImage | undefined;
  /** The source as given (the whole file or device, or its range), for the overlap check. */
  private sourceExtent: OpenImage | undefined;
  /** A target created by this apply starts all zero, so ZERO operations need not write. */
  targetIsFresh = false;
  /** The target path when this apply created the file: removed by close() if nothing was written to it. */
  private createdPath: string | undefined;
  /** Earlier target blocks, when an operation's dictionary takes some (target-blocks.ts). */
  targetBlocks: TargetBlocks | undefined;
  /** With `resume`: done[i] = 1 for the operations the target already holds. */
  done: Uint8Array | undefined;
  /** Settles once the target is checked and open (accept()); rejects with what refused it. */
  ready: Promise<void> | undefined;

  /** `onFailure` hears a refusal of the target, which accept() does not wait for (unless resuming). */
  constructor(private readonly options: ApplyOptions, private readonly core: WasmCore, private readonly onFailure: (err: unknown) => void) {}

  async accept(head: PayloadHead): Promise<void> {
    if (hasTargetDictionaries(head.manifest)) {
      this.targetBlocks = this.options.target !== undefined ? targetBlocksFromTarget(() => this.target!) : await targetBlocksInTempFile(head.manifest);
    }
    checkReleases(head.manifest, this.options);
    // The source is opened and an existing target checked against it first: a target that is the
    // source is refused as such (USAGE), not as too small for the image. The source's checks cost
    // at most its real size, never the declared one.
    if (head.manifest.sourceSize > 0) await this.openSource(head);
    // The target's checks take a while (its identity, mounts and other names; creating a file):
    // operations are checked and decoded meanwhile, and each waits for the target before anything
    // grows with the declared size (its zero runs hashed) and before it writes (completeOperation).
    // A resumed apply needs the target first: it tells which operations to skip.
    const ready = this.openTarget(head);
    this.ready = ready;
    ready.catch(this.onFailure);
    if (this.options.resume) await ready;
  }

  /** The checks of the target, in order, and opening (or creating) it; see accept(). */
  private async openTarget(head: PayloadHead): Promise<void> {
    const size = head.manifest.targetSize;
    const range = this.options.targetRange;
    const existing = this.options.target === undefined ? undefined : await openExistingTarget(this.options.target, range);
    if (existing) this.target = existing;
    const existingRange = existing && range ? imageRange(existing, range.offset, range.length) : existing;
    // The bytes read and the bytes written must not meet, whatever names lead to them.
    if (this.sourceExtent && existingRange) await checkDisjoint(this.sourceExtent, existingRange);
    // Before anything whose cost grows with the declared size (target scan, hashing zero runs,
    // creating a file): the size must fit something real.
    await checkDeclaredSize(size, this.options);
    if (this.options.target === undefined) return;
    // Everything that can refuse the target is checked before a missing one is created, so that a
    // refused apply leaves no new file behind (and close() removes one nothing was written to).
    const opened = existing ?? (await createTarget(this.options.target, size));
    this.target = opened;
    if (!existing) this.createdPath = this.options.target;
    const target = range ? imageRange(opened, range.offset, range.length) : opened;
    this.target = target;
    this.targetIsFresh = target.created;
    if (target.size < size) {
      throw new FastPatchError('TARGET_TOO_SMALL', `target ${target.path} holds ${target.size} bytes, the image needs ${size}`);
    }
    if (existing) await checkOtherNamesFree(target);
    this.direct = await DirectWriter.open(target);
    if (this.options.resume && !target.created) {
      const onScan = this.options.onScanProgress;
      this.done = (await scanTarget(this.core, target, head.manifest, onScan && ((bytes) => onScan(bytes, size)))).done;
    } else if (this.options.resume) {
      this.done = new Uint8Array(head.manifest.operations.length);
    }
  }

  /** Opens a delta's source read-only and checks it before the target is opened. */
  private async openSource(head: PayloadHead): Promise<void> {
    const m = head.manifest;
    if (this.options.source === undefined) {
      throw new FastPatchError('USAGE', `this is a delta payload made from a ${m.sourceSize}-byte source image: give the image it applies to (--source)`);
    }
    const opened = await openImageForRead(this.options.source, 'source image', 'give the image the delta was made from (--source)');
    this.source = opened;
    const range = this.options.sourceRange;
    const source = range ? imageRange(opened, range.offset, range.length) : opened;
    // An image file must be the source image exactly; a partition (a device, or a range of a disk)
    // may be larger than the image it holds, whose bytes are its first sourceSize.
    const exact = !range && !source.isBlockDevice;
    if (exact ? source.size !== m.sourceSize : source.size < m.sourceSize) {
      throw new FastPatchError('SOURCE_MISMATCH', `source ${source.path} holds ${source.size} bytes, this delta was made from a source of ${m.sourceSize}${needsRelease(m)}`);
    }
    this.sourceExtent = source;
    this.source = imageRange(source, 0, m.sourceSize);
    if (this.options.checkSource) {
      const hash = await hashOpenImage(this.core, this.source, m.sourceSize);
      if (!sameBytes(hash, m.sourceHash)) {
        throw new FastPatchError('SOURCE_MISMATCH', `source ${source.path} is not the image this delta was made from (hash ${hex(hash)}, expected ${hex(m.sourceHash)})${needsRelease(m)}`);
      }
    }
  }

  /**
   * Closes the images (after the target's checks, if they still run). A target this apply created
   * and never wrote is removed: a refused apply leaves no new empty file behind; one with bytes
   * written stays, for --resume. Safe to call twice.
   */
  async close(keepCreated: boolean): Promise<void> {
    await this.ready?.catch(() => {});
    const target = this.target;
    this.target = undefined;
    if (target && this.createdPath !== undefined && !keepCreated) await removeCreatedTarget(this.createdPath, target);
    const direct = this.direct;
    this.direct = undefined;
    await direct?.close();
    await target?.handle.close();
    const source = this.source;
    this.source = undefined;
    await source?.handle.close();
    const targetBlocks = this.targetBlocks;
    this.targetBlocks = undefined;
    await targetBlocks?.close();
  }
}
