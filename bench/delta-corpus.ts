/**
 * The delta benchmark corpus: pairs of ext4 images (old release → new release) built from real
 * Debian root filesystems, cached outside the repository so later runs reuse them.
 *
 * Why this material: a delta codec is only as good as the changes it is measured on, and the
 * corpus must be as hard as real release pairs. Release A is a debootstrap of plain bookworm plus
 * common server packages; release B is A a month later: every upgrade from bookworm-updates/
 * -security, sizeable packages added (mariadb-client, redis: new content that no old block
 * holds and that repeats itself), one sizeable package removed and configs edited. Each release
 * is built into a fresh image with its own filesystem UUID, hash seed and clock, as a release
 * build does, so the layout shifts and every metadata block's checksum differs; the in-place
 * pair instead mounts a copy of A's image and rsyncs B into it, which keeps most blocks where
 * they were. Both kinds are in the corpus because they stress a delta encoder differently
 * (matches far away vs. at the same offset).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fmtMiB, onInterrupt, out, progress } from './harness.js';
import { blockFigures, ensureImage, ensureInPlace, fmtNovel, fsIdentity, type BlockFigures, type InPlaceCounts } from './delta-images.js';
import { ensureDir, removeStale, run, startLog, unmountUnder } from './delta-shell.js';
import { cacheDir } from './rootfs.js';

const MiB = 1024 * 1024;

/** Bump when the packages, mirror suites or config edits change: the trees are rebuilt. */
const TREE_RECIPE = 'bookworm-v3';
/** Bump when mkfs options, the 64 MiB subset rule or the in-place procedure change: only images are rebuilt. */
const IMAGE_RECIPE = 'v2';

const MIRROR = 'http://deb.debian.org/debian';
const SECURITY_MIRROR = 'http://deb.debian.org/debian-security';
/** Release A: minbase plus what a small server carries (~390 MiB installed, no recommends). */
const SERVER_PACKAGES = [
  'systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'iproute2', 'iputils-ping', 'ifupdown', 'isc-dhcp-client',
  'netbase', 'openssh-server', 'ca-certificates', 'curl', 'wget', 'less', 'vim-tiny', 'nano', 'procps', 'sudo',
  'cron', 'logrotate', 'rsyslog', 'python3', 'perl', 'openssl', 'gnupg', 'file', 'xz-utils', 'bzip2', 'unzip',
  'tzdata', 'e2fsprogs', 'git',
];
/**
 * Release B adds these and removes REMOVED (git, with git-man and liberror-perl through
 * autoremove: ~48 MiB), on top of whatever the upgrade brings (~55 MiB of changed files in 2026).
 * The last two are sizeable (~85 MiB on disk) and, like much of what real releases add, full of
 * near-copies of each other: mariadb-client's sixteen ~5 MiB programs share most of their code,
 * redis-tools ships the same 2.3 MiB program twice. An encoder that can only refer to the old
 * image pays for every copy; zstd --patch-from, whose window also holds the new image, pays
 * once. numpy (v2 of this recipe) had few such copies and left the corpus easier than real pairs.
 */
const ADDED_PACKAGES = ['nginx', 'jq', 'htop', 'tcpdump', 'rsync', 'strace', 'lsof', 'sysstat', 'mariadb-client', 'redis-server'];
const REMOVED_PACKAGES = ['git'];

