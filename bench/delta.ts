/**
 * Section "delta": FastPatch delta payloads (old image → new image) against the delta tools
 * people would otherwise use, on the image pairs of bench/delta-corpus.ts.
 *
 *  - every pair, every tool (delta-peers.ts): patch size, encode and decode seconds and peak RSS,
 *    and whether decoding gives back the new image byte for byte (bars d1, d2);
 *  - the largest pair: `fastpatch apply --source` onto a loop block device against
 *    `dd if=new bs=4M conv=fsync` onto the same device, alternating as in full.ts (bar d3).
 *
 * The peers' encodes take minutes (zstd -19 on 512 MiB), so encode/decode rows get one round by
 * default and no warm-up; the apply rows are seconds long and get the usual interleaved rounds.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDeltaCorpus, type DeltaPair } from './delta-corpus.js';
import { CLI, CommandError, fmtRss, fmtSeconds, HAVE_TIME, makeTools, oneLine, runTimed, sha256, type Run, type Tool, type ToolId } from './delta-peers.js';
import { fmtMiB, fmtPaired, fmtRange, fmtRate, fmtRuns, measureInterleaved, median, onInterrupt, out, paired, progress, table, withCanary, type Case, type Paired, type Stats } from './harness.js';
import { isTmpfs } from './rootfs.js';
import { measureCheckFloor, type CheckFloor } from './check-floor.js';
import { ddCases } from './dd.js';

const MiB = 1024 * 1024;

export interface DeltaOptions {
  /** Rounds of every encode and decode (default 1). */
  rounds: number;
  /** Measured rounds of apply vs dd on the loop device (default 3). */
  applyRounds: number;
  /** Only these pairs (--pair NAME, repeatable); all when empty. */
  pairs: readonly string[];
}

export interface DeltaRow {
  id: ToolId;
  label: string;
  short: string;
  /** Why figures are missing: "skipped: …", "encode failed: …" or "decode failed: …". */
  problem?: string;
  patchBytes?: number;
  encode: Run[];
  decode: Run[];
  /** The decoded output equalled the new image in every round; undefined if never decoded. */
  identical?: boolean;
  /** The pair whose figures this row repeats (same new image, a tool that reads only that). */
  reusedFrom?: string;
}

export interface DeltaPairFigures {
  pair: DeltaPair;
  rows: DeltaRow[];
}

export interface DeltaApplyFigures {
  pair: string;
  bytes: number;
  /** dd right after dd (the device's cache warm): the bar's peer (bench/dd.ts). */
  dd: Stats;
  /** dd right after the apply (the device's cache empty). */
  ddCold: Stats;
  apply: Stats;
  /** apply / dd throughput, paired by round: bar (d3). */
  ratio: Paired;
  ratioCold: Paired;
  applyRssKiB: number | undefined;
  /** The device held the new image after the last (FastPatch) run. */
  deviceMatches: boolean;
  /** The SHA-256 the payload's checks need, on every core from memory: no apply can be faster. */
  floor: CheckFloor;
}

export interface DeltaFigures {
  pairs: DeltaPairFigures[];
  apply?: DeltaApplyFigures;
  applySkipped?: string;
}

