/**
 * Ordering release versions, for downgrade protection. Versions are the manifest's
 * `[0-9A-Za-z.+~_-]` strings: Flatcar's "3815.2.0", semver's "1.2.0-rc.1", Debian-like "1.2~beta".
 *
 * Rules (those of dpkg's version comparison, on one component): the strings are cut into runs of
 * digits and runs of non-digits, compared left to right; digit runs compare as numbers, other runs
 * character by character where '~' sorts before everything, even the end of the string (so
 * "1.2~rc1" < "1.2"), and letters sort before punctuation. "1.10" > "1.9"; "1.2" < "1.2.1".
 * Build metadata after '+' is not ignored: two builds of one release differ and compare as text.
 */

/** Negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // Non-digit run.
    while ((i < a.length && !isDigit(a[i]!)) || (j < b.length && !isDigit(b[j]!))) {
      const ca = i < a.length && !isDigit(a[i]!) ? order(a[i]!) : 0;
      const cb = j < b.length && !isDigit(b[j]!) ? order(b[j]!) : 0;
      if (ca !== cb) return ca - cb;
      if (i < a.length && !isDigit(a[i]!)) i++;
      if (j < b.length && !isDigit(b[j]!)) j++;
    }
    // Digit run, as a number (leading zeros ignored; any length, compared as text once stripped).
    let na = '';
    let nb = '';
    while (i < a.length && isDigit(a[i]!)) na += a[i++];
    while (j < b.length && isDigit(b[j]!)) nb += b[j++];
    na = na.replace(/^0+/, '');
    nb = nb.replace(/^0+/, '');
    if (na.length !== nb.length) return na.length - nb.length;
    if (na !== nb) return na < nb ? -1 : 1;
  }
  return 0;
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

/** dpkg's order within a non-digit run: '~' first, then the end of the run, letters, then the rest. */
function order(c: string): number {
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}
