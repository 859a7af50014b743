/**
 * The `cgpt prioritize` vectors of gpt-ab-switching.md §2.4, each checked against Debian's cgpt:
 * [priorities before (partitions 1..n), -i target (undefined: none), options, priorities after].
 * They cover -f, -P, a zero group left alone, coalescing of more than 15 groups, and a top value
 * that gets lowered (15 -> 2).
 */
export const CGPT_PRIORITIZE_VECTORS: Array<[number[], number | undefined, { friends?: boolean; maxPriority?: number }, number[]]> = [
  [[5, 3, 3, 0, 1], undefined, {}, [3, 2, 2, 0, 1]],
  [[5, 3, 3, 0, 1], 4, {}, [3, 2, 2, 4, 1]],
  [[5, 3, 3, 0, 1], 2, {}, [3, 4, 2, 0, 1]],
  [[5, 3, 3, 0, 1], 2, { friends: true }, [2, 3, 3, 0, 1]],
  [[5, 3, 3, 0, 1], 5, { maxPriority: 15 }, [14, 13, 13, 0, 15]],
  [[5, 3, 3, 0, 1], 5, { maxPriority: 2 }, [1, 1, 1, 0, 2]],
  [[0, 0, 0, 0, 0], 3, {}, [0, 0, 1, 0, 0]],
  [[0, 0, 0, 0, 0], 3, { friends: true }, [1, 1, 1, 1, 1]],
  [[15, 15, 0, 0, 0], 2, {}, [1, 2, 0, 0, 0]],
  [[1, 1, 1, 1, 1], 5, {}, [1, 1, 1, 1, 2]],
  [[15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0], 16, {}, [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 15]],
];
