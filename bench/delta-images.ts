/**
 * The delta corpus's images: a fresh `mkfs.ext4 -d` of a tree, made the way a release build makes
 * one, and the in-place target (the old image, loop-mounted, updated by rsync), plus the figure
 * that says how hard a pair is: how much of the new image occurs nowhere in the old one.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { onInterrupt, progress } from './harness.js';
import { capture, run } from './delta-shell.js';

const BLOCK = 4096;

/**
 * What mkfs stamps on a filesystem besides the files: a real release build gets a new UUID
 * (which seeds every metadata_csum checksum, so every inode table, bitmap, directory and extent
 * block differs from the last release's even where the files did not change), a new directory
 * hash seed and its own clock. Derived from the release's name so a rebuild gives the same image.
 */
export interface FsIdentity {
  uuid: string;
  hashSeed: string;
  /** Seconds since the epoch: mkfs's clock (superblock times, lost+found, the root directory). */
  time: number;
  label: string;
}

export function fsIdentity(release: string, time: number, label: string): FsIdentity {
  return { uuid: uuidFrom(`${release} filesystem UUID`), hashSeed: uuidFrom(`${release} directory hash seed`), time, label };
}

/** A version-4-shaped UUID from the SHA-256 of `text`. */
function uuidFrom(text: string): string {
  const h = createHash('sha256').update(`fastpatch-bench ${text}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * One image from a tree: mkfs.ext4 -d into a temporary file, e2fsck, then rename. 4 KiB blocks
 * even at 64 MiB (mke2fs would pick 1 KiB there), as on real root filesystems: it is the unit
 * files are aligned to, so it decides which blocks of two images can match at all.
 */
export async function ensureImage(path: string, tree: string, mib: number, id: FsIdentity): Promise<void> {
  if (existsSync(path)) return; // renamed into place only once complete
  progress(`delta corpus: mkfs.ext4 -d ${tree} → ${path}`);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-L', id.label, '-U', id.uuid, '-E', `hash_seed=${id.hashSeed},root_owner=0:0`, '-d', tree, tmp, `${mib}M`], {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: String(id.time) },
    });
    fsck(tmp);
    await fsp.rename(tmp, path);
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

/** What the in-place update changed, from rsync's itemized list. */
export interface InPlaceCounts {
  /** Regular files written (new or changed content): rsync writes each to a new inode and renames it. */
  written: number;
  /** Of those, files that did not exist before. */
  created: number;
  /** Paths whose owner, mode or times alone changed. */
  metadata: number;
  deleted: number;
}

/**
 * The in-place target: a copy of the old image on a loop device, mounted read-write by the kernel,
 * and `rsync -aHAX --delete` of the new tree into it, as an in-place update does (the kernel's
 * allocator places new files in the old image's free space and frees what is replaced). A
 * checksum pass of rsync over the read-only remount then proves the image holds the new tree.
 */
export async function ensureInPlace(path: string, sourceImage: string, tree: string): Promise<InPlaceCounts> {
  const tmp = `${path}.tmp-${process.pid}`;
  const mnt = `${path}.mnt.tmp-${process.pid}`;
  // lost+found belongs to the filesystem, not to the tree: neither copied nor deleted.
  const rsync = (extra: string[]): string => capture('rsync', ['-aHAX', '--delete', '--itemize-changes', '--exclude=/lost+found', ...extra, `${tree}/`, `${mnt}/`]);
  progress(`delta corpus: rsync of ${tree} into a loop-mounted copy of ${sourceImage}`);
  try {
    run('cp', ['--sparse=always', sourceImage, tmp]);
    await fsp.mkdir(mnt);
    const loop = capture('losetup', ['--find', '--show', tmp]).trim();
    // No finally runs on Ctrl-C: lazy, because this process's own open files may keep it busy.
    const unhook = onInterrupt(() => {
      for (const [cmd, arg] of [['umount', ['-l', mnt]], ['losetup', ['-d', loop]]] as const) {
        try {
          execFileSync(cmd, arg);
        } catch {
          // not mounted yet, or already detached
        }
      }
    });
    let counts: InPlaceCounts;
    try {
      run('mount', ['-t', 'ext4', '-o', 'rw', loop, mnt]);
      try {
        counts = countChanges(rsync([]));
        run('mount', ['-o', 'remount,ro', mnt]); // ro: the check must not change atimes
        const left = rsync(['--dry-run', '--checksum']).trim();
        if (left !== '') throw new Error(`the in-place image still differs from the new tree: ${left.split('\n').slice(0, 3).join('; ')}`);
      } finally {
        run('umount', [mnt]);
      }
    } finally {
      run('losetup', ['-d', loop]);
      unhook();
    }
    fsck(tmp);
    await fsp.rename(tmp, path);
    return counts;
  } finally {
    await fsp.rmdir(mnt).catch(() => undefined); // rmdir, not rm -r: never recurse into a mount
    await fsp.rm(tmp, { force: true });
  }
}

/** Counts rsync's --itemize-changes lines ("YXcstpoguax path", or "*deleting path"). */
function countChanges(itemized: string): InPlaceCounts {
  const counts: InPlaceCounts = { written: 0, created: 0, metadata: 0, deleted: 0 };
  for (const line of itemized.split('\n')) {
    if (line.startsWith('*deleting')) counts.deleted++;
    else if (line.startsWith('>f')) {
      counts.written++;
      if (line.startsWith('>f+++++++++')) counts.created++;
    } else if (/^\.[fdLDS]/.test(line)) counts.metadata++;
  }
  return counts;
}

function fsck(image: string): void {
  try {
    run('e2fsck', ['-fn', image]);
  } catch (err) {
    throw new Error(`e2fsck -fn found problems in ${image}: ${(err as Error).message}`);
  }
}

/** How the new image's 4 KiB blocks relate to the old image's. */
export interface BlockFigures {
  blocks: number;
  nonZero: number;
  /** Non-zero blocks equal to the old image's block at the same offset. */
  sameOffset: number;
  /** Blocks whose content occurs nowhere in the old image: what no block-level match can supply. */
  novel: number;
}

export async function blockFigures(source: string, target: string): Promise<BlockFigures> {
  const zero = Buffer.alloc(BLOCK);
  const [src, tgt] = [await fsp.readFile(source), await fsp.readFile(target)];
  const key = (block: Buffer): string => createHash('sha1').update(block).digest('base64');
  const seen = new Set<string>();
  for (let o = 0; o < src.length; o += BLOCK) seen.add(key(src.subarray(o, o + BLOCK)));
  const f: BlockFigures = { blocks: Math.ceil(tgt.length / BLOCK), nonZero: 0, sameOffset: 0, novel: 0 };
  for (let o = 0; o < tgt.length; o += BLOCK) {
    const block = tgt.subarray(o, o + BLOCK);
    if (!seen.has(key(block))) f.novel++;
    if (block.equals(zero)) continue;
    f.nonZero++;
    if (block.equals(src.subarray(o, o + BLOCK))) f.sameOffset++;
  }
  return f;
}

/** "24,310 of 131,072 blocks (18.5%, 95.0 MiB) occur nowhere in the old image". */
export function fmtNovel(f: BlockFigures): string {
  return `${f.novel.toLocaleString('en-US')} of ${f.blocks.toLocaleString('en-US')} blocks (${((100 * f.novel) / f.blocks).toFixed(1)}%, ${((f.novel * BLOCK) / 2 ** 20).toFixed(1)} MiB) of the new image occur nowhere in the old one`;
}
