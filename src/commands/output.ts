/** Printing helpers shared by the commands: sizes, rates, JSON and TTY progress on stderr. */

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

/** One line per operation type: count, image bytes written, payload bytes carried. */
export function printOperationStats(byType: Record<string, { count: number; outputBytes: number; dataBytes: number }>): void {
  for (const [name, s] of Object.entries(byType)) {
    print(`  ${name.padEnd(16)} ${String(s.count).padStart(7)} ops  ${formatBytes(s.outputBytes).padStart(10)} of image  ${formatBytes(s.dataBytes).padStart(10)} of data`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * A one-line progress display on stderr, redrawn at most ten times a second, only when stderr is
 * a terminal (pipes and CI logs stay clean). Call done() to clear it.
 */
export function progressLine(label: string, stream: NodeJS.WriteStream = process.stderr) {
  const enabled = stream.isTTY === true;
  let last = 0;
  return {
    update(done: number, total: number): void {
      if (!enabled) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const pct = total > 0 ? ((done / total) * 100).toFixed(1) : '100.0';
      stream.write(`\r${label}: ${pct}% (${formatBytes(done)} of ${formatBytes(total)})\x1b[K`);
    },
    done(): void {
      if (enabled) stream.write('\r\x1b[K');
    },
  };
}
