import { FastPatchError } from '../../dist/src/index.js';

/** The FastPatchError code `fn` throws, 'no error' if it returns; anything else is rethrown. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof FastPatchError) return err.code;
    throw err;
  }
  return 'no error';
}
