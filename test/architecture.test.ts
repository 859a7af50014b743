import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The dependency direction of STYLE.md: cli -> commands -> update -> generate | apply | disk ->
// gpt | format | sign | wasm | io -> errors. Checked on import lines so it stays true.
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
  format: ['apply', 'generate', 'io', 'wasm', 'sign', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  errors: ['*'],
  // sign/files.ts reads and writes key files through io/'s exclusive creation and capped reads.
  sign: ['apply', 'generate', 'wasm', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  wasm: ['apply', 'generate', 'format', 'sign', 'io', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  // omaha/: the protocol's codecs, pure (the server and the device agent sit above it).
  omaha: ['apply', 'generate', 'gpt', 'disk', 'update', 'io', 'wasm', 'sign', 'runtime', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  // runtime/: the process (worker threads, collections, V8 flags), below everything that uses it.
  runtime: ['apply', 'generate', 'gpt', 'disk', 'update', 'format', 'sign', 'io', 'wasm', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  io: ['apply', 'generate', 'gpt', 'disk', 'update', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  apply: ['generate', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  generate: ['apply', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  // gpt/ is pure beside format/: its codec, models and write order work on plain buffers.
  gpt: ['apply', 'generate', 'wasm', 'sign', 'format', 'io', 'disk', 'update', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  // disk/ carries out gpt/'s plans on a real disk, through io/.
  disk: ['apply', 'generate', 'sign', 'format', 'update', 'commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  update: ['commands', 'cli.ts', 'demo', 'release', 'server', 'agent', 'fleet'],
  'hex.ts': ['*'],
  'bytes.ts': ['*'],
  'block.ts': ['*'],
  'text.ts': ['*'],
  // release/ publishes: generates payloads and writes documents; it never answers devices.
  release: ['server', 'agent', 'fleet', 'commands', 'cli.ts', 'demo'],
  // server/ and agent/ share only omaha/ (STYLE.md): the service never runs device code, nor the device service code.
  server: ['agent', 'fleet', 'apply', 'generate', 'disk', 'update', 'commands', 'cli.ts', 'demo'],
  agent: ['server', 'release', 'generate', 'commands', 'cli.ts', 'demo'],
  // fleet/: reboot coordination (the etcd semaphore, FleetLock, windows), below the agent.
  fleet: ['agent', 'server', 'release', 'apply', 'generate', 'disk', 'update', 'commands', 'cli.ts', 'demo'],
};

// File-level exceptions, each a pure parser: update.conf (update/config.ts) checks the agent's
// reboot window and etcd endpoints where it reads them, with fleet/'s parsers (no etcd client).
const allowedAcross: Record<string, string[]> = {
  'src/update/config.ts': ['src/fleet/window.ts', 'src/fleet/endpoints.ts'],
};

describe('module boundaries', () => {
  const sources = files(join(root, 'src'));

  it.each(Object.keys(forbidden))('%s imports only what it may', (from) => {
    for (const file of sources.filter((f) => area(f) === from || area(f) === `${from}.ts`)) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        if (allowedAcross[relative(root, file)]?.includes(relative(root, join(file, '..', spec)).replace(/\.js$/, '.ts'))) continue;
        const target = area(join(file, '..', spec));
        const banned = forbidden[from]!;
        const ok = !(banned.includes('*') ? target !== from && target !== `${from}.ts` : banned.includes(target));
        expect(ok, `${relative(root, file)} imports ${spec}`).toBe(true);
      }
    }
  });

  it.each(['gpt', 'format', 'omaha'])('%s/ touches no file system, process or network (pure: buffers in, buffers out)', (dir) => {
    for (const file of sources.filter((f) => area(f) === dir)) {
      for (const spec of importsOf(file)) {
        expect(/^(node:)?(fs|fs\/promises|child_process|net|http|https|worker_threads)$/.test(spec), `${relative(root, file)} imports ${spec}`).toBe(false);
      }
    }
  });

  it('no pointer into WASM memory outside src/wasm/: the delta module is used through its typed methods', () => {
    for (const file of sources.filter((f) => area(f) !== 'wasm')) {
      const text = readFileSync(file, 'utf8');
      if (!/\bDeltaCore\b|wasm\/(delta|indexes)\.js/.test(text)) continue;
      const raw = [...text.matchAll(/(?<!Buffer)\.(alloc|put|mark|reset|bytes)\(|\.exports\b/g)].map((m) => m[0]);
      expect(raw, relative(root, file)).toEqual([]);
    }
  });

  it('every file of src/ reads in one sitting: at most 400 lines, no function over 80', () => {
    const long: string[] = [];
    for (const file of sources) {
      const text = readFileSync(file, 'utf8');
      const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
      if (lines > 400) long.push(`${relative(root, file)}: ${lines} lines`);
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isFunctionLike(node) && 'body' in node && node.body) {
          const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
          const last = sf.getLineAndCharacterOfPosition(node.end).line;
          if (last - first + 1 > 80) long.push(`${relative(root, file)}:${first + 1}: a function of ${last - first + 1} lines`);
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
    }
    expect(long).toEqual([]);
  });

  it('no import cycles among the files of src/ (type imports included)', () => {
    const graph = new Map(sources.map((file) => [file, importsOf(file).filter((s) => s.startsWith('.')).map((s) => join(file, '..', s).replace(/\.js$/, '.ts'))]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of sources) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('commands/ use only the public API: what src/index.ts, src/format/index.ts and src/gpt/index.ts export (the CLI is a thin layer over it)', () => {
    // Module -> the names an entry point re-exports from it. A command imports the module itself,
    // so that it loads only what it uses (cli.ts loads each command when it runs).
    const publicNames = new Map<string, Set<string>>();
    for (const entry of ['src/index.ts', 'src/format/index.ts', 'src/gpt/index.ts']) {
      const text = readFileSync(join(root, entry), 'utf8');
      for (const m of text.matchAll(/export (?:type )?\{([^}]*)\} from '([^']+)'/g)) {
        const module = join(root, entry, '..', m[2]!).replace(/\.js$/, '.ts');
        const names = publicNames.get(module) ?? new Set<string>();
        for (const name of m[1]!.split(',').map((n) => n.trim().replace(/^type /, '').split(' as ').pop()!.trim()).filter(Boolean)) names.add(name);
        publicNames.set(module, names);
      }
    }
    publicNames.set(join(root, 'src/demo/run.ts'), new Set(['runDemo'])); // the demo command's own
    for (const file of sources.filter((f) => area(f) === 'commands')) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^import (?:type )?\{([^}]*)\} from '(\.[^']+)'/gm)) {
        const module = join(file, '..', m[2]!).replace(/\.js$/, '.ts');
        if (area(module) === 'commands') continue;
        const names = m[1]!.split(',').map((n) => n.trim().replace(/^type /, '').split(' as ')[0]!.trim()).filter(Boolean);
        const exported = publicNames.get(module);
        expect(exported, `${relative(root, file)} imports ${m[2]}, which no entry point exports from`).toBeDefined();
        for (const name of names) expect(exported!.has(name), `${relative(root, file)} imports ${name} from ${m[2]}: not in the public API`).toBe(true);
      }
      for (const spec of importsOf(file)) {
        if (spec.startsWith('.') && area(join(file, '..', spec)) === 'index.ts') expect.fail(`${relative(root, file)} imports the whole index.ts: import the module it needs`);
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
