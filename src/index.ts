/**
 * FastPatch's everyday library API (`fastpatch`): keys, generating, inspecting, verifying and
 * applying payloads, the device's A/B update, slot changes on a disk, and the runtime choice a long
 * apply wants. The payload format and the GPT codec have their own entry points (`fastpatch/format`,
 * `fastpatch/gpt`). The CLI (src/cli.ts, src/commands/) uses only what these three export.
 */
export { FastPatchError, ERROR_CODES, EXIT, type ErrorCode } from './errors.js';
export { escapeText } from './text.js';
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
export { applyPayload, PayloadApplier, type ApplyOptions, type ApplyResult, type ApplyProgress, type ByteRange } from './apply/applier.js';
export { inspectPayload, type PayloadInfo } from './apply/inspect.js';
export { hashImage } from './apply/hash-image.js';
export { tuneRuntime, type RuntimeTuning } from './runtime/tune.js';
export { readPayloadChunks } from './io/input.js';
export { openPayload, isSeekable, type PayloadInput, type SeekablePayload } from './io/payload-source.js';
export { HTTP_DEFAULTS, type HttpChunksOptions, type HttpRetryInfo } from './io/http.js';
export { checkReleaseVersion } from './format/manifest.js';
export { sampleImage } from './demo/sample.js';
export type { CoreBuild } from './wasm/core.js';
export { readDiskGpt, changeSlots, findSlot, usableEntries, repairGpt, createFlatcarDisk, type SlotChangeOptions, type SlotChangeResult } from './disk/transaction.js';
export { slotForInstall, slotDevice, type SlotTarget, type SlotDevice, type SlotRange } from './disk/slot-target.js';
export { prioritize, setNext, markGood, grubNext, vbootNext, getSlotBits, isBootable, formatSlotBits, FLATCAR_USR_TYPE, CHROMEOS_KERNEL_TYPE, PARTITION_TYPES, type BootDecision, type GptEntry, type GptReadResult } from './gpt/index.js';
export { installSlot, type InstallOptions, type InstallResult } from './update/install.js';
export { updateDisk, type UpdateOptions, type UpdateResult, type NextBoot } from './update/update.js';
export { readUpdateConfig, readLayeredUpdateConfig, parseUpdateConfig, DEFAULT_UPDATE_CONFIG, IMAGE_UPDATE_CONFIG, UNKNOWN_RELEASE_POLICIES, REBOOT_STRATEGIES, type UpdateConfig, type UnknownReleasePolicy, type RebootStrategy } from './update/config.js';
export { statusPathFor, readStatus, recordSlotImage, probeStatusWritable, type SlotStatus, type SlotRecord, type StatusState } from './update/status.js';
export { RUNNING_HOW, findRunningSlot, type RunningSlot } from './update/running.js';
export { slotToMarkGood, rollbackSlots, twoSlots, nextBoot, slotName, type SlotPolicyOptions } from './update/slot-policy.js';
export { ReleaseRepository, checkChannelName, DEFAULT_CHANNELS, DEFAULT_KEEP_DELTAS, REPOSITORY_FILE, type RepositoryConfig } from './release/repository.js';
export { canonicalJson, signDocument, openDocument, readChannelRecord, readReleaseRecord, type ChannelRecord, type ChannelMove, type ReleaseRecord, type PayloadEntry, type SignedDocument } from './release/documents.js';
export { addRelease, type AddOptions, type AddResult } from './release/add.js';
export { promoteRelease, type PromoteOptions, type PromoteResult } from './release/promote.js';
export { listRepository, type RepositoryListing, type ListedRelease, type ListedChannel } from './release/list.js';
export { parseRequest, buildRequest, MAX_REQUEST_BYTES, type OmahaRequest, type OmahaApp, type OmahaEvent } from './omaha/request.js';
export { buildResponse, readUpdateCheck, type OmahaResponse, type OmahaAppResponse, type OmahaUpdate, type OmahaPackage } from './omaha/response.js';
export { COREOS_APP_ID, EVENT_TYPE, EVENT_RESULT, ERROR_CODE_ROLLBACK } from './omaha/codes.js';
export { startServer, type ServeOptions, type RunningServer } from './server/http-server.js';
export { answerRequest, packageFor, type ServiceOptions } from './server/omaha-service.js';
export { ReleaseCatalog } from './server/catalog.js';
export { RolloutStore, type MachineCheck, type GrantAnswer, type GroupStatus, type FailedMachine, type MachineRow, type EventRow, type MachineState, type ReportedEvent } from './server/rollout-store.js';
export { wavePlace, defaultPolicy, checkPolicy, type GroupPolicy } from './server/rollout-policy.js';
export { sendFile, type SendFileOptions } from './server/payload-files.js';
export { checkForUpdate, type CheckOptions, type CheckResult, type CheckOutcome } from './agent/check.js';
export { EtcdSemaphore, etcdClient, type EtcdOptions, type SemaphoreResult } from './fleet/etcd-semaphore.js';
export { semaphoreKey, decodeSemaphore, encodeSemaphore, freshSemaphore, lock, unlock, setMax, MAX_HOLDERS, MAX_ID_CHARS, type Semaphore, type HolderRecord, type HolderState, type LockChange } from './fleet/semaphore.js';
export { readMachineId, readBootId, MACHINE_ID_PATH, BOOT_ID_PATH } from './agent/identity.js';
export { runningRelease, type RunningRelease } from './agent/running-release.js';
export { startFleetLock, parseClientParams, FLEETLOCK_ERRORS, FLEETLOCK_MAX_BODY, type FleetLockOptions, type RunningFleetLock, type FleetLockErrorKind, type ClientParams } from './fleet/fleetlock.js';
export { runAgent, type AgentOptions, type AgentResult } from './agent/daemon.js';
export type { BootSummary, HealthSummary } from './agent/finish.js';
export { UPDATE_ENGINE_SCHEDULE, type CheckSchedule } from './agent/schedule.js';
export { parseRebootWindow, inWindow, nextWindowStart, describeWindow, type RebootWindow } from './fleet/window.js';
export { parseEndpoints } from './fleet/endpoints.js';
