/**
 * The delta benchmark corpus: pairs of ext4 images (old release → new release) built from real
 * Debian root filesystems, cached outside the repository so later runs reuse them.
 *
 * Why this material: a delta codec is only as good as the changes it is measured on. Release A is
 * a debootstrap of plain bookworm plus common server packages; release B is A after a real
 * `apt-get upgrade` from bookworm-updates/-security, packages added and removed and configs
 * edited. Rebuilding B into a fresh image with `mkfs.ext4 -d` shifts the block layout the way a
 * release build does; applying B's changes to a mounted copy of A's image keeps most blocks where
 * they were, as an in-place update does. Both kinds are in the corpus because they stress a
 * delta encoder differently (matches far away vs. at the same offset).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, promises as fsp, readFileSync, statSync, writeSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fmtMiB, onInterrupt, out, progress } from './harness.js';
import { cacheDir } from './rootfs.js';

const MiB = 1024 * 1024;

/** Bump when the packages, mirror suites or config edits change: the trees are rebuilt. */
const TREE_RECIPE = 'bookworm-v1';
/** Bump when mkfs options, the 64 MiB subset rule or the in-place procedure change: only images are rebuilt. */
const IMAGE_RECIPE = 'v1';

const MIRROR = 'http://deb.debian.org/debian';
const SECURITY_MIRROR = 'http://deb.debian.org/debian-security';
/** Release A: minbase plus what a small server carries (~340 MiB installed, no recommends). */
const SERVER_PACKAGES = [
  'systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'iproute2', 'iputils-ping', 'ifupdown', 'isc-dhcp-client',
  'netbase', 'openssh-server', 'ca-certificates', 'curl', 'wget', 'less', 'vim-tiny', 'nano', 'procps', 'sudo',
  'cron', 'logrotate', 'rsyslog', 'python3', 'perl', 'openssl', 'gnupg', 'file', 'xz-utils', 'bzip2', 'unzip',
  'tzdata', 'e2fsprogs',
];
/** Release B adds these and removes REMOVED, on top of whatever the upgrade brings. */
const ADDED_PACKAGES = ['nginx', 'jq', 'htop', 'tcpdump', 'rsync', 'strace', 'lsof', 'sysstat'];
const REMOVED_PACKAGES = ['nano'];

// Fixed UUID, hash seed and clock, so the images of A and B differ only where their files do.
const FS_UUID = '3a1d7c52-8e0b-4f6a-b1c9-5d2e7f40a8b1';
const FAKE_TIME = '1767225600'; // 2026-01-01T00:00:00Z

/**
 * The 64 MiB pair's rule, applied by path alone so that it picks the same files from both trees:
 * all of /etc and /usr/sbin, plus the files of /usr/bin and /usr/lib/x86_64-linux-gnu whose
 * path hash falls in the first SUBSET_SHARE/256 of the range (~45 MB in all).
 */
const SUBSET_WHOLE = ['etc', 'usr/sbin'];
const SUBSET_SAMPLED = ['usr/bin', 'usr/lib/x86_64-linux-gnu'];
const SUBSET_SHARE = 40;

export interface DeltaPair {
  name: string; // short id, e.g. 'debian-64M', 'debian-512M', 'inplace-512M'
  description: string; // one line: what changed between source and target
  source: string; // path of the old image (regular file)
  target: string; // path of the new image (same size as source)
  bytes: number; // image size in bytes
}

/** What the cold build learned, kept beside the pairs so a cached run can still print it. */
interface Manifest {
  recipe: string;
  pairs: DeltaPair[];
  trees: { name: string; bytes: number; packages: number }[];
  upgraded: string[];
  added: string[];
  removed: string[];
  inPlace: { written: number; metadata: number; deleted: number };
  buildSeconds: number;
}

let logPath = '';

/** Returns the corpus, building whatever is missing first (trees, then images). */
export async function ensureDeltaCorpus(): Promise<DeltaPair[]> {
  return (await ensureManifest()).pairs;
}

