/**
 * The protective MBR at LBA 0 (UEFI 2.10 §5.2.3; reference notes §4.1). It occupies the first 512
 * bytes of LBA 0 for every sector size. No I/O: buffers in, buffers out.
 */

/** Bytes of an MBR; on 4096-byte sectors the rest of LBA 0 is left alone. */
export const MBR_SIZE = 512;
/** Partition type of the record that covers a GPT disk. */
export const PROTECTIVE_TYPE = 0xee;

const RECORDS_OFFSET = 446;
const RECORD_SIZE = 16;
const SIGNATURE_OFFSET = 510;

/** One of the four 16-byte MBR partition records. */
export interface MbrRecord {
  bootIndicator: number;
  osType: number;
  startingLba: number;
  sizeInLba: number;
}

/**
 * What LBA 0 holds, judged as the Linux kernel does (`gpt_is_pmbr_valid`): a `0x55AA` signature
 * and some record of type 0xEE starting at LBA 1 make the disk a GPT disk.
 */
export interface MbrInfo {
  /**
   * 'protective': one 0xEE record at LBA 1 and three empty records; 'hybrid': a 0xEE record at LBA
   * 1 plus other records (accepted by every reader); 'missing': no valid protective record, so the
   * kernel ignores the GPT.
   */
  kind: 'protective' | 'hybrid' | 'missing';
  /** Why it is 'missing', or '' otherwise. One line. */
  reason: string;
  /** True when the 0xEE record's SizeInLBA is min(diskSectors − 1, 0xFFFFFFFF). Only a debug message in the kernel. */
  sizeMatches: boolean;
  records: MbrRecord[];
}

/** SizeInLBA a protective record should carry for a disk of `diskSectors` logical sectors. */
export function protectiveSize(diskSectors: number): number {
  return Math.min(diskSectors - 1, 0xffffffff);
}

/**
 * Parses the MBR in the first 512 bytes of `lba0` for a disk of `diskSectors` sectors.
 * Never throws for bad data: a short buffer or a missing signature is kind 'missing'.
 */
export function parseMbr(lba0: Uint8Array, diskSectors: number): MbrInfo {
  if (lba0.length < MBR_SIZE) {
    return { kind: 'missing', reason: `LBA 0 has ${lba0.length} bytes, an MBR needs ${MBR_SIZE}`, sizeMatches: false, records: [] };
  }
  const v = new DataView(lba0.buffer, lba0.byteOffset, MBR_SIZE);
  const records: MbrRecord[] = [];
  for (let i = 0; i < 4; i++) {
    const at = RECORDS_OFFSET + i * RECORD_SIZE;
    records.push({
      bootIndicator: v.getUint8(at),
      osType: v.getUint8(at + 4),
      startingLba: v.getUint32(at + 8, true),
      sizeInLba: v.getUint32(at + 12, true),
    });
  }
  if (v.getUint8(SIGNATURE_OFFSET) !== 0x55 || v.getUint8(SIGNATURE_OFFSET + 1) !== 0xaa) {
    return { kind: 'missing', reason: 'LBA 0 has no 55 AA boot signature', sizeMatches: false, records };
  }
  const protective = records.find((r) => r.osType === PROTECTIVE_TYPE && r.startingLba === 1);
  if (protective === undefined) {
    return { kind: 'missing', reason: 'LBA 0 has no partition record of type 0xEE starting at LBA 1', sizeMatches: false, records };
  }
  const others = records.filter((r) => r !== protective && (r.osType !== 0 || r.startingLba !== 0 || r.sizeInLba !== 0));
  // A record whose bytes are all zero except the CHS fields still counts as empty here.
  return {
    kind: others.length === 0 ? 'protective' : 'hybrid',
    reason: '',
    sizeMatches: protective.sizeInLba === protectiveSize(diskSectors),
    records,
  };
}

/**
 * Builds LBA 0 of a GPT disk: a 512-byte protective MBR, padded with zeros to `sectorSize`.
 * When `base` (the current LBA 0) is given, its boot code and disk signature (bytes 0..445) and
 * any bytes past 512 are kept, and only the four records and the signature are rewritten.
 * Throws RangeError for a bad sector size or disk size.
 */
export function buildProtectiveMbr(diskSectors: number, sectorSize: number, base?: Uint8Array): Uint8Array {
  if (sectorSize !== 512 && sectorSize !== 4096) throw new RangeError(`sectorSize ${sectorSize} must be 512 or 4096`);
  if (!Number.isSafeInteger(diskSectors) || diskSectors < 2) throw new RangeError(`diskSectors ${diskSectors} is not a disk size`);
  const out = new Uint8Array(sectorSize);
  if (base !== undefined) out.set(base.subarray(0, Math.min(base.length, sectorSize)));
  out.fill(0, RECORDS_OFFSET, SIGNATURE_OFFSET);
  const v = new DataView(out.buffer);
  const at = RECORDS_OFFSET;
  // Start CHS 00 02 00 (cylinder 0, head 0, sector 2 = LBA 1); end CHS FF FF FF ("beyond CHS").
  out.set([0x00, 0x00, 0x02, 0x00, PROTECTIVE_TYPE, 0xff, 0xff, 0xff], at);
  v.setUint32(at + 8, 1, true);
  v.setUint32(at + 12, protectiveSize(diskSectors), true);
  out[SIGNATURE_OFFSET] = 0x55;
  out[SIGNATURE_OFFSET + 1] = 0xaa;
  return out;
}