/** Both releases' root filesystems carry this label, so one fstab line fits every image. */
const FS_LABEL = 'rootfs';
/** A month apart, as the real pairs are. */
const RELEASE_A = { version: '2026.1', hostname: 'edge-01', fs: fsIdentity('2026.1', 1767225600, FS_LABEL) }; // 2026-01-01
const RELEASE_B = { version: '2026.2', hostname: 'edge-02', fs: fsIdentity('2026.2', 1769904000, FS_LABEL) }; // 2026-02-01

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
  inPlace: InPlaceCounts;
  /** By pair name. */
  blocks: Record<string, BlockFigures>;
  buildSeconds: number;
}

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
  const log = join(dir, `delta-${TREE_RECIPE}.log`);
  await startLog(log);
  progress(`delta corpus: building in ${dir} (command output in ${log})`);
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
  const trees = [
    { name: 'release A', bytes: diskUsage(treeA), packages: pkgA.size },
    { name: 'release B', bytes: diskUsage(treeB), packages: pkgB.size },
  ];
  const change = `${upgraded.length} packages upgraded (bookworm-updates/-security), ${added.length} added (${ADDED_PACKAGES.slice(-2).join(', ')} and their libraries among them), ${removed.length} removed (${REMOVED_PACKAGES.join(', ')} and what only it needed), /etc edited; ${fmtMiB(trees[0]!.bytes)} → ${fmtMiB(trees[1]!.bytes)} of files`;
  const fresh = 'fresh mkfs per release: own UUID, hash seed and clock (layout shifts, every metadata checksum differs)';

  const img = (name: string): string => `${prefix}-${name}.img`;
  await ensureImage(img('debian-512M-a'), treeA, 512, RELEASE_A.fs);
  await ensureImage(img('debian-512M-b'), treeB, 512, RELEASE_B.fs);
  for (const [tree, side, release] of [[treeA, 'a', RELEASE_A], [treeB, 'b', RELEASE_B]] as const) {
    await ensureDir(`${prefix}-subset-${side}`, (tmp) => stageSubset(tree, tmp));
    await ensureImage(img(`debian-64M-${side}`), `${prefix}-subset-${side}`, 64, release.fs);
  }
  const inPlace = await ensureInPlace(img('inplace-512M-b'), img('debian-512M-a'), treeB);

  const pairs: DeltaPair[] = [
    { name: 'debian-64M', description: `/etc, /usr/sbin and ${Math.round((100 * SUBSET_SHARE) / 256)}% of /usr/bin, /usr/lib/x86_64-linux-gnu (by path hash) of a bookworm server rootfs; ${change}; ${fresh}`, source: img('debian-64M-a'), target: img('debian-64M-b'), bytes: 64 * MiB },
    { name: 'debian-512M', description: `bookworm server rootfs; ${change}; ${fresh}`, source: img('debian-512M-a'), target: img('debian-512M-b'), bytes: 512 * MiB },
    { name: 'inplace-512M', description: `the same change as debian-512M, by \`rsync -aHAX --delete\` of release B into a loop-mounted copy of A's image (${inPlace.written} files written, ${inPlace.created} of them new, ${inPlace.deleted} paths deleted)`, source: img('debian-512M-a'), target: img('inplace-512M-b'), bytes: 512 * MiB },
  ];
  const blocks: Record<string, BlockFigures> = {};
  for (const pair of pairs) {
    progress(`delta corpus: comparing the blocks of ${pair.name}`);
    blocks[pair.name] = await blockFigures(pair.source, pair.target);
    pair.description += `; ${fmtNovel(blocks[pair.name]!)}`;
  }
  const manifest: Manifest = {
    recipe: `${TREE_RECIPE}-${IMAGE_RECIPE}`,
    pairs,
    trees,
    upgraded,
    added,
    removed,
    inPlace,
    blocks,
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
    ...releaseEtc(RELEASE_A),
    fstab: `LABEL=${FS_LABEL}\t/\text4\terrors=remount-ro\t0\t1\n`,
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
    'apt-get -y -q full-upgrade',
    `apt-get -y -q install ${ADDED_PACKAGES.join(' ')}`,
    `apt-get -y -q purge ${REMOVED_PACKAGES.join(' ')}`,
    'apt-get -y -q autoremove --purge',
  ]);
  const edit = async (rel: string, fn: (text: string) => string): Promise<void> => {
    const path = join(root, 'etc', rel);
    await fsp.writeFile(path, fn(await fsp.readFile(path, 'utf8')));
  };
  await edit('ssh/sshd_config', (t) => t.replace('#PermitRootLogin prohibit-password', 'PermitRootLogin no').replace('#PasswordAuthentication yes', 'PasswordAuthentication no').replace('X11Forwarding yes', 'X11Forwarding no'));
  await edit('nginx/nginx.conf', (t) => t.replace('worker_connections 768;', 'worker_connections 2048;'));
  await edit('fstab', (t) => `${t}tmpfs\t/tmp\ttmpfs\tnosuid,nodev,size=256M\t0\t0\n`);
  await writeEtc(root, {
    ...releaseEtc(RELEASE_B),
    'ssh/sshd_config.d/50-fastpatch.conf': 'ClientAliveInterval 60\nMaxAuthTries 3\n',
    'sysctl.d/90-fastpatch.conf': 'net.core.somaxconn = 4096\nvm.swappiness = 10\n',
    'nginx/conf.d/status.conf': 'server {\n\tlisten 127.0.0.1:8080;\n\tlocation /status { stub_status; }\n}\n',
  });
  await finishTree(root);
}

/** The files of /etc that name the release. */
function releaseEtc(release: { version: string; hostname: string }): Record<string, string> {
  return {
    hostname: `${release.hostname}\n`,
    hosts: `127.0.0.1\tlocalhost\n127.0.1.1\t${release.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    'fastpatch-release': `NAME="FastPatch bench rootfs"\nVERSION_ID=${release.version}\nBASE=debian-bookworm\n`,
  };
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
      if (createHash('sha256').update(rel).digest()[0]! < SUBSET_SHARE) picked.push(rel);
    });
  }
  await fsp.mkdir(staging);
  copyPaths(tree, picked, staging);
}

/** `cp -a --parents` in batches: new parent directories get their source's owner and mode. */
function copyPaths(from: string, rels: readonly string[], to: string): void {
  for (let i = 0; i < rels.length; i += 500) run('cp', ['-a', '--parents', '--', ...rels.slice(i, i + 500), to], { cwd: from });
}

/** Visits every non-directory under `path`, in sorted order, without following symlinks. */
async function walk(path: string, rel: string, visit: (rel: string, stats: Stats) => Promise<void>): Promise<void> {
  const stats = await fsp.lstat(path);
  if (!stats.isDirectory()) return visit(rel, stats);
  for (const name of (await fsp.readdir(path)).sort()) await walk(join(path, name), `${rel}/${name}`, visit);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const manifest = await ensureManifest();
  progress(`delta corpus: ready in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  for (const t of manifest.trees) out(`${t.name}: ${t.packages} packages, ${fmtMiB(t.bytes)} on disk`);
  out(`B vs A: ${manifest.upgraded.length} upgraded (${manifest.upgraded.join(' ')})`);
  out(`  ${manifest.added.length} added (${manifest.added.join(' ')})`);
  out(`  ${manifest.removed.length} removed (${manifest.removed.join(' ')})`);
  for (const pair of manifest.pairs) {
    const f = manifest.blocks[pair.name]!;
    const pct = (n: number): string => `${((100 * n) / f.nonZero).toFixed(1)}%`;
    out(`${pair.name}\t${fmtMiB(pair.bytes)}\t${pair.source} → ${pair.target}`);
    out(`  ${pair.description}`);
    out(`  ${f.blocks} blocks, ${f.nonZero} non-zero in the new image: ${f.sameOffset} (${pct(f.sameOffset)}) equal the old image's block at the same offset`);
  }
}
