// Memory of the delta module: the ABI shared with src/wasm/delta.ts.
//
// Unlike the hashing core, this module works on buffers whose size depends on the images (block
// digests, the source index, an operation's source and target data), so its memory grows. It still
// never allocates: JS lays out every buffer above HEAP_START, grows memory to fit, and passes
// pointers. The only fixed region is the gear table of the rolling hash.
//
//   0x00000  static data, at most STATIC_LIMIT bytes
//   0x10000  GEAR  256 × u32 gear values of the rolling hash (filled by initDelta)
//   0x10400  end of fixed regions; JS buffers start at HEAP_START

/** Version of this layout and of the exports' meaning; JS refuses a module with another one. */
export const DELTA_ABI_VERSION: i32 = 1;

export const STATIC_LIMIT: usize = 0x10000;
export const GEAR_OFFSET: usize = 0x10000;
export const HEAP_START: usize = 0x20000;

export function deltaAbiVersion(): i32 { return DELTA_ABI_VERSION; }
export function deltaStaticEnd(): usize { return __heap_base; }
export function deltaHeapStart(): usize { return HEAP_START; }
