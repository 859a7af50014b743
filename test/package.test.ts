// What the package ships and what it depends on: every source map it ships points at a source it
// ships too, and every dependency is imported somewhere (an unused one is only weight to install).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  files: string[];
  exports: Record<string, string | { types: string; default: string }>;
  sideEffects: string[];
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path, suffix) : path.endsWith(suffix) ? [path] : [];
  });
}

const shipped = (path: string) => pkg.files.some((entry) => {
  const rel = relative(root, path);
  return rel === entry || rel.startsWith(`${entry}/`);
});

describe('package', () => {
  it('every shipped source map names sources the package ships', () => {
    const maps = filesUnder(join(root, 'dist/src'), '.js.map');
    expect(maps.length).toBeGreaterThan(20);
    const missing = maps.flatMap((map) => {
      const { sources } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[] };
      return sources.map((s) => resolve(dirname(map), s)).filter((s) => !existsSync(s) || !shipped(s)).map((s) => `${relative(root, map)} -> ${relative(root, s)}`);
    });
    expect(missing).toEqual([]);
  });

  it('every dependency is imported or run somewhere', () => {
    const code = ['src', 'bench', 'check', 'test', 'assembly'].flatMap((dir) => filesUnder(join(root, dir), '.ts')).map((f) => readFileSync(f, 'utf8')).join('\n');
    const scripts = readFileSync(join(root, 'package.json'), 'utf8') + readFileSync(join(root, '.ci/run'), 'utf8');
    // A tool counts as used when a script runs one of its commands (its package.json's "bin").
    const commands = (name: string): string[] => {
      const bin = (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> }).bin;
      return typeof bin === 'string' ? [name] : Object.keys(bin ?? {});
    };
    const scriptText = scripts.replace(/"[^"]*":\s*"\^?[\d.]+"/g, ''); // not the dependency lists themselves
    const used = (name: string) => {
      const base = name.replace(/^@types\//, '').replace(/^(\w+)__/, '@$1/');
      if (code.includes(`'${base}'`) || code.includes(`'${base}/`) || code.includes(`"${base}"`)) return true;
      return [base, ...commands(name)].some((command) => new RegExp(`(^|[\\s"&;(])${command}\\b`).test(scriptText));
    };
    const unused = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)].filter((name) => !used(name));
    expect(unused).toEqual([]);
  });

  it('its three entry points load by the package\'s own name, each with what it is for', async () => {
    const main = await import('fastpatch');
    const formatEntry = await import('fastpatch/format');
    const gptEntry = await import('fastpatch/gpt');
    expect(typeof main.applyPayload).toBe('function');
    expect(typeof main.tuneRuntime).toBe('function');
    expect(typeof formatEntry.decodeManifest).toBe('function');
    expect(typeof gptEntry.readGpt).toBe('function');
    expect(typeof gptEntry.decodeHeader).toBe('function');
    // Internals stay out of the everyday API.
    for (const internal of ['WasmCore', 'PIPELINE_DEPTH', 'lockDisk', 'openDisk', 'runDemo', 'PayloadReader', 'createTempBeside']) expect(main, internal).not.toHaveProperty(internal);
    for (const [, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      expect(existsSync(join(root, target.default)), target.default).toBe(true);
      expect(existsSync(join(root, target.types)), target.types).toBe(true);
    }
  });

  it('sideEffects names every file that does something when loaded, and each pattern matches a file', () => {
    const matches = (pattern: string) => filesUnder(join(root, 'dist/src'), '.js').map((f) => `./${relative(root, f)}`).filter((f) => new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`).test(f));
    for (const pattern of pkg.sideEffects) expect(matches(pattern).length, pattern).toBeGreaterThan(0);
    // The worker scripts and the CLI run on load; a library module must not.
    for (const needed of ['./dist/src/cli.js', './dist/src/apply/decode-worker.js', './dist/src/generate/diff-worker.js', './dist/src/commands/allocator.js']) {
      expect(pkg.sideEffects.some((pattern) => matches(pattern).includes(needed)), needed).toBe(true);
    }
  });
});
