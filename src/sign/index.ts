/** Keys and ed25519 signatures: the one place that wires @noble/ed25519. */
export * from './keys.js';
export * from './signer.js';
