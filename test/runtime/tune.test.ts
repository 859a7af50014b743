// The runtime's flags are the host's choice (runtime/tune.ts): the library sets none by itself, not
// even while it applies and generates; tuneRuntime() sets what it is asked for. Each case runs in a
// fresh process, since V8's flags are process-wide and cannot be unset.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const index = fileURLToPath(new URL('../../dist/src/index.js', import.meta.url));

/**
 * Runs `setup` (after importing the library as `lib`) in a fresh process, then reports whether a
 * collection function is exposed to a new context (--expose-gc) and V8's optimization status bits
 * of a hot function (--no-opt leaves it interpreted).
 */
function flagsAfter(setup: string): { gc: boolean; status: number } {
  const script = `
    import * as lib from ${JSON.stringify(index)};
    import { runInNewContext } from 'node:vm';
    ${setup}
    function add(a, b) { return a + b; }
    %PrepareFunctionForOptimization(add);
    add(1, 2); add(3, 4);
    %OptimizeFunctionOnNextCall(add);
    add(5, 6);
    console.log(JSON.stringify({ gc: runInNewContext('typeof gc') === 'function', status: %GetOptimizationStatus(add) }));`;
  // A file, not -e: the decode workers inherit the parent's flags, and --input-type is refused there.
  const dir = mkdtempSync(join(tmpdir(), 'fp-tune-test-'));
  try {
    writeFileSync(join(dir, 'child.mjs'), script);
    const out = execFileSync(process.execPath, ['--allow-natives-syntax', join(dir, 'child.mjs')], { encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop()!) as { gc: boolean; status: number };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// V8's OptimizationStatus bits (src/runtime/runtime.h).
const OPTIMIZED = 1 << 4;
const INTERPRETED = 1 << 7;

/** A full payload made and verified in the child: the library's whole apply path runs. */
const APPLY = `
  const dir = (await import('node:fs')).mkdtempSync((await import('node:os')).tmpdir() + '/fp-tune-');
  const key = lib.generateKey();
  const image = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 255);
  (await import('node:fs')).writeFileSync(dir + '/img', image);
  await lib.generateFullPayload({ target: dir + '/img', keys: [key], version: '1', out: dir + '/p' });
  await lib.applyPayload(lib.readPayloadChunks(dir + '/p'), { trustedKeys: [lib.publicKeyOf(key)], target: dir + '/out' });
  (await import('node:fs')).rmSync(dir, { recursive: true });`;

describe('runtime tuning', () => {
  it('the library sets no flag by itself, also across a generate and an apply', () => {
    const { gc, status } = flagsAfter(APPLY);
    expect(gc).toBe(false);
    expect(status & OPTIMIZED).toBe(OPTIMIZED);
  });

  it('tuneRuntime() exposes collections and leaves the optimizing compiler on', () => {
    const { gc, status } = flagsAfter('lib.tuneRuntime();');
    expect(gc).toBe(true);
    expect(status & OPTIMIZED).toBe(OPTIMIZED);
  });

  it('tuneRuntime({ optimizingCompiler: false }) keeps a hot function in the interpreter', () => {
    const { status } = flagsAfter('lib.tuneRuntime({ collections: false, optimizingCompiler: false });');
    expect(status & OPTIMIZED).toBe(0);
    expect(status & INTERPRETED).toBe(INTERPRETED);
  });
});