export async function runDelta(options: DeltaOptions, workDir: string): Promise<DeltaFigures> {
  let figures: DeltaFigures | undefined;
  await withCanary('delta', async () => {
    figures = await measure(options, workDir);
  });
  return figures!;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
/** Table cells must not break the Markdown row. */
const cell = (text: string) => text.replace(/\|/g, '\\|');

async function measure(o: DeltaOptions, workDir: string): Promise<DeltaFigures> {
  if (isTmpfs(workDir)) throw new Error(`${workDir} is on tmpfs; the delta bench needs a disk-backed directory`);
  const corpus = await ensureDeltaCorpus();
  const unknown = o.pairs.filter((name) => !corpus.some((p) => p.name === name));
  if (unknown.length > 0) throw new RangeError(`unknown --pair ${unknown.join(', ')}; the corpus has ${corpus.map((p) => p.name).join(', ')}`);
  const pairs = o.pairs.length > 0 ? corpus.filter((p) => o.pairs.includes(p.name)) : corpus;
  if (pairs.length === 0) throw new Error('the delta corpus has no pairs');
  const dir = await fsp.mkdtemp(join(workDir, 'delta-'));
  // On Ctrl-C no finally runs: without this, patches and 512 MiB outputs would stay behind.
  const unhook = onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'delta.key');
  const figures: DeltaFigures = { pairs: [] };
  const done = new Map<string, { pair: string; row: DeltaRow }>();
  try {
    let keyError: string | undefined;
    try {
      execFileSync(process.execPath, [CLI, 'keygen', '--out', key, '--force'], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      keyError = oneLine(String((err as { stderr?: Buffer }).stderr ?? message(err)));
    }
    const { tools, notes } = makeTools(key, keyError);
    printNotes(pairs, dir, o.rounds, notes);
    const largest = pairs.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    for (const pair of pairs) {
      const f = await measurePair(pair, tools, o.rounds, dir, done);
      figures.pairs.push(f);
      printPair(f, o.rounds);
      if (pair === largest) {
        const fp = f.rows.find((r) => r.id === 'fastpatch')!;
        // Only a payload that decoded to the new image is worth timing onto the device.
        const whyNot = fp.problem ?? (fp.identical === true ? undefined : 'its decoded output differed from the new image');
        const patch = whyNot === undefined ? patchPath(dir, pair, 'fastpatch') : undefined;
        Object.assign(figures, await measureApply(pair, { patch, whyNot }, key, o.applyRounds, dir));
      }
      for (const t of tools) await fsp.rm(patchPath(dir, pair, t.id), { force: true });
    }
  } finally {
    unhook();
    await fsp.rm(dir, { recursive: true, force: true });
  }
  return figures;
}

function printNotes(pairs: readonly DeltaPair[], dir: string, rounds: number, notes: readonly string[]): void {
  const disk = execFileSync('df', ['--output=source,fstype', dir], { encoding: 'utf8' }).trim().split('\n').pop()!.trim().split(/\s+/).join(', ');
  out(`Pairs (old image → new image, bench/delta-corpus.ts): ${pairs.map((p) => `${p.name} (${fmtMiB(p.bytes)})`).join(', ')}. Scratch directory: ${dir} on ${disk}.\n`);
  out('- Each tool encodes (old, new) → patch, then decodes (old, patch) → a new file, whose SHA-256 must equal the new image\'s.');
  out(rounds === 1
    ? '- **One run** of each encode and decode (the default: zstd -19 alone takes minutes on 512 MiB), no warm-up: single runs, not medians; `--rounds N` for more.'
    : `- ${rounds} rounds, tools in the same order in each round, no warm-up; seconds are median (min–max).`);
  out(`- Each command runs as a child${HAVE_TIME ? ' under `/usr/bin/time -f "%e %M"`' : ''} after an untimed \`sync\`. Seconds = wall time around it; peak RSS = the child's (max over rounds);`);
  out('  CPU-s = user + system CPU of the child and its threads (above the seconds: more than one core busy). Both images are hashed');
  out('  first, so every tool reads them from the page cache. "others\' cores" = user CPU the rest of the machine used meanwhile (noise).');
  for (const note of notes) out(`- ${note}`);
  out('');
}

function patchPath(dir: string, pair: DeltaPair, id: ToolId): string {
  return join(dir, `${pair.name}.${id}.patch`);
}

/**
 * Every tool on one pair, `rounds` times, tools interleaved within a round. `done` holds the rows
 * of target-only tools by tool and new-image hash: zstd -19 of a 512 MiB image takes ~5 minutes,
 * not worth repeating for a second pair with the same new image.
 */
async function measurePair(pair: DeltaPair, tools: readonly Tool[], rounds: number, dir: string, done: Map<string, { pair: string; row: DeltaRow }>): Promise<DeltaPairFigures> {
  progress(`delta ${pair.name}: hashing both images (this also puts them in the page cache)`);
  await sha256(pair.source);
  const want = await sha256(pair.target);
  const rows: DeltaRow[] = tools.map((t) => {
    const earlier = t.targetOnly ? done.get(`${t.id} ${want}`) : undefined;
    if (earlier) return { ...earlier.row, reusedFrom: earlier.pair };
    return { id: t.id, label: t.label, short: t.short, problem: t.skip(pair), encode: [], decode: [] };
  });
  for (const row of rows) if (row.problem) progress(`delta ${pair.name}: ${row.short} ${row.problem}`);
  const decoded = join(dir, 'decoded.img');
  for (let r = 1; r <= rounds; r++) {
    for (const [i, tool] of tools.entries()) {
      const row = rows[i]!;
      if (row.problem !== undefined || row.reusedFrom !== undefined) continue;
      const what = `delta ${pair.name}${rounds > 1 ? ` round ${r}/${rounds}` : ''}: ${tool.short}`;
      const opts = { timeout: tool.timeout, scratch: dir };
      const patch = patchPath(dir, pair, tool.id);
      try {
        await fsp.rm(patch, { force: true });
        row.encode.push(await runTimed(`${what} encode`, tool.encode(pair.source, pair.target, patch), opts));
        row.patchBytes = statSync(patch).size;
      } catch (err) {
        row.problem = `${err instanceof CommandError && err.timedOut ? 'skipped' : 'encode failed'}: ${message(err)}`;
        continue;
      }
      try {
        await fsp.rm(decoded, { force: true });
        row.decode.push(await runTimed(`${what} decode`, tool.decode(pair.source, patch, decoded), opts));
        const same = (await sha256(decoded)) === want;
        if (!same) progress(`${what}: the decoded output DIFFERS from the new image`);
        row.identical = (row.identical ?? true) && same;
      } catch (err) {
        row.problem = `decode failed: ${message(err)}`;
      } finally {
        await fsp.rm(decoded, { force: true });
      }
    }
  }
  for (const [i, t] of tools.entries()) if (t.targetOnly && !done.has(`${t.id} ${want}`)) done.set(`${t.id} ${want}`, { pair: pair.name, row: rows[i]! });
  return { pair, rows };
}

function printPair(f: DeltaPairFigures, rounds: number): void {
  const bytes = f.pair.bytes;
  const zstd = f.rows.find((r) => r.id === 'zstd')?.patchBytes;
  out(`Pair ${f.pair.name}: ${f.pair.description} (${f.pair.source} → ${f.pair.target}).\n`);
  table(`delta ${f.pair.name}: ${fmtMiB(bytes)} images, ${rounds === 1 ? 'one run' : `${rounds} rounds`} per tool`,
    ['tool', 'patch bytes', '% of new image', '× zstd --patch-from size', 'encode s', 'encode CPU-s', 'encode peak RSS MiB', 'decode s', 'decode peak RSS MiB', 'output = new image', 'others\' cores'],
    f.rows.map((r) => {
      const b = r.patchBytes;
      const pct = b === undefined ? '–' : ((b / bytes) * 100).toFixed(b / bytes >= 0.1 ? 1 : 2);
      const same = r.problem !== undefined && b !== undefined ? cell(r.problem) : r.identical === undefined ? '–' : r.identical ? 'yes' : '**no**';
      const runs = [...r.encode, ...r.decode];
      const label = r.reusedFrom ? `${r.label}: figures of ${r.reusedFrom} (same new image), not rerun` : r.label;
      const vsZstd = b !== undefined && zstd ? (b / zstd).toFixed(b / zstd < 10 ? 3 : 1) : '–';
      return [label, b === undefined ? cell(r.problem ?? '–') : b.toLocaleString('en-US'), pct, vsZstd,
        fmtSeconds(r.encode), fmtSeconds(r.encode, (x) => x.cpuSeconds), fmtRss(r.encode), fmtSeconds(r.decode), fmtRss(r.decode), same,
        runs.length > 0 ? median(runs.map((x) => x.othersCores)).toFixed(2) : '–'];
    }));
}

/**
 * Bar (d3) on the largest pair: dd of the new image (three ways, bench/dd.ts) and `fastpatch apply
 * --source old` onto the same loop device, alternating, all ending with the data durable (conv=fsync; apply syncs).
 * `payload.patch` is FastPatch's payload for the pair, or `whyNot` says why there is none.
 */
async function measureApply(pair: DeltaPair, payload: { patch: string | undefined; whyNot: string | undefined }, key: string, rounds: number, dir: string): Promise<Pick<DeltaFigures, 'apply' | 'applySkipped'>> {
  const skip = (why: string) => {
    progress(`delta apply: skipped: ${why}`);
    out(`Apply onto a block device (${pair.name}) skipped: ${why}\n`);
    return { applySkipped: why };
  };
  const patch = payload.patch;
  if (patch === undefined) return skip(`no FastPatch payload for ${pair.name}: ${payload.whyNot ?? 'not made'}`);
  const bytes = statSync(pair.target).size;
  const backing = join(dir, 'loop-backing.img');
  let loop: string | undefined;
  let unhook = () => {};
  try {
    progress(`delta apply: loop backing file of ${fmtMiB(bytes)}, written out so that no run pays for allocation`);
    execFileSync('dd', ['if=/dev/zero', `of=${backing}`, 'bs=4M', `count=${Math.ceil(bytes / (4 * MiB))}`, 'conv=fsync', 'status=none']);
    await fsp.truncate(backing, bytes);
    const attached = execFileSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' }).trim();
    loop = attached;
    unhook = onInterrupt(() => execFileSync('losetup', ['-d', attached]));
    progress(`delta apply: ${attached} on ${backing}`);
    const rss: number[] = [];
    // measureInterleaved times the runs and syncs between them; runTimed only adds peak RSS.
    const opts = { timeout: 600, sync: false, log: false, scratch: dir };
    const ddRuns = ddCases(pair.target, attached, bytes, (cmd, args) => runTimed(cmd, { cmd, args }, opts));
    const cases: Case[] = [
      ddRuns.cold,
      ddRuns.warm,
      ddRuns.direct,
      {
        name: `\`fastpatch apply --source old\` → ${attached} (CLI child${HAVE_TIME ? ' under /usr/bin/time' : ''}, incl. node start-up)`,
        bytes,
        cores: 0,
        run: async () => {
          const r = await runTimed('fastpatch apply', { cmd: process.execPath, args: [CLI, 'apply', patch, '--source', pair.source, '--target', attached, '--pubkey', `${key}.pub`] }, opts);
          if (r.rssKiB !== undefined) rss.push(r.rssKiB);
        },
      },
    ];
    const stats = await measureInterleaved(`delta apply (${pair.name})`, cases, { rounds, between: () => execFileSync('sync'), extraRounds: 2 });
    // FastPatch ran last: whatever the timings say, the device must now hold the new image.
    progress('delta apply: comparing the loop device with the new image');
    let deviceMatches = true;
    try {
      execFileSync('cmp', ['-s', '-n', String(bytes), pair.target, attached]);
    } catch {
      deviceMatches = false;
    }
    const ddCold = stats.get(ddRuns.cold.name)!;
    const dd = stats.get(ddRuns.warm.name)!;
    const apply = stats.get(cases[3]!.name)!;
    table(`Apply of ${pair.name} (${fmtMiB(bytes)}) onto ${attached} (MB/s of image bytes, each run ends with fsync; in this order each round; × dd: paired with the second dd, bench/dd.ts)`,
      ['writer', 'MB/s median (min–max)', 'seconds', 'CPU-s per run', '× dd', 'clean runs', 'others\' cores'],
      cases.map((c) => stats.get(c.name)!).map((x) => [x.name, fmtRange(x), x.seconds.toFixed(2), (bytes / x.perCpuSecond / 1e6).toFixed(2), fmtPaired(paired(x, dd)), fmtRuns(x), x.othersCores.toFixed(2)]));
    progress('delta apply: the floor, hashing what the checks hash on every core');
    const floor = await measureCheckFloor(patch, pair.source, pair.target);
    const allowed = dd.seconds / 0.8;
    out(`The checks of this payload hash ${fmtMiB(floor.total)} (source blocks ${fmtMiB(floor.source)}, target dictionaries ${fmtMiB(floor.dictionary)}, decoded outputs ${fmtMiB(floor.output)}, data ${fmtMiB(floor.data)}): `
      + `${floor.seconds.toFixed(2)} s for the WASM hasher on ${floor.threads} threads from memory (best of 3), with no I/O or decoding; `
      + `80% of dd's speed leaves ${allowed.toFixed(2)} s for the whole apply.\n`);
    const applyRssKiB = rss.length > 0 ? Math.max(...rss) : undefined;
    out(`After the last run ${attached} ${deviceMatches ? 'held' : '**did not hold**'} the new image (cmp).${applyRssKiB === undefined ? '' : ` Peak RSS of \`fastpatch apply --source\`: ${(applyRssKiB / 1024).toFixed(0)} MiB (max over ${rss.length} runs).`}\n`);
    return { apply: { pair: pair.name, bytes, dd, ddCold, apply, ratio: paired(apply, dd), ratioCold: paired(apply, ddCold), applyRssKiB, deviceMatches, floor } };
  } catch (err) {
    return skip(message(err));
  } finally {
    if (loop) execFileSync('losetup', ['-d', loop]);
    unhook();
    await fsp.rm(backing, { force: true });
  }
}

const verdict = (ok: boolean, noisy = false) => `${ok ? 'holds' : '**misses**'}${noisy ? ' (⚠ noisy)' : ''}`;

/** Why a row cannot count for a bar, or undefined when it can (made a patch that decodes exactly). */
function unusable(r: DeltaRow | undefined): string | undefined {
  if (!r) return 'not run';
  if (r.problem) return r.problem;
  if (r.patchBytes === undefined || r.identical === undefined) return 'not measured';
  return r.identical ? undefined : 'decoded output differs from the new image';
}

/** A verdict over all pairs: any miss misses, any pair without figures leaves it unmeasured. */
function overall(results: readonly (boolean | undefined)[]): string {
  if (results.includes(false)) return '**misses**';
  return results.includes(undefined) ? '**not measured**' : 'holds';
}

/** "a: x; b: y", or "every pair: x" when all pairs say the same (e.g. the same error). */
function perPair(items: readonly { name: string; text: string }[]): string {
  if (items.length > 1 && items.every((i) => i.text === items[0]!.text)) return cell(`every pair: ${items[0]!.text}`);
  return cell(items.map((i) => `${i.name}: ${i.text}`).join('; '));
}

/** The delta bars with this run's figures, as rows for run.ts's bars table. */
export function deltaBarRows(f: DeltaFigures): string[][] {
  const rows: string[][] = [];
  const find = (p: DeltaPairFigures, id: ToolId) => p.rows.find((r) => r.id === id);
  const size = f.pairs.map((p) => {
    const fp = find(p, 'fastpatch');
    const z = find(p, 'zstd');
    if (fp?.patchBytes === undefined || unusable(z) !== undefined) {
      return { name: p.pair.name, text: fp?.patchBytes === undefined ? `FastPatch ${unusable(fp)}` : `zstd ${unusable(z)}`, ok: undefined };
    }
    const ratio = fp.patchBytes / z!.patchBytes!;
    const text = `${fp.patchBytes.toLocaleString('en-US')} / ${z!.patchBytes!.toLocaleString('en-US')} B = ${ratio.toFixed(3)}×`;
    // A payload that does not decode to the new image does not count, but its size is still shown.
    const why = unusable(fp);
    return { name: p.pair.name, text: why === undefined ? text : `${text}, not counted: ${why}`, ok: why === undefined ? ratio <= 1 : undefined };
  });
  rows.push(['(d1) delta payload ≤ `zstd -19 --long=31 --patch-from` patch, every pair', perPair(size), overall(size.map((s) => s.ok))]);
  const smallest = f.pairs.map((p) => {
    const usable = p.rows.filter((r) => unusable(r) === undefined).sort((a, b) => a.patchBytes! - b.patchBytes!);
    const fp = usable.find((r) => r.id === 'fastpatch');
    const best = usable[0];
    const text = !fp || !best ? 'not measured' : best === fp ? `yes, of ${usable.length} tools` : `no, ${best.short} ${best.patchBytes!.toLocaleString('en-US')} B`;
    return { name: p.pair.name, text };
  });
  rows.push(['(info) FastPatch payload the smallest of all tools', perPair(smallest), '–']);
  const speed = f.pairs.map((p) => {
    const fp = find(p, 'fastpatch');
    const z = find(p, 'zstd');
    const n = Math.min(fp?.encode.length ?? 0, z?.encode.length ?? 0);
    if (n === 0) return { name: p.pair.name, text: !fp?.encode.length ? `FastPatch ${fp?.problem ?? 'not run'}` : `zstd ${z?.problem ?? 'not run'}`, ok: undefined };
    // Paired by round, as the harness does: zstd's seconds / FastPatch's seconds in the same round.
    const ratio = median(Array.from({ length: n }, (_, i) => z!.encode[i]!.seconds / fp!.encode[i]!.seconds));
    return { name: p.pair.name, text: `${fmtSeconds(z!.encode)} s / ${fmtSeconds(fp!.encode)} s = ${ratio.toFixed(2)}×`, ok: ratio >= 5 };
  });
  rows.push(['(d2) delta generate ≥ 5× as fast as `zstd -19 --long=31 --patch-from` (zstd s / FastPatch s)', perPair(speed), overall(speed.map((s) => s.ok))]);
  if (f.apply) {
    const a = f.apply;
    const floor = `; the checks alone: ${a.floor.seconds.toFixed(2)} s on ${a.floor.threads} threads, 80% of dd leaves ${(a.dd.seconds / 0.8).toFixed(2)} s`;
    const cold = `; against dd right after the apply (device cache empty) ${fmtRate(a.ddCold.median)} MB/s, ${(a.ratioCold.ratio * 100).toFixed(0)}%`;
    const text = `${a.pair}: ${fmtRate(a.apply.median)} vs ${fmtRate(a.dd.median)} MB/s; paired ${(a.ratio.ratio * 100).toFixed(0)}%${a.ratio.noisy ? ' ⚠' : ''}${a.deviceMatches ? '' : '; **device content wrong**'}${cold}${floor}`;
    rows.push(['(d3) delta apply onto a block device ≥ 80% of `dd bs=4M conv=fsync` of the new image (dd after dd)', text, verdict(a.ratio.ratio >= 0.8 && a.deviceMatches, a.ratio.noisy)]);
  } else {
    rows.push(['(d3) delta apply onto a block device ≥ 80% of `dd bs=4M conv=fsync` of the new image', cell(`not measured: ${f.applySkipped ?? 'no pair'}`), '**not measured**']);
  }
  const big = f.pairs.find((p) => p.pair.name === f.apply?.pair) ?? f.pairs.reduce((a, b) => (b.pair.bytes > a.pair.bytes ? b : a));
  const fp = find(big, 'fastpatch');
  if (fp && fp.encode.length > 0) {
    const parts = [`generate ${fmtRss(fp.encode)} MiB`];
    if (fp.decode.length > 0) parts.push(`apply to a file ${fmtRss(fp.decode)} MiB`);
    if (f.apply?.applyRssKiB !== undefined) parts.push(`apply onto the loop device ${(f.apply.applyRssKiB / 1024).toFixed(0)} MiB`);
    rows.push([`(info) peak RSS of FastPatch, ${big.pair.name}`, parts.join(', '), '–']);
  }
  return rows;
}
