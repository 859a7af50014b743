import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// The dependency direction of STYLE.md: cli -> commands -> generate | apply | gpt ->
// format | sign | wasm | io -> errors. Checked on import lines so it stays true.
const root = join(import.meta.dirname, '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const staticImports = [...text.matchAll(/^\s*(?:import|export)\s(?:[^'"]*?from\s+)?['"]([^'"]+)['"]/gm)];
  const dynamicImports = [...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return [...staticImports, ...dynamicImports].map((m) => m[1]!);
}

/** Top-level area of a file under src/ ("format", "apply", "cli.ts"...); import specifiers say .js for .ts. */
const area = (path: string) => relative(join(root, 'src'), path).split('/')[0]!.replace(/\.js$/, '.ts');

const forbidden: Record<string, string[]> = {
  format: ['apply', 'generate', 'io', 'wasm', 'sign', 'commands', 'cli.ts', 'demo'],
  errors: ['*'],
  // sign/files.ts reads and writes key files through io/'s exclusive creation and capped reads.
  sign: ['apply', 'generate', 'wasm', 'commands', 'cli.ts', 'demo'],
  wasm: ['apply', 'generate', 'format', 'sign', 'io', 'commands', 'cli.ts', 'demo'],
  io: ['apply', 'generate', 'commands', 'cli.ts', 'demo'],
  apply: ['generate', 'commands', 'cli.ts', 'demo'],
  generate: ['apply', 'commands', 'cli.ts', 'demo'],
  // gpt/ sits beside apply/ and generate/: its codec and models work on plain buffers, its
  // transaction writes through io/.
  gpt: ['apply', 'generate', 'wasm', 'sign', 'format', 'commands', 'cli.ts', 'demo'],
  update: ['commands', 'cli.ts', 'demo'],
  'hex.ts': ['*'],
  'bytes.ts': ['*'],
  'block.ts': ['*'],
  'text.ts': ['*'],
};

describe('module boundaries', () => {
  const sources = files(join(root, 'src'));

  it.each(Object.keys(forbidden))('%s imports only what it may', (from) => {
    for (const file of sources.filter((f) => area(f) === from || area(f) === `${from}.ts`)) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const target = area(join(file, '..', spec));
        const banned = forbidden[from]!;
        const ok = !(banned.includes('*') ? target !== from && target !== `${from}.ts` : banned.includes(target));
        expect(ok, `${relative(root, file)} imports ${spec}`).toBe(true);
      }
    }
  });

  it('commands/ reach the library only through index.ts (the CLI is a thin layer over the public API)', () => {
    for (const file of sources.filter((f) => area(f) === 'commands')) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        expect(['index.ts', 'commands'].includes(area(join(file, '..', spec))), `${relative(root, file)} imports ${spec}`).toBe(true);
      }
    }
  });

  it('assembly/ never imports from src/', () => {
    for (const file of files(join(root, 'assembly'))) {
      for (const spec of importsOf(file)) expect(spec.includes('/src/'), `${file}: ${spec}`).toBe(false);
    }
  });

  it('only cli.ts and commands/ print or exit', () => {
    for (const file of sources.filter((f) => !['cli.ts', 'commands'].includes(area(f)))) {
      const text = readFileSync(file, 'utf8');
      expect(/process\.(exit|stdout\.write|stderr\.write)|console\.(log|error)/.test(text), relative(root, file)).toBe(false);
    }
  });
});
