/**
 * Printing helpers shared by the commands: sizes, rates, JSON and TTY progress on stderr.
 *
 * Everything printed here is passed through escapeText: lines carry labels, versions, paths and
 * messages that come from payloads, disks and servers, and a control character in one of them
 * must not move the cursor, ring the bell or forge a line on the user's terminal.
 */
import { escapeText } from '../text.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Megabytes (10^6 bytes) per second, the unit bench/RESULTS.md uses. */
export function formatRate(bytes: number, seconds: number): string {
  return `${(bytes / 1e6 / Math.max(seconds, 1e-9)).toFixed(0)} MB/s`;
}

/** A duration in whole seconds as `42s`, `3m05s` or `2h07m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * The text of one progress line: percent, bytes, and once a second has passed and some bytes are
 * done, the average rate since the start and the time left at that rate. A pure function of its
 * arguments (`elapsed` in seconds); `label` is escaped.
 */
export function formatProgress(label: string, done: number, total: number, elapsed: number): string {
  const pct = total > 0 ? ((Math.min(done, total) / total) * 100).toFixed(1) : '100.0';
  let text = `${escapeText(label)}: ${pct}% (${formatBytes(done)} of ${formatBytes(total)})`;
  if (elapsed >= 1 && done > 0) {
    const rate = done / elapsed;
    text += `, ${formatRate(done, elapsed)}`;
    if (done < total) text += `, ${formatDuration((total - done) / rate)} left`;
  }
  return text;
}

/** One line per operation type: count, image bytes written, payload bytes carried. */
export function printOperationStats(byType: Record<string, { count: number; outputBytes: number; dataBytes: number }>): void {
  for (const [name, s] of Object.entries(byType)) {
    print(`  ${name.padEnd(16)} ${String(s.count).padStart(7)} ops  ${formatBytes(s.outputBytes).padStart(10)} of image  ${formatBytes(s.dataBytes).padStart(10)} of data`);
  }
}

// JSON.stringify escapes C0 controls but leaves DEL, C1 controls, line separators and
// bidirectional overrides raw; as \uXXXX they parse back to the same strings.
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * The JSON replacer of printJson: a BigInt becomes a number when it is a safe integer and a
 * decimal string otherwise (JSON has no BigInt, and a rounded number would silently lie); a
 * duration in seconds (a key `seconds` or ending in `Seconds`) is rounded to milliseconds.
 */
export function jsonReplacer(key: string, value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (typeof value === 'number' && Number.isFinite(value) && (key === 'seconds' || key.endsWith('Seconds'))) {
    return Math.round(value * 1000) / 1000;
  }
  return value;
}

/** `value` as the JSON printJson writes: BigInts and durations as jsonReplacer says, unsafe characters as \uXXXX. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, jsonReplacer, 2).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${toJson(value)}\n`);
}

/** Prints one line on stdout, with control characters from untrusted parts escaped. */
export function print(line: string): void {
  process.stdout.write(`${escapeText(line)}\n`);
}

/** Prints one line on stderr (a warning, a note that must not mix with stdout), escaped like print. */
export function printError(line: string): void {
  clearProgress();
  process.stderr.write(`${escapeText(line)}\n`);
}

/** The progress line drawn last on stderr, if one is showing: cleared before anything else is printed there. */
let showing: NodeJS.WriteStream | null = null;

/** Clears the progress line if one is showing (before an error or interruption message). */
export function clearProgress(): void {
  if (showing) showing.write('\r\x1b[K');
  showing = null;
}

/**
 * A one-line progress display on stderr, redrawn at most ten times a second, only when stderr is
 * a terminal (pipes and CI logs stay clean): percent, bytes, rate and time left (formatProgress).
 * Call done() to clear it.
 */
export function progressLine(label: string, stream: NodeJS.WriteStream = process.stderr) {
  const enabled = stream.isTTY === true;
  const start = Date.now();
  let last = 0;
  return {
    update(done: number, total: number): void {
      if (!enabled) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      stream.write(`\r${formatProgress(label, done, total, (now - start) / 1000)}\x1b[K`);
      showing = stream;
    },
    done(): void {
      if (enabled) stream.write('\r\x1b[K');
      if (showing === stream) showing = null;
    },
  };
}

/**
 * Resolves at SIGINT or SIGTERM, replacing the CLI's interruption handlers: a daemon's stop
 * (`serve`, `fleetlock`) is not an interruption, so it closes and exits 0.
 */
export function untilStopped(): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.removeAllListeners(signal);
      process.once(signal, () => resolve());
    }
  });
}
