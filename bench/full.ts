/**
 * Section "full": the whole product on a real 512 MiB rootfs image.
 *
 *  - generate: `generateFullPayload` against `gzip -6 -c img > /dev/null` (size and speed; bar b);
 *  - apply: `applyPayload` onto a loop block device against `dd bs=4M conv=fsync` (bar c), both
 *    counting image bytes per second and ending with the data durable; plus the CLI under
 *    /usr/bin/time -v for peak RSS, and a regular-file target for reference.
 *
 * Peers run in interleaved rounds (apply after a warm-up run; generate and gzip without one, see
 * below); the image and the payload are read from the page cache in every run (both sides alike),
 * and `sync` runs before every run so that no run pays for an earlier one's writeback.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyPayload } from '../src/apply/applier.js';
import { DEFAULT_LEVELS, generateFullPayload, type GenerateResult } from '../src/generate/generator.js';
import { readPayloadChunks } from '../src/io/input.js';
import { writeKeyPair } from '../src/sign/files.js';
import { generateKey, publicKeyOf } from '../src/sign/keys.js';
import { fmtMiB, fmtPaired, fmtRange, fmtRatio, fmtRuns, measureInterleaved, median, paired, onInterrupt, progress, table, withCanary, type Case, type Paired, type Stats } from './harness.js';
import { ensureRootfs, isTmpfs, type RootfsInfo } from './rootfs.js';
import { ddCases } from './dd.js';

const MiB = 1024 * 1024;
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const TIME = '/usr/bin/time';

export interface FullFigures {
  rootfs: RootfsInfo;
  gzipBytes: number;
  payloadBytes: number;
  gzip: Stats;
  generate: Stats;
  /** generate / gzip speed: bar (b2). */
  generateRatio: Paired;
  /** dd right after dd (the device's cache warm): the bar's peer (bench/dd.ts). */
  dd: Stats | undefined;
  /** dd right after an apply (the device's cache empty). */
  ddCold: Stats | undefined;
  apply: Stats | undefined;
  /** apply / dd speed onto the loop device: bar (c). */
  applyRatio: Paired | undefined;
  /** apply / dd right after it. */
  applyRatioCold: Paired | undefined;
  applyRssKiB: number | undefined;
}

export async function runFull(rounds: { generate: number; apply: number }, workDir: string): Promise<FullFigures> {
  let figures: FullFigures | undefined;
  await withCanary('full', async () => {
    figures = await measure(rounds, workDir);
  });
  return figures!;
}

/** Runs a command, stdout to /dev/null (or captured), and rejects on a non-zero exit. */
function run(cmd: string, args: readonly string[], capture = false): Promise<{ stdout: string; stderr: string }> {
  const devnull = capture ? undefined : openSync('/dev/null', 'w');
  return new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', devnull ?? 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`))));
  }).finally(() => devnull !== undefined && closeSync(devnull));
}

