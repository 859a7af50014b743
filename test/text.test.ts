import { describe, expect, it } from 'vitest';
import { escapeText } from '../src/text.js';

describe('escapeText', () => {
  it.each([
    ['USR-B', 'USR-B'],
    ['a\\b', 'a\\b'], // nothing to escape: backslashes stay as they are
    ['\x1b[31mred\x07\nnext', '\\x1b[31mred\\x07\\nnext'],
    ['tab\there\r', 'tab\\there\\r'],
    ['back\\slash\x1b', 'back\\\\slash\\x1b'], // escaped text is unambiguous: a real backslash is doubled
    ['c1\u009bcsi', 'c1\\x9bcsi'],
    ['del\x7f', 'del\\x7f'],
    ['bidi\u202eevil\u2066', 'bidi\\u{202e}evil\\u{2066}'],
    ['line\u2028sep', 'line\\u{2028}sep'],
    ['zero\u200bwidth\u200f\u061c\ufeff', 'zero\\u{200b}width\\u{200f}\\u{61c}\\u{feff}'],
    ['naïve ✓ 日本', 'naïve ✓ 日本'],
  ])('%j -> %j', (input, expected) => {
    expect(escapeText(input)).toBe(expected);
  });

  it('leaves no control character in any single-character string', () => {
    for (let c = 0; c < 0x10000; c++) {
      const out = escapeText(`x${String.fromCharCode(c)}y`);
      expect(/[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u.test(out), `U+${c.toString(16)}`).toBe(false);
    }
  });

  it('is stable across calls (no state left in the global pattern)', () => {
    expect(escapeText('\x1b')).toBe('\\x1b');
    expect(escapeText('\x1b')).toBe('\\x1b');
    expect(escapeText('ok')).toBe('ok');
    expect(escapeText('\x07')).toBe('\\x07');
  });
});
