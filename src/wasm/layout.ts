/**
 * Mirror of assembly/layout.ts: the constants the TypeScript side relies on, and the region
 * offsets read from a module instance (never hard-coded), checked against the ABI version.
 */

import { BLOCK_SIZE, DIGEST_SIZE } from '../block.js';
import { wasmApi, type WasmMemory } from './webassembly.js';

export { BLOCK_SIZE, DIGEST_SIZE };
/** ABI version this wrapper speaks; a module reporting another one is refused. */
export const ABI_VERSION = 1;

/** The raw exports of the core module: numbers in, numbers out (see assembly/index.ts). */
export interface CoreExports {
  readonly memory: WasmMemory;
  abiVersion(): number;
  layoutBlockSize(): number;
  layoutStaticEnd(): number;
  layoutStateOffset(): number;
  layoutStateSize(): number;
  layoutScheduleOffset(): number;
  layoutScheduleSize(): number;
  layoutWindowOffset(): number;
  layoutWindowSize(): number;
  layoutDigestOffset(): number;
  layoutDigestSize(): number;
  layoutFlagsOffset(): number;
  layoutFlagsSize(): number;
  layoutEnd(): number;
  sha256Init(state: number): void;
  sha256Update(state: number, ptr: number, len: number): void;
  sha256Final(state: number, out: number): void;
  hashBlocks(ptr: number, len: number, out: number): number;
  zeroBlockFlags(ptr: number, len: number, out: number): number;
  firstDigestMismatch(aPtr: number, bPtr: number, count: number): number;
}

const EXPORTED_FUNCTIONS: readonly (keyof CoreExports)[] = [
  'abiVersion', 'layoutBlockSize', 'layoutStaticEnd', 'layoutStateOffset', 'layoutStateSize',
  'layoutScheduleOffset', 'layoutScheduleSize', 'layoutWindowOffset', 'layoutWindowSize',
  'layoutDigestOffset', 'layoutDigestSize', 'layoutFlagsOffset', 'layoutFlagsSize', 'layoutEnd',
  'sha256Init', 'sha256Update', 'sha256Final', 'hashBlocks', 'zeroBlockFlags', 'firstDigestMismatch',
];

/** Byte offsets and sizes of the module's fixed regions, as reported by the module. */
export interface CoreLayout {
  readonly stateOffset: number;
  /** Bytes of the state slot that carry a hasher's state (saved and restored by JS). */
  readonly stateSize: number;
  readonly scheduleOffset: number;
  readonly scheduleSize: number;
  readonly windowOffset: number;
  readonly windowSize: number;
  readonly digestOffset: number;
  readonly digestSize: number;
  readonly flagsOffset: number;
  readonly flagsSize: number;
}

/**
 * Checks that `exports` is a core module of this ABI and returns its layout.
 * @throws Error if an export is missing, the ABI version differs, or the reported regions are
 *   inconsistent (overlap, misaligned, or outside the memory).
 */
export function readLayout(exports: Record<string, unknown>): { core: CoreExports; layout: CoreLayout } {
  if (!(exports['memory'] instanceof wasmApi.Memory)) {
    throw new Error('FastPatch core module does not export its memory');
  }
  for (const name of EXPORTED_FUNCTIONS) {
    if (name !== 'memory' && typeof exports[name] !== 'function') {
      throw new Error(`FastPatch core module lacks the export ${name}()`);
    }
  }
  const core = exports as unknown as CoreExports;
  const version = core.abiVersion();
  if (version !== ABI_VERSION) {
    throw new Error(`FastPatch core module has ABI version ${version}, this wrapper needs ${ABI_VERSION}; rebuild with npm run build:wasm`);
  }
  if (core.layoutBlockSize() !== BLOCK_SIZE) {
    throw new Error(`FastPatch core module uses blocks of ${core.layoutBlockSize()} bytes, expected ${BLOCK_SIZE}`);
  }
  const layout: CoreLayout = {
    stateOffset: core.layoutStateOffset(),
    stateSize: core.layoutStateSize(),
    scheduleOffset: core.layoutScheduleOffset(),
    scheduleSize: core.layoutScheduleSize(),
    windowOffset: core.layoutWindowOffset(),
    windowSize: core.layoutWindowSize(),
    digestOffset: core.layoutDigestOffset(),
    digestSize: core.layoutDigestSize(),
    flagsOffset: core.layoutFlagsOffset(),
    flagsSize: core.layoutFlagsSize(),
  };
  const blocks = layout.windowSize / BLOCK_SIZE;
  const regions: [string, number, number][] = [
    ['state', layout.stateOffset, layout.stateSize],
    ['schedule', layout.scheduleOffset, layout.scheduleSize],
    ['window', layout.windowOffset, layout.windowSize],
    ['digest', layout.digestOffset, layout.digestSize],
    ['flags', layout.flagsOffset, layout.flagsSize],
  ];
  const problems: string[] = [];
  if (core.layoutStaticEnd() > layout.stateOffset) problems.push('static data overlaps the state slot');
  if (!Number.isInteger(blocks) || blocks < 1) problems.push('window is not a whole number of blocks');
  if (layout.windowOffset % 65536 !== 0) problems.push('window is not 64 KiB aligned');
  if (layout.digestSize < blocks * DIGEST_SIZE) problems.push('digest region too small for the window');
  if (layout.flagsSize < blocks) problems.push('flags region too small for the window');
  let end = 0;
  for (const [name, offset, size] of regions) {
    if (offset < end) problems.push(`${name} region overlaps the previous one`);
    end = offset + size;
  }
  if (end > core.layoutEnd() || core.layoutEnd() > core.memory.buffer.byteLength) {
    problems.push('regions extend past the module memory');
  }
  if (problems.length > 0) throw new Error(`FastPatch core module has a bad layout: ${problems.join('; ')}`);
  return { core, layout };
}
