// Exports of the delta module (build/delta-*.wasm): numbers-only ABI, no logic here.

export { deltaAbiVersion, deltaStaticEnd, deltaHeapStart } from './layout';
export { initDelta, anchorIndexAdd, anchorIndexHits } from './anchors';
export { blockIndexAdd, blockIndexMatch } from './blocks';
export { diffEncode } from './encode';
export { patchApply } from './patch';
export { x86Encode, x86Decode } from './x86';
