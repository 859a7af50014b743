/** Payload format v1: byte layout shared by the generator and the applier. No I/O, no WASM. */
export * from './constants.js';
export * from './header.js';
export * from './manifest.js';
export * from './signatures.js';
