// The diff encoder: target bytes T against a source buffer S, in the manner of bsdiff. It walks T
// along a "diagonal" (a fixed offset into S), lets bytes that differ from S along it go into a
// difference stream (T - S, bytewise: mostly zeros where code moved and its pointers shifted), and
// moves to a new diagonal when an exact match found through a hash index over S beats the current
// one by more than SWITCH_MARGIN bytes. Bytes covered by no diagonal go to an extra stream.
//
// Output, for each control entry: `diffLen` bytes of T are S[srcPos ..] + diff bytes, then
// `extraLen` bytes of T come from the extra stream. Entries are u32 triples (diffLen, extraLen,
// srcPos); JS turns them into varints (docs/FORMAT.md, "SOURCE_DIFF").

/** Bytes hashed per index entry; also the shortest exact match looked for. */
const HASH_BYTES: i64 = 8;
/** Index every STRIDE-th position of S: a match of HASH_BYTES + STRIDE - 1 bytes is always found. */
const STRIDE: i64 = 4;
/** Entries per hash bucket (newest first). */
const WAYS: usize = 4;
/** A new diagonal must explain this many more bytes than the current one (bsdiff's constant). */
const SWITCH_MARGIN: i64 = 8;
/** Longest exact match measured per candidate: bounds the work per target position. */
const MATCH_CAP: i64 = 512;

// Result of the last findMatch call (module globals: no allocation).
let matchLen: i64 = 0;
let matchPos: i64 = 0;

@inline function hashAt(p: usize, bits: u32): usize {
  return <usize>((load<u64>(p) * 0x9e3779b97f4a7c15) >> (64 - bits));
}

/** Bytes equal from a and b onwards, at most `limit`. */
@inline function commonLength(a: usize, b: usize, limit: i64): i64 {
  let n: i64 = 0;
  while (n + 8 <= limit) {
    const x = load<u64>(a + <usize>n) ^ load<u64>(b + <usize>n);
    if (x != 0) return n + <i64>(ctz(x) >> 3);
    n += 8;
  }
  while (n < limit && load<u8>(a + <usize>n) == load<u8>(b + <usize>n)) n++;
  return n;
}

@inline function minI(a: i64, b: i64): i64 {
  return a < b ? a : b;
}

/**
 * Longest exact match of T[scan..] in S: first along the current diagonal (most of the time the
 * answer), else among the bucket's candidates. Sets matchLen (0 if under HASH_BYTES) and matchPos.
 */
function findMatch(s: usize, sLen: i64, t: usize, tLen: i64, table: usize, bits: u32, scan: i64, offset: i64, minMatch: i64): void {
  const limitT = tLen - scan;
  const q = scan + offset;
  if (q >= 0 && q < sLen) {
    const n = commonLength(s + <usize>q, t + <usize>scan, minI(minI(sLen - q, limitT), MATCH_CAP));
    if (n >= HASH_BYTES) {
      matchLen = n;
      matchPos = q;
      return;
    }
  }
  matchLen = 0;
  matchPos = 0;
  if (limitT < HASH_BYTES) return;
  const bucket = table + (hashAt(t + <usize>scan, bits) << 4);
  for (let w: usize = 0; w < WAYS; w++) {
    const v = load<u32>(bucket + (w << 2));
    if (v == 0) break;
    const p = <i64>(v - 1);
    const n = commonLength(s + <usize>p, t + <usize>scan, minI(minI(sLen - p, limitT), MATCH_CAP));
    if (n > matchLen) {
      matchLen = n;
      matchPos = p;
    }
  }
  if (matchLen < minMatch) matchLen = 0;
}

/**
 * Encodes T = [t, t + tLen) against S = [s, s + sLen). `table` is scratch for the hash index:
 * 16 << bits bytes. Writes control triples to `ctrl` (at most maxEntries), difference bytes to
 * `diff` and extra bytes to `extra` (each needs room for tLen bytes), and at `result` the u32
 * totals (diff bytes, extra bytes). A match found through the index must be `minMatchBytes` long
 * to count: shorter ones, common by chance in unrelated code, would only fragment new data. Returns the number of entries, or -1 if they would exceed
 * maxEntries (the caller then stores the data without a diff).
 */
