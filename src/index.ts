/** FastPatch library API. The CLI (src/cli.ts) is a thin layer over exactly these exports. */
export { FastPatchError, ERROR_CODES, EXIT, type ErrorCode } from './errors.js';
export { escapeText } from './text.js';
export { createTempBeside, commitTemp, discardTemp, writeFileAtomically, readSmallFile, type TempFile, type SmallFile } from './io/safe-files.js';
export * as format from './format/index.js';
export {
  generateKey,
  parseKey,
  formatPrivateKey,
  formatPublicKey,
  publicKeyOf,
  keyIdOf,
  hex,
  type PrivateKey,
  type PublicKey,
} from './sign/keys.js';
export { loadKeyFile, loadPrivateKeyFile, loadPublicKeyFile, checkPrivateKeyFile, writeKeyPair, MAX_KEY_FILE_SIZE } from './sign/files.js';
export { DEFAULT_LEVELS, MAX_LEVELS, codecOf, generateFullPayload, type Codec, type GenerateOptions, type GenerateResult } from './generate/generator.js';
export { generateDeltaPayload, DEFAULT_DIFF_QUALITY, type DeltaOptions, type DeltaResult, type DeltaProgress } from './generate/delta.js';
export { applyPayload, PayloadApplier, PIPELINE_DEPTH, type ApplyOptions, type ApplyResult, type ApplyProgress } from './apply/applier.js';
export { inspectPayload, type PayloadInfo } from './apply/inspect.js';
export { tuneRuntime, type RuntimeTuning } from './runtime/tune.js';
export { PayloadReader } from './apply/reader.js';
export { readPayloadChunks, fileChunks } from './io/input.js';
export { openPayload, isSeekable, type PayloadInput, type SeekablePayload } from './io/payload-source.js';
export { httpChunks, HTTP_DEFAULTS, type HttpChunksOptions, type HttpRetryInfo } from './io/http.js';
export { hashImage } from './apply/hash-image.js';
export { lockDisk, withDiskLock, type DiskLock } from './disk/lock.js';
export { openDisk, directSectorReader, type Disk } from './disk/disk.js';
export { checkReleaseVersion } from './format/manifest.js';
export { runDemo, type DemoResult } from './demo/run.js';
export { sampleImage } from './demo/sample.js';
export { WasmCore, type CoreBuild } from './wasm/core.js';
export { BlockListHasher, blockListHash } from './wasm/block-list.js';
export { readDiskGpt, changeSlots, findSlot, usableEntries, repairGpt, createFlatcarDisk, type SlotChangeOptions, type SlotChangeResult } from './disk/transaction.js';
export { readGpt, writeGptPlan, isUsed, type GptEntry, type GptReadResult, type GptTable } from './gpt/table.js';
export { prioritize, setNext, markGood } from './gpt/prioritize.js';
export { grubNext, grubBoot, vbootNext, type BootDecision } from './gpt/boot-model.js';
export { getSlotBits, setSlotBits, isBootable, formatSlotBits, FLATCAR_USR_TYPE, CHROMEOS_KERNEL_TYPE } from './gpt/attributes.js';
export { PARTITION_TYPES } from './gpt/guid.js';
export { installSlot, type InstallOptions, type InstallResult } from './update/install.js';
export { updateDisk, type UpdateOptions, type UpdateResult, type NextBoot } from './update/update.js';
export { readUpdateConfig, parseUpdateConfig, DEFAULT_UPDATE_CONFIG, UNKNOWN_RELEASE_POLICIES, type UpdateConfig, type UnknownReleasePolicy } from './update/config.js';
export { statusPathFor, readStatus, recordSlotImage, probeStatusWritable, type SlotStatus, type SlotRecord, type StatusState } from './update/status.js';
export { RUNNING_HOW, findRunningSlot, type RunningSlot } from './update/running.js';
export { slotForInstall, slotDevice, type SlotTarget, type SlotDevice, type SlotRange } from './disk/slot-target.js';
export type { ByteRange } from './apply/applier.js';
