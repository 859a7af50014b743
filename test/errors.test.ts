// One error family: every failure the library reports is a FastPatchError whose code is in
// errors.ts's table, and every code there is in the README's exit-code table under its exit code,
// so an operator can look up any code the CLI prints.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, EXIT } from '../dist/src/errors.js';

const root = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The README's exit-code table: exit code -> the error codes its row lists. */
function readmeTable(): Map<number, string[]> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Exit codes'));
  const rows = new Map<number, string[]>();
  for (const line of section.split('\n').slice(1)) {
    if (line.startsWith('### ') || line.startsWith('## ')) break;
    const cells = line.split('|').map((c) => c.trim());
    const exit = Number(cells[1]);
    if (!line.startsWith('|') || !Number.isInteger(exit) || cells[1] === '') continue;
    rows.set(exit, [...(cells[3] ?? '').matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!));
  }
  return rows;
}

describe('errors', () => {
  it('every error code is in the README table, in the row of its exit code', () => {
    const table = readmeTable();
    expect(table.size, 'the README exit-code table was not found').toBeGreaterThan(5);
    const misplaced = Object.entries(ERROR_CODES).filter(([code, exit]) => !(table.get(exit) ?? []).includes(code));
    expect(misplaced).toEqual([]);
    expect(table.get(EXIT.INTERNAL)).toContain('INTERNAL');
  });

  it('the README lists no code the library does not have (besides the CLI\'s INTERNAL and INTERRUPTED)', () => {
    const listed = [...readmeTable().values()].flat();
    const unknown = listed.filter((code) => !(code in ERROR_CODES) && code !== 'INTERNAL' && code !== 'INTERRUPTED');
    expect(unknown).toEqual([]);
  });

  it('FastPatchError is the only error class src/ exports', () => {
    const exported = sources(join(root, 'src')).flatMap((path) =>
      [...readFileSync(path, 'utf8').matchAll(/^export\s+class\s+(\w+)\s+extends\s+(\w*Error)\b/gm)].map((m) => `${m[1]} (${path.slice(root.length + 1)})`));
    expect(exported).toEqual(['FastPatchError (src/errors.ts)']);
  });
});
