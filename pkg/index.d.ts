export { Outbox, coreVersion, version } from "./wasm/outbox_sync.js";
export type {
  CollectionOptions,
  ConflictResolver,
  DrainReport,
  EnqueueResult,
  IngestDoc,
  JsonValue,
  Op,
  OpErrorInfo,
  OpInput,
  OpKind,
  OpSnapshot,
  OpState,
  OutboxOptions,
  OutgoingBatch,
  OutgoingOp,
  PullOptions,
  PullPage,
  PullReport,
  Resolution,
  RetryOptions,
  SyncErrorCode,
  SyncEvent,
  SyncEventType,
  SyncState,
  SyncStatus,
  TransportResult,
  ViewItem,
} from "./wasm/outbox_sync.js";
import type { SyncErrorCode } from "./wasm/outbox_sync.js";

/** Loads the WebAssembly module (once). `Outbox.open` calls it for you. */
export function ready(): Promise<void>;

/** The error every outbox-sync call rejects or throws with. */
export declare class SyncError extends Error {
  constructor(code: SyncErrorCode, message: string, options?: { cause?: unknown });
  readonly name: "SyncError";
  /** A stable code to branch on. */
  readonly code: SyncErrorCode;
}
