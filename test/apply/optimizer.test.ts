// disableOptimizingCompiler really keeps V8's optimizing compiler off (apply/optimizer.ts says why
// the CLI wants that for apply): a function V8 is told to optimize stays interpreted.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const index = fileURLToPath(new URL('../../dist/src/index.js', import.meta.url));

/** V8's optimization status bits of a hot function, in a fresh process, with or without the switch. */
function statusOf(off: boolean): number {
  const script = `
    import { disableOptimizingCompiler } from ${JSON.stringify(index)};
    if (process.env.OFF === '1') disableOptimizingCompiler();
    function add(a, b) { return a + b; }
    %PrepareFunctionForOptimization(add);
    add(1, 2); add(3, 4);
    %OptimizeFunctionOnNextCall(add);
    add(5, 6);
    console.log(%GetOptimizationStatus(add));`;
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, OFF: off ? '1' : '0' } });
  return Number(out.trim());
}

// V8's OptimizationStatus bits (src/runtime/runtime.h).
const OPTIMIZED = 1 << 4;
const INTERPRETED = 1 << 7;

describe('disableOptimizingCompiler', () => {
  it('by default V8 optimizes a hot function (so the check below can fail)', () => {
    expect(statusOf(false) & OPTIMIZED).toBe(OPTIMIZED);
  });

  it('after it, the same function stays in the interpreter', () => {
    const status = statusOf(true);
    expect(status & OPTIMIZED).toBe(0);
    expect(status & INTERPRETED).toBe(INTERPRETED);
  });
});