async function ensureManifest(): Promise<Manifest> {
  const dir = cacheDir();
  const prefix = join(dir, `delta-${TREE_RECIPE}-${IMAGE_RECIPE}`);
  const manifestPath = `${prefix}.json`;
  if (existsSync(manifestPath)) {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    const intact = (p: string, bytes: number): boolean => existsSync(p) && statSync(p).size === bytes;
    if (manifest.pairs.every((p) => intact(p.source, p.bytes) && intact(p.target, p.bytes))) return manifest;
  }
  const started = Date.now();
  await fsp.mkdir(dir, { recursive: true });
  logPath = join(dir, `delta-${TREE_RECIPE}.log`);
  await fsp.writeFile(logPath, '');
  progress(`delta corpus: building in ${dir} (command output in ${logPath})`);
  await removeStale(dir);

  const treeA = join(dir, `delta-${TREE_RECIPE}-tree-a`);
  const treeB = join(dir, `delta-${TREE_RECIPE}-tree-b`);
  await ensureDir(treeA, buildReleaseA);
  await ensureDir(treeB, (tmp) => buildReleaseB(treeA, tmp));
  const pkgA = packages(treeA);
  const pkgB = packages(treeB);
  const upgraded = [...pkgB].filter(([n, v]) => pkgA.has(n) && pkgA.get(n) !== v).map(([n]) => n);
  const added = [...pkgB.keys()].filter((n) => !pkgA.has(n));
  const removed = [...pkgA.keys()].filter((n) => !pkgB.has(n));
  const change = `${upgraded.length} packages upgraded (bookworm-updates/-security), ${added.length} added, ${removed.length} removed, /etc edited`;

  const img = (name: string): string => `${prefix}-${name}.img`;
  await ensureImage(img('debian-512M-a'), treeA, 512);
  await ensureImage(img('debian-512M-b'), treeB, 512);
  for (const [tree, side] of [[treeA, 'a'], [treeB, 'b']] as const) {
    await ensureDir(`${prefix}-subset-${side}`, (tmp) => stageSubset(tree, tmp));
    await ensureImage(img(`debian-64M-${side}`), `${prefix}-subset-${side}`, 64);
  }
  const inPlace = await ensureInPlace(img('inplace-512M-b'), img('debian-512M-a'), treeB);

  const manifest: Manifest = {
    recipe: `${TREE_RECIPE}-${IMAGE_RECIPE}`,
    pairs: [
      { name: 'debian-64M', description: `/etc, /usr/sbin and ${Math.round((100 * SUBSET_SHARE) / 256)}% of /usr/bin, /usr/lib/x86_64-linux-gnu (by path hash); ${change}; fresh mkfs`, source: img('debian-64M-a'), target: img('debian-64M-b'), bytes: 64 * MiB },
      { name: 'debian-512M', description: `bookworm server rootfs; ${change}; fresh mkfs (layout shifts)`, source: img('debian-512M-a'), target: img('debian-512M-b'), bytes: 512 * MiB },
      { name: 'inplace-512M', description: `same change applied in place to a mounted copy of the source (${inPlace.written} files rewritten, ${inPlace.deleted} deleted)`, source: img('debian-512M-a'), target: img('inplace-512M-b'), bytes: 512 * MiB },
    ],
    trees: [
      { name: 'release A', bytes: diskUsage(treeA), packages: pkgA.size },
      { name: 'release B', bytes: diskUsage(treeB), packages: pkgB.size },
    ],
    upgraded,
    added,
    removed,
    inPlace,
    buildSeconds: Math.round((Date.now() - started) / 1000),
  };
  await fsp.writeFile(`${manifestPath}.tmp-${process.pid}`, `${JSON.stringify(manifest, null, 2)}\n`);
  await fsp.rename(`${manifestPath}.tmp-${process.pid}`, manifestPath);
  progress(`delta corpus: built in ${manifest.buildSeconds} s`);
  return manifest;
}

