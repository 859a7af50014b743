/**
 * Power-cut test of the real CLI: `npm run powercut -- [--cuts N] [--seed S] [--size MiB] [--gpt N]`.
 *
 * Kills `fastpatch apply` (full and delta payloads, onto a loop device) with SIGKILL at N random
 * points each, resumes with `apply --resume`, and checks the target byte for byte against the new
 * release and the bytes the resume fetched against the data the target still lacked; then kills
 * `gpt set-next` and `gpt mark-good` at random points and checks the disk reads back (repaired if
 * need be) in the old or the new state, bootable by GRUB's and vboot's models. Exits 1 if any cut
 * failed. Needs root (loop devices). Engine: check/powercut/engine.ts.
 *
 * SIGKILL is not a real power cut: the kernel keeps every write the process completed (page cache),
 * so this tests the process dying at any point, not lost or torn sector writes. Sector-level crash
 * injection of GPT flips lives in test/disk/cycle.test.ts.
 */
import { failuresOf, formatSummary, runPowercut } from './engine.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`--${name} needs a non-negative integer`);
    process.exit(2);
  }
  return value;
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log('usage: npm run powercut -- [--cuts N (per payload kind, default 100)] [--seed S (default 1)] [--size MiB (default 64)] [--gpt N (kills per gpt command, default 100)]');
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error('powercut needs root: it attaches loop devices (losetup)');
  process.exit(2);
}
const cuts = option('cuts', 100);
const seed = option('seed', 1);
const sizeMiB = option('size', 64);
const gptKills = option('gpt', 100);
const summary = await runPowercut({ cuts, seed, sizeMiB, gptKills, log: (line) => console.log(line) });
console.log(formatSummary(summary));
process.exit(failuresOf(summary) === 0 ? 0 : 1);
