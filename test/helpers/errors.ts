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

/** The FastPatchError code the promise `fn` returns rejects with, 'no error' if it resolves. */
export async function asyncCodeOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof FastPatchError) return err.code;
    throw err;
  }
  return 'no error';
}
