/**
 * What the main thread sends a diff worker for one range of the new image (DiffJob), and what the
 * worker sends back (DiffResult): the pool protocol of delta generation (delta.ts, diff-worker.ts,
 * diff-op.ts). Types only.
 */
import type { Extent } from '../format/manifest.js';

export interface DiffJob {
  index: number;
  start: number;
  count: number;
  /** Per target block of the range: the source block with the same bytes, or -1. */
  copies: Int32Array;
  /**
   * The source blocks the range's anchors point to, as (block, votes) pairs (votesOf, in the main
   * thread, which holds the source's fingerprint index: the workers need no copy of it).
   */
  sourceVotes: Int32Array;
  /**
   * Format 2: the earlier target blocks the range's anchors point to, as (block, votes) pairs,
   * most voted first, at most the format's 4096 (votesOf, from the target's fingerprint index).
   */
  targetVotes?: Int32Array;
}

export interface DiffResult {
  index: number;
  /** The target blocks the operation writes (one operation per job since 4 MiB jobs; the list form stays for the pool protocol). */
  start: number;
  count: number;
  /** SOURCE_ZSTD: earlier target blocks that join its dictionary after the source blocks. */
  targetDictionary?: Extent[];
  type: number;
  blob: Uint8Array;
  srcExtents: Extent[];
  /** Bytes of the three streams before compression (for reports). */
  diffBytes: number;
  extraBytes: number;
}