/** Release A: plain bookworm only (no -updates/-security), so that B has real upgrades to take. */
async function buildReleaseA(root: string): Promise<void> {
  progress('delta corpus: debootstrap --variant=minbase bookworm (release A)');
  run('debootstrap', ['--variant=minbase', 'bookworm', root, MIRROR]);
  progress(`delta corpus: installing ${SERVER_PACKAGES.length} server packages`);
  inChroot(root, ['apt-get -q update', `apt-get -y -q install ${SERVER_PACKAGES.join(' ')}`]);
  await writeEtc(root, {
    hostname: 'edge-01\n',
    hosts: '127.0.0.1\tlocalhost\n127.0.1.1\tedge-01\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    fstab: `UUID=${FS_UUID}\t/\text4\terrors=remount-ro\t0\t1\n`,
    'fastpatch-release': 'NAME="FastPatch bench rootfs"\nVERSION_ID=2026.1\nBASE=debian-bookworm\n',
  });
  await finishTree(root);
}

/** Release B: a copy of A, upgraded and changed in a chroot the way a next release would be. */
async function buildReleaseB(treeA: string, root: string): Promise<void> {
  progress('delta corpus: copying release A, then upgrade/install/purge in a chroot (release B)');
  run('cp', ['-a', treeA, root]);
  await writeEtc(root, {
    'apt/sources.list': [`deb ${MIRROR} bookworm main`, `deb ${MIRROR} bookworm-updates main`, `deb ${SECURITY_MIRROR} bookworm-security main`, ''].join('\n'),
    'resolv.conf': await fsp.readFile('/etc/resolv.conf', 'utf8'), // the chroot needs DNS; finishTree resets it
  });
  inChroot(root, [
    'apt-get -q update',
    'apt-get -y -q upgrade',
    `apt-get -y -q install ${ADDED_PACKAGES.join(' ')}`,
    `apt-get -y -q purge ${REMOVED_PACKAGES.join(' ')}`,
  ]);
  const edit = async (rel: string, fn: (text: string) => string): Promise<void> => {
    const path = join(root, 'etc', rel);
    await fsp.writeFile(path, fn(await fsp.readFile(path, 'utf8')));
  };
  await edit('ssh/sshd_config', (t) => t.replace('#PermitRootLogin prohibit-password', 'PermitRootLogin no').replace('#PasswordAuthentication yes', 'PasswordAuthentication no').replace('X11Forwarding yes', 'X11Forwarding no'));
  await edit('nginx/nginx.conf', (t) => t.replace('worker_connections 768;', 'worker_connections 2048;'));
  await edit('fstab', (t) => `${t}tmpfs\t/tmp\ttmpfs\tnosuid,nodev,size=256M\t0\t0\n`);
  await writeEtc(root, {
    hostname: 'edge-02\n',
    hosts: '127.0.0.1\tlocalhost\n127.0.1.1\tedge-02\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    'fastpatch-release': 'NAME="FastPatch bench rootfs"\nVERSION_ID=2026.2\nBASE=debian-bookworm\n',
    'ssh/sshd_config.d/50-fastpatch.conf': 'ClientAliveInterval 60\nMaxAuthTries 3\n',
    'sysctl.d/90-fastpatch.conf': 'net.core.somaxconn = 4096\nvm.swappiness = 10\n',
    'nginx/conf.d/status.conf': 'server {\n\tlisten 127.0.0.1:8080;\n\tlocation /status { stub_status; }\n}\n',
  });
  await finishTree(root);
}

/** Both trees hold an installed system, not downloads: no .debs, package lists or apt caches. */
async function finishTree(root: string): Promise<void> {
  const emptyDir = async (rel: string, keep: (name: string) => boolean): Promise<void> => {
    for (const name of await fsp.readdir(join(root, rel))) if (!keep(name)) await fsp.rm(join(root, rel, name), { recursive: true, force: true });
  };
  await emptyDir('var/cache/apt/archives', (n) => !n.endsWith('.deb'));
  await emptyDir('var/cache/apt', (n) => !n.endsWith('.bin'));
  await emptyDir('var/lib/apt/lists', (n) => n === 'partial' || n === 'lock');
  await writeEtc(root, { 'resolv.conf': 'nameserver 192.0.2.53\n' }); // not the build host's resolver
}

async function writeEtc(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const path = join(root, 'etc', rel);
    await fsp.mkdir(dirname(path), { recursive: true });
    await fsp.rm(path, { force: true }); // may be a symlink into the host's view
    await fsp.writeFile(path, text);
  }
}

/**
 * Runs shell commands in a chroot with a fresh /proc (dpkg scripts read it) and a policy-rc.d
 * that stops packages from starting daemons; both are undone whatever happens.
 */