export function diffEncode(
  s: usize, sBytes: usize, t: usize, tBytes: usize, table: usize, bits: u32,
  ctrl: usize, maxEntries: u32, diff: usize, extra: usize, result: usize, minMatchBytes: u32,
): i32 {
  const minMatch = max<i64>(HASH_BYTES, <i64>minMatchBytes);
  const sLen = <i64>sBytes;
  const tLen = <i64>tBytes;
  memory.fill(table, 0, <usize>16 << bits);
  for (let p: i64 = 0; p + HASH_BYTES <= sLen; p += STRIDE) {
    const bucket = table + (hashAt(s + <usize>p, bits) << 4);
    // Newest first: shift the bucket down one way and put p + 1 in front.
    store<u32>(bucket, load<u32>(bucket, 8), 12);
    store<u32>(bucket, load<u32>(bucket, 4), 8);
    store<u32>(bucket, load<u32>(bucket), 4);
    store<u32>(bucket, <u32>(p + 1));
  }

  let scan: i64 = 0, len: i64 = 0, pos: i64 = 0;
  let lastScan: i64 = 0, lastPos: i64 = 0, lastOffset: i64 = 0;
  let entries: u32 = 0;
  let dOut: usize = 0, eOut: usize = 0;
  while (scan < tLen) {
    let oldScore: i64 = 0;
    scan += len;
    let scsc = scan;
    while (scan < tLen) {
      findMatch(s, sLen, t, tLen, table, bits, scan, lastOffset, minMatch);
      len = matchLen;
      pos = matchPos;
      for (; scsc < scan + len; scsc++) {
        const q = scsc + lastOffset;
        if (q >= 0 && q < sLen && load<u8>(s + <usize>q) == load<u8>(t + <usize>scsc)) oldScore++;
      }
      if ((len == oldScore && len != 0) || len > oldScore + SWITCH_MARGIN) break;
      const q = scan + lastOffset;
      if (q >= 0 && q < sLen && load<u8>(s + <usize>q) == load<u8>(t + <usize>scan)) oldScore--;
      scan++;
    }
    if (len == oldScore && scan != tLen) continue;

    // How far the previous diagonal should reach forward (best 2 * equal - length)...
    let lenf: i64 = 0;
    {
      let same: i64 = 0, best: i64 = 0;
      for (let i: i64 = 0; lastScan + i < scan && lastPos + i < sLen; ) {
        if (load<u8>(s + <usize>(lastPos + i)) == load<u8>(t + <usize>(lastScan + i))) same++;
        i++;
        if (same * 2 - i > best * 2 - lenf) {
          best = same;
          lenf = i;
        }
      }
    }
    // ...and how far the new one should reach backward.
    let lenb: i64 = 0;
    if (scan < tLen) {
      let same: i64 = 0, best: i64 = 0;
      for (let i: i64 = 1; scan >= lastScan + i && pos >= i; i++) {
        if (load<u8>(s + <usize>(pos - i)) == load<u8>(t + <usize>(scan - i))) same++;
        if (same * 2 - i > best * 2 - lenb) {
          best = same;
          lenb = i;
        }
      }
    }
    // Where both reach over the same bytes, split them where the first stops being the better.
    if (lastScan + lenf > scan - lenb) {
      const overlap = lastScan + lenf - (scan - lenb);
      let score: i64 = 0, best: i64 = 0, split: i64 = 0;
      for (let i: i64 = 0; i < overlap; i++) {
        if (load<u8>(t + <usize>(lastScan + lenf - overlap + i)) == load<u8>(s + <usize>(lastPos + lenf - overlap + i))) score++;
        if (load<u8>(t + <usize>(scan - lenb + i)) == load<u8>(s + <usize>(pos - lenb + i))) score--;
        if (score > best) {
          best = score;
          split = i + 1;
        }
      }
      lenf += split - overlap;
      lenb -= split;
    }

    const extraLen = scan - lenb - (lastScan + lenf);
    if (lenf + extraLen > 0) {
      if (entries >= maxEntries) return -1;
      const rec = ctrl + <usize>entries * 12;
      store<u32>(rec, <u32>lenf);
      store<u32>(rec, <u32>extraLen, 4);
      store<u32>(rec, <u32>(lenf > 0 ? lastPos : 0), 8);
      entries++;
      for (let i: i64 = 0; i < lenf; i++) {
        store<u8>(diff + dOut + <usize>i, load<u8>(t + <usize>(lastScan + i)) - load<u8>(s + <usize>(lastPos + i)));
      }
      dOut += <usize>lenf;
      memory.copy(extra + eOut, t + <usize>(lastScan + lenf), <usize>extraLen);
      eOut += <usize>extraLen;
    }
    lastScan = scan - lenb;
    lastPos = pos - lenb;
    lastOffset = pos - scan;
  }
  store<u32>(result, <u32>dOut);
  store<u32>(result, <u32>eOut, 4);
  return <i32>entries;
}
