/**
 * Argument checks shared by the WASM wrappers (core.ts, sha256.ts, block-list.ts): bad arguments
 * throw TypeError/RangeError naming the argument, before any byte reaches the module.
 */

/** A short name for what `value` is, for error messages ("null", "Array", "string"...). */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

/** @throws TypeError naming `name` unless value is a Uint8Array. */
export function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array, got ${describe(value)}`);
}

/** Returns `value` (default 0) after checking it is a non-negative safe integer. */
export function checkOffset(value: unknown, name: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}
