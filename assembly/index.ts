// The module's exports: numbers-only ABI (offsets, lengths, counts). No logic here.

export {
  abiVersion,
  layoutBlockSize,
  layoutStaticEnd,
  layoutStateOffset,
  layoutStateSize,
  layoutScheduleOffset,
  layoutScheduleSize,
  layoutWindowOffset,
  layoutWindowSize,
  layoutDigestOffset,
  layoutDigestSize,
  layoutFlagsOffset,
  layoutFlagsSize,
  layoutEnd,
} from './layout';
export { sha256Init, sha256Update, sha256Final, hashBlocks } from './sha256';
export { zeroBlockFlags } from './zero';
export { firstDigestMismatch } from './compare';
