/**
 * The few WebAssembly JS-API types and constructors this package uses. The project compiles with
 * lib ES2022 and @types/node 20, neither of which declares the global `WebAssembly`; declaring it
 * globally here would clash with lib "dom" if anyone adds it, so the types stay module-local.
 */

/** A compiled module (opaque). */
export interface WasmModule {
  readonly __wasmModule?: never;
}

/** An import or export descriptor, as listed by WebAssembly.Module.imports(). */
export interface WasmImportDescriptor {
  readonly module: string;
  readonly name: string;
  readonly kind: string;
}

/** A linear memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  /** Adds `pages` 64 KiB pages; returns the previous size in pages. */
  grow(pages: number): number;
}

/** An instantiated module. */
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

/** Import object: module name -> field name -> value. */
export type WasmImports = Record<string, Record<string, unknown>>;

interface WasmApi {
  Module: { new (bytes: Uint8Array): WasmModule; imports(module: WasmModule): WasmImportDescriptor[] };
  Instance: new (module: WasmModule, imports?: WasmImports) => WasmInstance;
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
}

/** The runtime's global WebAssembly object (present in every Node version this package supports). */
export const wasmApi: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