function inChroot(root: string, commands: string[]): void {
  const policy = join(root, 'usr/sbin/policy-rc.d');
  const proc = join(root, 'proc');
  const unhook = onInterrupt(() => execFileSync('umount', ['-l', proc]));
  execFileSync('sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' > "$1" && chmod 755 "$1"`, 'sh', policy]);
  run('mount', ['-t', 'proc', 'proc', proc]);
  try {
    const apt = '-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o APT::Install-Recommends=false';
    run('chroot', [root, '/bin/sh', '-ec', commands.map((c) => c.replace(/^apt-get /, `apt-get ${apt} `)).join('\n')], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' },
    });
  } finally {
    unmountUnder(root);
    unhook();
    execFileSync('rm', ['-f', policy]);
  }
}

/** Package name → version, read from a tree's dpkg database by the host's dpkg-query. */
function packages(root: string): Map<string, string> {
  const text = execFileSync('dpkg-query', [`--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f', '${binary:Package}\t${Version}\n'], { encoding: 'utf8' });
  return new Map(text.trim().split('\n').map((line) => line.split('\t') as [string, string]));
}

function diskUsage(path: string): number {
  return Number(execFileSync('du', ['-sx', '--block-size=1', path], { encoding: 'utf8' }).split('\t')[0]);
}

/** Copies the 64 MiB pair's share of a tree (see SUBSET_SHARE), keeping owners, modes and xattrs. */
async function stageSubset(tree: string, staging: string): Promise<void> {
  const picked: string[] = [...SUBSET_WHOLE];
  for (const top of SUBSET_SAMPLED) {
    await walk(join(tree, top), top, async (rel, stats) => {
      if (!stats.isDirectory() && createHash('sha256').update(rel).digest()[0]! < SUBSET_SHARE) picked.push(rel);
    });
  }
  await fsp.mkdir(staging);
  copyPaths(tree, picked, staging);
}

/** `cp -a --parents` in batches: new parent directories get their source's owner and mode. */
function copyPaths(from: string, rels: readonly string[], to: string): void {
  for (let i = 0; i < rels.length; i += 500) run('cp', ['-a', '--parents', '--', ...rels.slice(i, i + 500), to], { cwd: from });
}

/**
 * One image from a tree: mkfs.ext4 -d into a temporary file, e2fsck, then rename. 4 KiB blocks
 * even at 64 MiB (mke2fs would pick 1 KiB there), as on real root filesystems: it is the unit
 * files are aligned to, so it decides which blocks of two images can match at all.
 */
async function ensureImage(path: string, tree: string, mib: number): Promise<void> {
  if (existsSync(path)) return; // renamed into place only once complete
  progress(`delta corpus: mkfs.ext4 -d ${tree} → ${path}`);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-U', FS_UUID, '-E', `hash_seed=${FS_UUID},root_owner=0:0`, '-d', tree, tmp, `${mib}M`], {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: FAKE_TIME },
    });
    fsck(tmp);
    await fsp.rename(tmp, path);
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

/**
 * The in-place target: a copy of A's image, loop-mounted, with B's changes written into it
 * (changed files rewritten over their old path, new ones created, removed ones deleted), then
 * checked file by file against tree B.
 */
