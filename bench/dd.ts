/**
 * The dd runs an apply onto a loop device is compared with, three ways, in one alternating set.
 *
 * The apply writes a block device past the page cache (src/io/direct-writer.ts), and a direct
 * write drops the device's cached pages it covers. A buffered dd that follows it must then
 * allocate the image's 131,072 pages afresh, which on this VM runs at 300-400 MB/s (memory the
 * host reclaimed is slow to touch again), while a dd that follows a dd recycles the cached pages
 * at 1-1.7 GB/s. Compared with the first alone, the apply would look faster than dd for a reason
 * that has nothing to do with it. So each round runs:
 *   1. dd right after the apply (the device's cache empty): what the bar's alternation measures;
 *   2. dd again at once (the cache holds the image): dd at its best, the peer the bars use;
 *   3. dd with oflag=direct: the device's own speed past the page cache, for reference.
 */
import type { Case } from './harness.js';

export interface DdRuns {
  cold: Case;
  warm: Case;
  direct: Case;
}

/** The three dd cases writing `image` onto `device`; `run` starts a command and settles when it exits. */
export function ddCases(image: string, device: string, bytes: number, run: (cmd: string, args: string[]) => Promise<unknown>): DdRuns {
  const dd = (extra: string[]) => () => run('dd', [`if=${image}`, `of=${device}`, 'bs=4M', 'conv=fsync', ...extra, 'status=none']);
  return {
    cold: { name: `dd if=new of=${device} bs=4M conv=fsync, after the apply (device cache empty)`, bytes, cores: 0, run: dd([]) },
    warm: { name: `dd if=new of=${device} bs=4M conv=fsync, again (device cache holds the image)`, bytes, cores: 0, run: dd([]) },
    direct: { name: `dd if=new of=${device} bs=4M oflag=direct conv=fsync (past the page cache)`, bytes, cores: 0, run: dd(['oflag=direct']) },
  };
}
