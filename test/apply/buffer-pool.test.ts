// The applier's buffer pool: buffers come back in size classes, so one buffer serves many
// operations of similar size, and a small request never pins a large buffer.
import { describe, expect, it } from 'vitest';
import { BufferPool, SIZE_CLASS } from '../../dist/src/apply/buffer-pool.js';

const KiB = 1024;

describe('BufferPool', () => {
  it('allocates whole size classes and hands back exactly the size asked for', () => {
    const pool = new BufferPool(4);
    const a = pool.take(300 * KiB + 5);
    expect(a.length).toBe(300 * KiB + 5);
    expect(a.buffer.byteLength).toBe(Math.ceil((300 * KiB + 5) / SIZE_CLASS) * SIZE_CLASS);
    // Small sizes take the next power of two, 4 KiB at least.
    expect(pool.take(32).buffer.byteLength).toBe(4 * KiB);
    expect(pool.take(5000).buffer.byteLength).toBe(8 * KiB);
    expect(pool.take(0).length).toBe(0);
  });

  it('reuses a returned buffer for the next request of a similar size', () => {
    const pool = new BufferPool(4);
    const first = pool.take(310 * KiB);
    pool.give(first.buffer);
    const second = pool.take(300 * KiB);
    expect(second.buffer).toBe(first.buffer);
    // Taken: not handed out twice.
    expect(pool.take(300 * KiB).buffer).not.toBe(first.buffer);
  });

  it('picks the smallest buffer that fits, and never one more than twice the request', () => {
    const pool = new BufferPool(8);
    const big = pool.take(4 * 1024 * KiB);
    const mid = pool.take(1024 * KiB);
    pool.give(big.buffer);
    pool.give(mid.buffer);
    expect(pool.take(900 * KiB).buffer).toBe(mid.buffer);
    // 1 MiB would fit in the 4 MiB buffer, but would waste three quarters of it.
    expect(pool.take(1024 * KiB).buffer).not.toBe(big.buffer);
    expect(pool.take(3 * 1024 * KiB).buffer).toBe(big.buffer);
  });

  it('keeps at most `limit` buffers and `limitBytes` bytes, dropping the oldest', () => {
    const pool = new BufferPool(2, 3 * SIZE_CLASS);
    const [a, b, c] = [pool.take(SIZE_CLASS), pool.take(SIZE_CLASS), pool.take(SIZE_CLASS)];
    pool.give(a.buffer);
    pool.give(b.buffer);
    pool.give(c.buffer); // a is dropped
    const kept = [pool.take(SIZE_CLASS).buffer, pool.take(SIZE_CLASS).buffer];
    expect(kept).toContain(b.buffer);
    expect(kept).toContain(c.buffer);
    expect(kept).not.toContain(a.buffer);
    const bytesBound = new BufferPool(10, 2 * SIZE_CLASS);
    bytesBound.give(new ArrayBuffer(3 * SIZE_CLASS)); // larger than the whole bound: not kept
    expect(bytesBound.take(3 * SIZE_CLASS).buffer.byteLength).toBe(3 * SIZE_CLASS);
  });

  it('ignores a buffer given twice, an empty one and a detached one', () => {
    const pool = new BufferPool(4);
    const a = pool.take(SIZE_CLASS);
    pool.give(a.buffer);
    pool.give(a.buffer);
    expect(pool.take(SIZE_CLASS).buffer).toBe(a.buffer);
    expect(pool.take(SIZE_CLASS).buffer).not.toBe(a.buffer);
    const moved = new ArrayBuffer(SIZE_CLASS);
    structuredClone(moved, { transfer: [moved] }); // detached: byteLength 0
    pool.give(moved);
    pool.give(new ArrayBuffer(0));
    expect(pool.take(SIZE_CLASS).buffer).not.toBe(moved);
  });
});