/** Counts the bytes a command writes to stdout (one untimed run, for compressed sizes). */
function countStdout(cmd: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let n = 0;
    child.stdout.on('data', (d: Buffer) => (n += d.length));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(n) : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

async function measure(rounds: { generate: number; apply: number }, workDir: string): Promise<FullFigures> {
  const rootfs = await ensureRootfs();
  const img = rootfs.path;
  if (isTmpfs(workDir)) throw new Error(`${workDir} is on tmpfs; the apply benchmark needs a disk-backed directory`);
  // Where the loop backing file and file targets live: must be a disk, not memory.
  const disk = execFileSync('df', ['--output=source,fstype', workDir], { encoding: 'utf8' }).trim().split('\n').pop()!.trim().split(/\s+/).join(', ');
  process.stdout.write(`Image: ${img}, ext4 made by \`mkfs.ext4 -d\` from ${rootfs.files.toLocaleString('en-US')} files (${fmtMiB(rootfs.fileBytes)}) of /usr/bin, /usr/lib/x86_64-linux-gnu and /usr/share/doc${rootfs.built ? ' (built by this run)' : ' (cached)'}.\n`);
  process.stdout.write(`Scratch directory (payload, loop backing file, file targets): ${workDir} on ${disk}; loop device in its default buffered mode.\n\n`);

  const key = generateKey();
  const keyPath = join(workDir, 'bench.key');
  await writeKeyPair(keyPath, key, true);
  const payload = join(workDir, 'full.fpp');

  // --- generate vs gzip -6 --------------------------------------------------------------
  progress('full: gzip -6 compressed size (untimed run)');
  const gzipBytes = await countStdout('gzip', ['-6', '-c', img]);
  let result: GenerateResult | undefined;
  // No warm-up runs here (each would cost ~10–25 s): the size run above already put the image in
  // the page cache, gzip starts cold in every real use, and WasmCore warms itself up on load.
  const genCases: Case[] = [
    { name: 'gzip -6 -c img > /dev/null (1 thread)', bytes: rootfs.bytes, warmUp: false, run: () => run('gzip', ['-6', '-c', img]) },
    {
      name: `\`generateFullPayload\` zstd L${DEFAULT_LEVELS.zstd} (incl. hashing, signing, fsync of the payload)`,
      bytes: rootfs.bytes,
      cores: 2, // zstd runs on libuv's pool, up to 4 chunks at once
      warmUp: false,
      run: async () => {
        result = await generateFullPayload({ target: img, keys: [key], version: '1.0.0', out: payload, force: true }); // every round replaces the last one's payload
      },
    },
  ];
  const gstats = await measureInterleaved('full generate', genCases, { rounds: rounds.generate, between: () => execFileSync('sync'), extraRounds: 2 });
  const gzip = gstats.get(genCases[0]!.name)!;
  const generate = gstats.get(genCases[1]!.name)!;
  const payloadBytes = result!.payload.totalSize;
  table(`Full payload of the ${fmtMiB(rootfs.bytes)} rootfs image`,
    ['tool', 'output bytes', 'size % of image', 'MB/s median (min–max)', 'seconds', 'CPU-s per run', 'clean runs', 'others\' cores'],
    [gzip, generate].map((s, i) => {
      const bytes = i === 0 ? gzipBytes : payloadBytes;
      return [s.name, bytes.toLocaleString('en-US'), ((bytes / rootfs.bytes) * 100).toFixed(1), fmtRange(s), s.seconds.toFixed(2), (rootfs.bytes / s.perCpuSecond / 1e6).toFixed(2), fmtRuns(s), s.othersCores.toFixed(2)];
    }));
  table('Payload against gzip -6', ['ratio', 'value', 'bar'], [
    ['payload size / gzip -6 size', fmtRatio(payloadBytes / gzipBytes) + ` (${(payloadBytes / gzipBytes).toFixed(4)})`, '≤ 0.80'],
    ['generate MB/s / gzip -6 MB/s (paired by round)', fmtPaired(paired(generate, gzip)), '≥ 1.00'],
  ]);
  const ops = Object.entries(result!.operations).map(([name, s]) => `${name}: ${s.count} ops, ${fmtMiB(s.outputBytes)} of image, ${fmtMiB(s.dataBytes)} of data`);
  process.stdout.write(`Payload operations: ${ops.join('; ')}; manifest ${result!.payload.manifestSize.toLocaleString('en-US')} bytes.\n\n`);

  // --- apply vs dd -----------------------------------------------------------------------
  let dd: Stats | undefined;
  let ddCold: Stats | undefined;
  let apply: Stats | undefined;
  let applyRssKiB: number | undefined;
  const backing = join(workDir, 'loop-backing.img');
  let loop: string | undefined;
  let unhook = () => {};
  try {
    progress('full: loop device backing file (512 MiB, written out so no run pays for allocation)');
    execFileSync('dd', ['if=/dev/zero', `of=${backing}`, 'bs=4M', `count=${rootfs.bytes / (4 * MiB)}`, 'conv=fsync', 'status=none']);
    const attached = execFileSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' }).trim();
    loop = attached;
    unhook = onInterrupt(() => execFileSync('losetup', ['-d', attached]));
    progress(`full: ${loop} on ${backing}`);
    ({ dd, ddCold, apply, applyRssKiB } = await measureApply(rounds.apply, { img, payload, loop, keyPath: `${keyPath}.pub`, workDir, bytes: rootfs.bytes, trusted: publicKeyOf(key) }));
  } catch (err) {
    progress(`full: apply rows skipped: ${(err as Error).message}`);
    process.stdout.write(`Apply rows skipped: ${(err as Error).message}\n\n`);
  } finally {
    if (loop) execFileSync('losetup', ['-d', loop]);
    unhook();
    await fsp.rm(backing, { force: true });
    await fsp.rm(payload, { force: true });
    await fsp.rm(keyPath, { force: true });
    await fsp.rm(`${keyPath}.pub`, { force: true });
  }
  return { rootfs, gzipBytes, payloadBytes, gzip, generate, generateRatio: paired(generate, gzip), dd, ddCold, apply, applyRatio: dd && apply ? paired(apply, dd) : undefined, applyRatioCold: ddCold && apply ? paired(apply, ddCold) : undefined, applyRssKiB };
}

interface ApplySetup {
  img: string;
  payload: string;
  loop: string;
  keyPath: string;
  workDir: string;
  bytes: number;
  trusted: ReturnType<typeof publicKeyOf>;
}

async function measureApply(rounds: number, s: ApplySetup): Promise<{ dd: Stats; ddCold: Stats; apply: Stats; applyRssKiB: number | undefined }> {
  const fileTarget = join(s.workDir, 'apply-target.img');
  const haveTime = existsSync(TIME);
  const rss: number[] = [];
  /** The CLI's own timer (from the start of applyPayload), to show what process start-up costs. */
  const cliSeconds: number[] = [];
  const applyLib = async (target: string) => {
    const r = await applyPayload(readPayloadChunks(s.payload), { trustedKeys: [s.trusted], target });
    if (r.targetSize !== s.bytes) throw new Error(`unexpected apply result ${JSON.stringify(r)}`);
  };
  const sync = () => execFileSync('sync');
  // All rows use the I/O rule (cores: 0) so that dd and apply are judged clean by the same test.
  const io = (cases: Case[]) => cases.map((c) => ({ ...c, cores: 0 }));

  // Set 1, the bar: dd and apply alternate on the loop device with nothing else in between.
  // (Interleaving the regular-file runs here too made dd 3–4× slower: their 1 GiB of file cache
  // takes the pages the device's cache would otherwise recycle, and dd, one thread doing
  // read-then-write, pays the page allocation serially while apply overlaps it with decoding.)
  // The three dd runs each round and why: bench/dd.ts.
  const ddRuns = ddCases(s.img, s.loop, s.bytes, run);
  const device: Case[] = io([
    ddRuns.cold,
    ddRuns.warm,
    ddRuns.direct,
    { name: `\`applyPayload\` → ${s.loop} (in process)`, bytes: s.bytes, run: () => applyLib(s.loop) },
    {
      name: `\`fastpatch apply --json\` → ${s.loop} (CLI child${haveTime ? ' under /usr/bin/time -v' : ''}, incl. node start-up)`,
      bytes: s.bytes,
      run: async () => {
        const args = [CLI, 'apply', s.payload, '--target', s.loop, '--pubkey', s.keyPath, '--json'];
        const { stdout, stderr } = haveTime ? await run(TIME, ['-v', process.execPath, ...args], true) : await run(process.execPath, args, true);
        cliSeconds.push((JSON.parse(stdout) as { seconds: number }).seconds);
        const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
        if (m) rss.push(Number(m[1]));
      },
    },
  ]);
  const dstats = await measureInterleaved('full apply (device)', device, { rounds, between: sync, extraRounds: 2 });
  // Whatever the timings say, the device must hold the image (the CLI wrote it last).
  progress('full: checking the loop device holds the image');
  await assertSameBytes(s.loop, s.img, s.bytes);
  const ddCold = dstats.get(ddRuns.cold.name)!;
  const dd = dstats.get(ddRuns.warm.name)!;
  const apply = dstats.get(device[3]!.name)!;

  // Set 2, for reference: regular-file targets on the same disk, with dd onto the same file as peer.
  const files: Case[] = io([
    { name: 'dd if=img of=file bs=4M conv=fsync,notrunc (existing file)', bytes: s.bytes, run: () => run('dd', [`if=${s.img}`, `of=${fileTarget}`, 'bs=4M', 'conv=fsync,notrunc', 'status=none']) },
    {
      name: '`applyPayload` → new regular file (created sparse: ZERO ops skipped)',
      bytes: s.bytes,
      run: async () => {
        await fsp.rm(fileTarget, { force: true });
        await applyLib(fileTarget);
      },
    },
    { name: '`applyPayload` → existing regular file (every block written)', bytes: s.bytes, run: () => applyLib(fileTarget) },
  ]);
  const fstats = await measureInterleaved('full apply (file)', files, { rounds: Math.min(rounds, 3), between: sync, extraRounds: 1 });
  await assertSameBytes(fileTarget, s.img, s.bytes);
  await fsp.rm(fileTarget, { force: true });
  const ddFile = fstats.get(files[0]!.name)!;

  const row = (x: Stats, peer: Stats) => [x.name, fmtRange(x), x.seconds.toFixed(2), (s.bytes / x.perCpuSecond / 1e6).toFixed(2), fmtPaired(paired(x, peer)), fmtRuns(x), x.othersCores.toFixed(2)];
  table(`Apply of the ${fmtMiB(s.bytes)} image onto ${s.loop} (MB/s of image bytes, each run ends with fsync; in this order each round; × dd: paired with the second dd, bench/dd.ts)`,
    ['writer', 'MB/s median (min–max)', 'seconds', 'CPU-s per run', '× dd', 'clean runs', 'others\' cores'],
    device.map((c) => row(dstats.get(c.name)!, dd)));
  table('Reference: apply onto a regular file in the same directory as the loop backing file',
    ['writer', 'MB/s median (min–max)', 'seconds', 'CPU-s per run', '× dd (file)', 'clean runs', 'others\' cores'],
    files.map((c) => row(fstats.get(c.name)!, ddFile)));
  const applyRssKiB = rss.length > 0 ? Math.max(...rss) : undefined;
  if (applyRssKiB !== undefined) {
    process.stdout.write(`Peak RSS of \`fastpatch apply\` onto ${s.loop} (512 MiB image): ${(applyRssKiB / 1024).toFixed(0)} MiB (max over ${rss.length} runs; range ${(Math.min(...rss) / 1024).toFixed(0)}–${(Math.max(...rss) / 1024).toFixed(0)} MiB).\n`);
  }
  const cli = dstats.get(device[4]!.name)!;
  if (cliSeconds.length > 0) {
    process.stdout.write(`The CLI's own timer (applyPayload start to finish) read ${median(cliSeconds).toFixed(2)} s median against ${cli.seconds.toFixed(2)} s wall: the rest is process start-up, module loading and cold JIT.\n\n`);
  }
  return { dd, ddCold, apply, applyRssKiB };
}

/** Streams both files and throws at the first difference in the first `bytes` bytes. */
async function assertSameBytes(a: string, b: string, bytes: number): Promise<void> {
  const chunk = 4 * MiB;
  const fa = await fsp.open(a, 'r');
  const fb = await fsp.open(b, 'r');
  try {
    const ba = Buffer.alloc(chunk);
    const bb = Buffer.alloc(chunk);
    for (let pos = 0; pos < bytes; pos += chunk) {
      const n = Math.min(chunk, bytes - pos);
      await fa.read(ba, 0, n, pos);
      await fb.read(bb, 0, n, pos);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) throw new Error(`${a} differs from ${b} within [${pos}, ${pos + n})`);
    }
  } finally {
    await fa.close();
    await fb.close();
  }
}