async function ensureInPlace(path: string, sourceImage: string, treeB: string): Promise<Manifest['inPlace']> {
  const tmp = `${path}.tmp-${process.pid}`;
  const mnt = `${path}.mnt.tmp-${process.pid}`;
  progress(`delta corpus: applying release B in place to a copy of ${sourceImage}`);
  try {
    run('cp', ['--sparse=always', sourceImage, tmp]);
    await fsp.mkdir(mnt);
    run('mount', ['-o', 'loop', tmp, mnt]);
    const unhook = onInterrupt(() => execFileSync('umount', ['-l', mnt])); // lazy: our own open files keep it busy
    let counts: Manifest['inPlace'];
    try {
      counts = await applyTree(treeB, mnt);
      const left = (await diffTree(treeB, mnt)).filter((d) => d.kind !== 'metadata');
      if (left.length > 0) throw new Error(`in-place image still differs from release B at ${left.length} paths, e.g. /${left[0]!.rel}`);
    } finally {
      run('umount', [mnt]);
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

interface Difference {
  rel: string;
  kind: 'write' | 'metadata' | 'delete' | 'mkdir';
}

/** What it takes to turn `have` into `want`, by type, content, owner, mode and mtime. */
async function diffTree(want: string, have: string): Promise<Difference[]> {
  const list = async (root: string): Promise<Map<string, Stats>> => {
    const entries = new Map<string, Stats>();
    for (const name of await fsp.readdir(root)) {
      if (name === 'lost+found') continue; // made by mkfs, not part of the tree
      await walk(join(root, name), name, async (rel, stats) => void entries.set(rel, stats), true);
    }
    return entries;
  };
  const [w, h] = [await list(want), await list(have)];
  const type = (s: Stats): number => s.mode & 0o170000;
  const diffs: Difference[] = [];
  for (const [rel, hs] of h) {
    const ws = w.get(rel);
    if (!ws || type(ws) !== type(hs)) diffs.push({ rel, kind: 'delete' });
  }
  for (const [rel, ws] of w) {
    const hs = h.get(rel);
    const recreate = !hs || type(ws) !== type(hs);
    if (ws.isDirectory()) {
      if (recreate) diffs.push({ rel, kind: 'mkdir' });
      continue;
    }
    let same = !recreate;
    if (same && ws.isFile()) same = ws.size === hs!.size && (await fsp.readFile(join(want, rel))).equals(await fsp.readFile(join(have, rel)));
    else if (same && ws.isSymbolicLink()) same = (await fsp.readlink(join(want, rel))) === (await fsp.readlink(join(have, rel)));
    else if (same) same = ws.rdev === hs!.rdev;
    if (!same) diffs.push({ rel, kind: 'write' });
    else if (ws.isFile() && (ws.mode !== hs!.mode || ws.uid !== hs!.uid || ws.gid !== hs!.gid || ws.mtimeMs !== hs!.mtimeMs)) diffs.push({ rel, kind: 'metadata' });
  }
  return diffs;
}

async function applyTree(from: string, to: string): Promise<Manifest['inPlace']> {
  const diffs = await diffTree(from, to);
  const of = (kind: Difference['kind']): string[] => diffs.filter((d) => d.kind === kind).map((d) => d.rel).sort();
  for (const rel of of('delete').reverse()) await fsp.rm(join(to, rel), { recursive: true, force: true });
  // A changed symlink or device node cannot be overwritten by cp; a regular file is, in place.
  for (const rel of of('write')) if (!(await fsp.lstat(join(to, rel)).catch(() => undefined))?.isFile()) await fsp.rm(join(to, rel), { force: true });
  for (const rel of of('mkdir')) await fsp.mkdir(join(to, rel)); // parents sort first
  copyPaths(from, of('write'), to);
  for (const rel of of('metadata')) await copyMetadata(join(from, rel), join(to, rel));
  // Writing into directories moved their mtimes; give every directory B's, deepest first.
  const dirs: string[] = [];
  await walk(from, '', async (rel, stats) => void (stats.isDirectory() && dirs.push(rel)), true);
  for (const rel of dirs.reverse()) await copyMetadata(join(from, rel), join(to, rel));
  return { written: of('write').length, metadata: of('metadata').length, deleted: of('delete').length };
}

async function copyMetadata(from: string, to: string): Promise<void> {
  const s = await fsp.lstat(from);
  await fsp.lchown(to, s.uid, s.gid);
  await fsp.chmod(to, s.mode & 0o7777);
  await fsp.utimes(to, s.atime, s.mtime);
}

/** Visits everything under `path` (directories too when asked), in sorted order, without following symlinks. */
async function walk(path: string, rel: string, visit: (rel: string, stats: Stats) => Promise<void>, dirs = false): Promise<void> {
  const stats = await fsp.lstat(path);
  if (!stats.isDirectory()) return visit(rel, stats);
  if (dirs && rel !== '') await visit(rel, stats);
  for (const name of (await fsp.readdir(path)).sort()) await walk(join(path, name), rel === '' ? name : `${rel}/${name}`, visit, dirs);
}

function fsck(image: string): void {
  try {
    run('e2fsck', ['-fn', image]);
  } catch (err) {
    throw new Error(`e2fsck -fn found problems in ${image}: ${(err as Error).message}`);
  }
}

/** Runs a build command with its output appended to the log; a failure quotes the log's tail. */
function run(cmd: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const fd = openSync(logPath || '/dev/null', 'a');
  try {
    writeSync(fd, `\n$ ${cmd} ${args.length > 12 ? `${args.slice(0, 12).join(' ')} … (${args.length} args)` : args.join(' ')}\n`);
    execFileSync(cmd, args, { ...options, stdio: ['ignore', fd, fd] });
  } catch (err) {
    const tail = logPath ? readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n') : '';
    throw new Error(`${cmd} failed (${(err as Error).message.split('\n')[0]}); log ${logPath}:\n${tail}`);
  } finally {
    closeSync(fd);
  }
}

/** Builds a cached directory under a temporary name and renames it into place when complete. */
async function ensureDir(path: string, build: (tmp: string) => Promise<void>): Promise<void> {
  if (existsSync(path)) return;
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await build(tmp);
    await fsp.rename(tmp, path);
  } finally {
    if (existsSync(tmp)) removeTree(tmp);
  }
}

/** Unmounts anything mounted under `root`, deepest first (debootstrap or a chroot may leave /proc). */
function unmountUnder(root: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const m of mounts.filter((m) => m === root || m.startsWith(`${root}/`)).sort().reverse()) {
    try {
      execFileSync('umount', [m]);
    } catch {
      execFileSync('umount', ['-l', m]); // busy: detach now, the kernel finishes when it is idle
    }
  }
}

/** rm -rf that never crosses into a mounted filesystem (a chroot's /proc, a loop mount). */
function removeTree(path: string): void {
  unmountUnder(path);
  execFileSync('rm', ['-rf', '--one-file-system', path]);
}

/** Removes leftovers of interrupted builds (`*.tmp-PID` whose process is gone). */
async function removeStale(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    const pid = /^delta-.*\.tmp-(\d+)$/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid || alive(Number(pid))) continue;
    progress(`delta corpus: removing leftover ${name}`);
    removeTree(join(dir, name));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The layout-shift figure: of the target's non-zero 4 KiB blocks, how many equal the source's
 * block at the same offset, and how many equal some source block anywhere.
 */
async function blockFigures(source: string, target: string): Promise<string> {
  const BLOCK = 4096;
  const zero = Buffer.alloc(BLOCK);
  const [src, tgt] = [await fsp.readFile(source), await fsp.readFile(target)];
  const seen = new Set<string>();
  for (let o = 0; o < src.length; o += BLOCK) seen.add(createHash('sha1').update(src.subarray(o, o + BLOCK)).digest('base64'));
  let nonZero = 0;
  let sameOffset = 0;
  let anywhere = 0;
  for (let o = 0; o < tgt.length; o += BLOCK) {
    const block = tgt.subarray(o, o + BLOCK);
    if (block.equals(zero)) continue;
    nonZero++;
    if (block.equals(src.subarray(o, o + BLOCK))) sameOffset++;
    if (seen.has(createHash('sha1').update(block).digest('base64'))) anywhere++;
  }
  const pct = (n: number): string => `${((100 * n) / nonZero).toFixed(1)}%`;
  return `${tgt.length / BLOCK} blocks, ${nonZero} non-zero in target: same offset ${sameOffset} (${pct(sameOffset)}), anywhere in source ${anywhere} (${pct(anywhere)})`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const manifest = await ensureManifest();
  progress(`delta corpus: ready in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  for (const t of manifest.trees) out(`${t.name}: ${t.packages} packages, ${fmtMiB(t.bytes)} on disk`);
  out(`B vs A: ${manifest.upgraded.length} upgraded, ${manifest.added.length} added, ${manifest.removed.length} removed (${manifest.removed.join(' ')})`);
  for (const pair of manifest.pairs) {
    out(`${pair.name}\t${fmtMiB(pair.bytes)}\t${pair.source} → ${pair.target}`);
    out(`  ${pair.description}`);
    out(`  ${await blockFigures(pair.source, pair.target)}`);
  }
}
