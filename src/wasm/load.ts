/**
 * Finding, compiling and instantiating build/<build>.wasm. Compilation is synchronous and done once
 * per build per thread (module-level cache; each worker thread has its own).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { wasmApi, type WasmImports, type WasmInstance, type WasmMemory, type WasmModule } from './webassembly.js';

/** Which compiled variant of the core to load: optimized (`release`) or with assertions (`debug`). */
export type CoreBuild = 'release' | 'debug';

/** The two modules: the hashing core (build/<build>.wasm) and the delta kernels (build/delta-<build>.wasm). */
export type ModuleKind = 'core' | 'delta';

const compiled = new Map<string, WasmModule>();

/**
 * Absolute path of a module's file. This file runs as dist/src/wasm/load.js, so the package root
 * is three levels up.
 */
export function coreWasmPath(build: CoreBuild, kind: ModuleKind = 'core'): string {
  const name = kind === 'core' ? build : `${kind}-${build}`;
  return fileURLToPath(new URL(`../../../build/${name}.wasm`, import.meta.url));
}

/**
 * The compiled module of `build`, compiled on first use (sync) and cached for this thread.
 * @throws TypeError if `build` is not 'release' or 'debug'; Error if the file is missing or invalid.
 */
export function compileCore(build: CoreBuild, kind: ModuleKind = 'core'): WasmModule {
  if (build !== 'release' && build !== 'debug') {
    throw new TypeError(`build must be 'release' or 'debug', got ${String(build)}`);
  }
  const path = coreWasmPath(build, kind);
  let module = compiled.get(path);
  if (module === undefined) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (cause) {
      throw new Error(`FastPatch core module not found at ${path}; run npm run build:wasm`, { cause });
    }
    module = new wasmApi.Module(bytes);
    compiled.set(path, module);
  }
  return module;
}

/**
 * A new instance of a compiled core. Supplies `env.abort` if the module imports it (the debug
 * build may, for failed assertions): it throws an Error with AssemblyScript's message, since an
 * abort is a bug in the core, never bad input.
 */
export function instantiateCore(module: WasmModule): WasmInstance {
  let memory: WasmMemory | undefined;
  const readString = (ptr: number): string => {
    if (memory === undefined || ptr === 0) return '';
    // AssemblyScript strings are UTF-16LE with their byte length stored just before them.
    const bytes = new DataView(memory.buffer).getUint32(ptr - 4, true);
    return Buffer.from(memory.buffer, ptr, bytes).toString('utf16le');
  };
  const env: Record<string, unknown> = {
    abort(message: number, file: number, line: number, column: number): never {
      throw new Error(`FastPatch core aborted: ${readString(message)} at ${readString(file)}:${line}:${column}`);
    },
  };
  const imports: WasmImports = {};
  for (const imp of wasmApi.Module.imports(module)) {
    if (imp.module !== 'env' || !(imp.name in env)) {
      throw new Error(`FastPatch core module imports ${imp.module}.${imp.name}, which this loader does not provide`);
    }
    imports['env'] = { [imp.name]: env[imp.name]!, ...imports['env'] };
  }
  const instance = new wasmApi.Instance(module, imports);
  const exported = instance.exports['memory'];
  if (exported instanceof wasmApi.Memory) memory = exported;
  return instance;
}
