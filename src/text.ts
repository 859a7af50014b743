/**
 * Text from untrusted input (partition labels, release versions, file names, server messages)
 * made safe to print on a terminal: control characters that would move the cursor, ring the bell,
 * start an escape sequence, forge a new line or reorder text are shown as escapes instead.
 * No imports: any layer may use it.
 */

// C0 controls, DEL, C1 controls, and Unicode's line/paragraph separators, bidirectional marks,
// overrides and isolates (which reorder what a reader sees) and zero-width characters (which hide).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/gu;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/** `text` with every control character shown as \n, \r, \t, \xHH or \u{HHHH}; backslashes doubled only when escaping happened. */
export function escapeText(text: string): string {
  if (!UNSAFE.test(text)) return text;
  UNSAFE.lastIndex = 0;
  return text.replace(/\\/g, '\\\\').replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
