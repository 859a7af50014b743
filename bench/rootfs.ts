/**
 * A real root-filesystem image to benchmark on: ext4, 512 MiB, filled by `mkfs.ext4 -d` with a
 * deterministic selection of this machine's own files (executables, shared libraries, docs),
 * built once and cached outside the repository so later runs reuse it.
 *
 * Why real files: random data would not compress and synthetic text compresses too well; a
 * filesystem image also has the zero runs, inode tables and journal a real update carries.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, statfsSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { progress } from './harness.js';

const MiB = 1024 * 1024;

/** Bump when the selection or mkfs options change, so stale cached images are not reused. */
const RECIPE = 'v1';
export const IMAGE_BYTES = 512 * MiB;

/**
 * Where the files come from and how many bytes (unique inodes) to take from each: ~350 MiB of
 * files in a 512 MiB filesystem, about as full as a shipped rootfs partition.
 */
const SOURCES: readonly { dir: string; budget: number }[] = [
  { dir: '/usr/bin', budget: 140 * MiB },
  { dir: '/usr/lib/x86_64-linux-gnu', budget: 180 * MiB },
  { dir: '/usr/share/doc', budget: 30 * MiB },
];
/** Files above this are skipped so that no single library (libLLVM is 110 MiB) dominates the mix. */
const MAX_FILE = 24 * MiB;
// Fixed UUID, hash seed and clock so that rebuilding from the same files gives the same image.
const FS_UUID = '6c8f3e0a-4f1b-4a5e-9d1e-0fa57fa7c400';
const FAKE_TIME = '1767225600'; // 2026-01-01T00:00:00Z

export interface RootfsInfo {
  path: string;
  bytes: number;
  files: number;
  fileBytes: number;
  built: boolean;
}

/** The cache directory: /var/cache/fastpatch-bench if writable (we run as root), else ~/.cache. */
export function cacheDir(): string {
  return process.getuid?.() === 0 ? '/var/cache/fastpatch-bench' : join(homedir(), '.cache', 'fastpatch-bench');
}

/** Returns the cached image, building it first if it is missing. */
export async function ensureRootfs(): Promise<RootfsInfo> {
  const dir = cacheDir();
  const path = join(dir, `rootfs-${RECIPE}-512M.img`);
  const metaPath = `${path}.json`;
  if (existsSync(path) && existsSync(metaPath)) {
    const meta = JSON.parse(await fsp.readFile(metaPath, 'utf8')) as { files: number; fileBytes: number };
    const { size } = await fsp.stat(path);
    if (size === IMAGE_BYTES) return { path, bytes: size, files: meta.files, fileBytes: meta.fileBytes, built: false };
  }
  await fsp.mkdir(dir, { recursive: true });
  const staging = join(dir, `staging-${process.pid}`);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    progress(`rootfs: copying files into ${staging}`);
    const { files, fileBytes } = await stageFiles(staging);
    progress(`rootfs: ${files} files, ${(fileBytes / MiB).toFixed(0)} MiB; mkfs.ext4 -d → ${path}`);
    execFileSync('mkfs.ext4', ['-q', '-F', '-U', FS_UUID, '-E', `hash_seed=${FS_UUID},root_owner=0:0`, '-d', staging, tmp, '512M'], {
      stdio: ['ignore', 'ignore', 'inherit'], // stdout would land in the result tables
      env: { ...process.env, E2FSPROGS_FAKE_TIME: FAKE_TIME },
    });
    await fsp.rename(tmp, path);
    await fsp.writeFile(metaPath, `${JSON.stringify({ recipe: RECIPE, sources: SOURCES, maxFile: MAX_FILE, files, fileBytes }, null, 2)}\n`);
    return { path, bytes: IMAGE_BYTES, files, fileBytes, built: true };
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
    await fsp.rm(tmp, { force: true });
  }
}

interface Candidate {
  path: string;
  stats: Stats;
  /** Sort key: a hash of the relative path, i.e. a fixed pseudo-random order over the tree. */
  key: string;
}

/**
 * Copies each source's files in a fixed pseudo-random order (hash of the path) until its budget
 * is used, so the mix spans the whole tree instead of the alphabetically first directories.
 * Hard links stay hard links (mkfs.ext4 -d keeps them) and count once; symlinks are recreated;
 * devices, FIFOs and sockets are skipped.
 */
async function stageFiles(staging: string): Promise<{ files: number; fileBytes: number }> {
  let files = 0;
  let fileBytes = 0;
  const linked = new Map<string, string>(); // dev:ino → staged path
  for (const { dir, budget } of SOURCES) {
    const candidates: Candidate[] = [];
    await walk(dir, async (path, stats) => {
      if (!stats.isFile() && !stats.isSymbolicLink()) return;
      if (stats.isFile() && stats.size > MAX_FILE) return;
      candidates.push({ path, stats, key: createHash('sha256').update(relative('/', path)).digest('hex') });
    });
    candidates.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let used = 0;
    for (const { path, stats } of candidates) {
      const dest = join(staging, relative('/', path));
      const inode = `${stats.dev}:${stats.ino}`;
      const cost = stats.isFile() && !linked.has(inode) ? stats.size : 0;
      if (used + cost > budget) continue;
      await fsp.mkdir(dirname(dest), { recursive: true });
      if (stats.isSymbolicLink()) {
        await fsp.symlink(await fsp.readlink(path), dest);
      } else if (linked.has(inode)) {
        await fsp.link(linked.get(inode)!, dest);
      } else {
        try {
          await fsp.copyFile(path, dest);
        } catch {
          continue; // unreadable file: leave it out
        }
        await fsp.chmod(dest, stats.mode & 0o7777);
        await fsp.utimes(dest, stats.atime, stats.mtime);
        linked.set(inode, dest);
        fileBytes += stats.size;
      }
      used += cost;
      files++;
    }
  }
  return { files, fileBytes };
}

async function walk(dir: string, visit: (path: string, stats: Stats) => Promise<void>): Promise<void> {
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    const stats = await fsp.lstat(path);
    if (stats.isDirectory()) await walk(path, visit);
    else await visit(path, stats);
  }
}

/** Filesystem type of `path` is tmpfs (memory), where write benchmarks would not touch a disk. */
export function isTmpfs(path: string): boolean {
  return statfsSync(path).type === 0x01021994;
}
