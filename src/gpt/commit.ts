/**
 * The order in which a changed GPT reaches the disk (gpt-ab-switching.md §5.3, order "X"): backup
 * header and backup entries first, flush; then the primary header, flush; then the primary
 * entries, flush. Every intermediate state is one that Flatcar's GRUB itself produces and that
 * neither GRUB nor vboot rejects: until the primary header changes, every reader uses the old
 * primary; once it has changed, the backup already holds the new table the new header describes.
 * Sgdisk's order (backup entries, backup header, primary entries, primary header) and cgpt's
 * (primary first) each leave a window in which GRUB aborts the boot.
 *
 * Only sectors whose bytes change are written, so a flip that changes one entry writes four
 * sectors. Pure planning: the caller reads the current sectors and performs the writes.
 */

/** Where a region of a GPT lives and what it must hold after the change. */
export interface GptRegion {
  role: 'primary-header' | 'primary-entries' | 'backup-header' | 'backup-entries';
  lba: number;
  /** New bytes, a whole number of sectors. */
  bytes: Uint8Array;
}

export interface SectorWrite {
  role: GptRegion['role'] | 'pmbr';
  lba: number;
  bytes: Uint8Array;
}

/** Phases of writes; the disk is flushed after each phase. */
export type CommitPlan = SectorWrite[][];

const PHASES: readonly (readonly GptRegion['role'][])[] = [['backup-header', 'backup-entries'], ['primary-header'], ['primary-entries']];

/**
 * The writes that take the disk from `current` (a reader of the sectors as they are now) to
 * `regions`, phased as above, one write per changed sector. Empty phases are dropped.
 */
export function commitPlan(regions: readonly GptRegion[], sectorSize: number, current: (lba: number, count: number) => Uint8Array): CommitPlan {
  const plan: CommitPlan = [];
  for (const roles of PHASES) {
    const phase: SectorWrite[] = [];
    // In role order: within the backup phase the header goes first (state S1, then S2), as GRUB writes it.
    for (const region of roles.flatMap((role) => regions.filter((r) => r.role === role))) {
      if (region.bytes.length % sectorSize !== 0) throw new RangeError(`${region.role}: ${region.bytes.length} bytes is not whole sectors`);
      const count = region.bytes.length / sectorSize;
      const old = current(region.lba, count);
      for (let i = 0; i < count; i++) {
        const next = region.bytes.subarray(i * sectorSize, (i + 1) * sectorSize);
        if (Buffer.compare(next, old.subarray(i * sectorSize, (i + 1) * sectorSize)) !== 0) {
          phase.push({ role: region.role, lba: region.lba + i, bytes: next });
        }
      }
    }
    if (phase.length > 0) plan.push(phase);
  }
  return plan;
}
