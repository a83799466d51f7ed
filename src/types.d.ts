/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What `enqueue` does to the entity. */
export type OpKind = "put" | "patch" | "delete" | "custom";

/**
 * An op state: waiting, sent, waiting out a backoff, refused for good, in conflict, or of unknown
 * outcome (it may have been applied, and the server has forgotten its idempotency key).
 */
export type OpState = "pending" | "inflight" | "backoff" | "failed" | "conflict" | "unknown";

/** The argument of `enqueue`. */
export type OpInput =
  | { collection: string; key: string; op: "put" | "patch"; value: unknown; baseVersion?: string }
  | { collection: string; key: string; op: "delete"; baseVersion?: string }
  | { collection: string; key: string; op: "custom"; name: string; value: unknown; baseVersion?: string };

/** What `enqueue` resolves with, once the op is durable. */
export interface EnqueueResult {
  id: string;
  idempotencyKey: string;
}

/** An op as the app's custom transport and `route` function receive it. */
export interface OutgoingOp {
  id: string;
  idempotencyKey: string;
  collection: string;
  key: string;
  op: OpKind;
  /** Present for custom ops. */
  name?: string;
  /** Absent for deletes. */
  value?: JsonValue;
  baseVersion?: string;
  /** Create only: the request must not overwrite an existing document (`If-None-Match: *`). */
  createOnly?: boolean;
  /** 1 for the first send. */
  attempt: number;
}

/** A batch handed to a custom transport. */
export interface OutgoingBatch {
  id: number;
  ops: OutgoingOp[];
}

/**
 * One result a custom transport resolves with, per op, in order (or matched by `id`). `status` is an
 * HTTP status and is classified like one: 2xx ack, 409/412 conflict, 429 rate limited, 5xx retried,
 * other 4xx failed.
 */
export interface TransportResult {
  id?: string;
  status: number;
  headers?: Record<string, string>;
  body?: JsonValue;
}

/** The retry policy for transient failures: exponential backoff with full jitter. */
export interface RetryOptions {
  /** First backoff ceiling, ms. */
  baseMs?: number;
  /** Largest backoff ceiling, ms. */
  capMs?: number;
  /** Give up (fail the op) after this many attempts. Default: never. */
  maxAttempts?: number;
  /** Give up (fail the op) this long after it was enqueued or last retried. Default: never. */
  maxAgeMs?: number;
  /** The shortest wait after any answer that asks to wait, ms. Default 100. */
  floorMs?: number;
  /** The longest wait a server's `Retry-After` or rate-limit reset can impose, ms. Default 3600000. */
  maxServerWaitMs?: number;
}

/** The options of `Outbox.open`. Give `endpoint` or `transport`. */
export interface OutboxOptions {
  /** The outbox name; also the IndexedDB database name. */
  name: string;
  /** The API base URL of a server speaking docs/PROTOCOL.md, e.g. "/api". */
  endpoint?: string;
  /** Your own transport, instead of `endpoint`. */
  transport?: (batch: OutgoingBatch) => Promise<TransportResult[]> | TransportResult[];
  /** Maps an op to the request of an existing REST API. */
  route?: (op: OutgoingOp) => { method: string; url: string } | Promise<{ method: string; url: string }>;
  /** Returns headers (e.g. Authorization) at send time; `refresh` is true after a 401. Never stored. */
  auth?: (request: { refresh: boolean }) => Record<string, string> | Promise<Record<string, string>>;
  /** Send batches to `{endpoint}/push` instead of one request per op. Default false. */
  batch?: boolean;
  /** Most ops per batch (with `batch` or a custom transport). */
  maxBatchOps?: number;
  /** Most requests in flight at once. */
  maxInFlight?: number;
  retry?: RetryOptions;
  /**
   * "relaxed" (default): an op is durable once the browser has handed it to the OS, which survives a
   * crashed or reloaded tab. "strict": only once it is flushed to disk, which survives power loss.
   */
  durability?: "relaxed" | "strict";
  /** Send automatically after enqueue, on reconnect and on focus. Default true. */
  autoDrain?: boolean;
  /** Open paused: nothing is sent (not even the queue restored from storage) until `resume()`. */
  paused?: boolean;
  /** Debounce between an enqueue and the send it triggers, ms. Default 5. */
  drainDelayMs?: number;
  /** Per-request timeout, ms. Default 15000. */
  timeoutMs?: number;
  /** fetch credentials mode. Default "same-origin". */
  credentials?: "same-origin" | "include" | "omit";
  /** Sent as `Outbox-Client-Id`; scopes idempotency keys on the server. */
  clientId?: string;
  /** Largest op value, in bytes of JSON. Default 1 MiB. */
  maxOpBytes?: number;
  /**
   * How long the server keeps idempotency keys, ms, until it says with `Idempotency-Retention`
   * (a shorter statement wins). An op that may have been applied is never resent under its key past
   * this time after its first send; it becomes `unknown`. Must not exceed the server's retention.
   * Default 86400000 (24 h).
   */
  idempotencyRetentionMs?: number;
  /** Per-collection settings. */
  collections?: Record<string, CollectionOptions>;
  /** Fetching server changes. Off unless `intervalMs` or `onFocus` is set, or `pull()` is called. */
  pull?: PullOptions;
}

/** Decides a conflict: the local change, the server's document, and the op. */
export type ConflictResolver = (
  local: JsonValue,
  server: JsonValue,
  op: OpSnapshot,
) => Resolution | Promise<Resolution>;

/** Settings of one collection. */
export interface CollectionOptions {
  /**
   * "server-wins" (default): drop the local op, keep the server's document, emit a `conflict` event.
   * "client-wins": rebase the op on the server's version and resend it (under the same idempotency key).
   * "manual": hold the op in `conflict` until `resolve(id, ...)`. Or a function that decides.
   */
  conflict?: "server-wins" | "client-wins" | "manual" | ConflictResolver;
  /** Ops without `baseVersion` take the confirmed version, so conflicts are detected. Default true. */
  versioned?: boolean;
}

/** How a held conflict is settled. */
export type Resolution = { use: "server" } | { use: "local" } | { use: "merged"; value: JsonValue };

/** Pulling server changes (`GET {endpoint}/pull`). */
export interface PullOptions {
  /** Pull on this period, ms (apps polling list endpoints typically use 15000–30000). */
  intervalMs?: number;
  /** Pull when the page becomes visible again. */
  onFocus?: boolean;
  /** Most changes per page. Default 100. */
  limit?: number;
  /** Your own source of changes instead of `{endpoint}/pull`. */
  source?: (cursor: string | null) => Promise<PullPage> | PullPage;
}

/** One page of server changes. */
export interface PullPage {
  changes: Array<{
    collection: string;
    key: string;
    version?: string | number;
    etag?: string;
    deleted?: boolean;
    doc?: JsonValue;
  }>;
  cursor: string | null;
  hasMore?: boolean;
}

/** What `pull()` did; `skipped` says why nothing was fetched. */
export interface PullReport {
  changes: number;
  cursor?: string | null;
  skipped?: "offline" | "paused" | "blocked" | "busy";
}

/** A document of the optimistic view. */
export interface ViewItem {
  key: string;
  value: JsonValue;
  /** The confirmed server version it builds on. */
  version: string | null;
  /** Local changes not yet acknowledged. */
  pending: number;
}

/** A document the app loaded itself, for `ingest`. */
export interface IngestDoc {
  key: string;
  version: string | number;
  value?: JsonValue;
  deleted?: boolean;
}

/** What `drain` did. */
export interface DrainReport {
  acked: number;
  retried: number;
  failed: number;
  conflicts: number;
  /** Ops still pending or in flight. */
  remaining: number;
}

/** Why an op last failed. */
export interface OpErrorInfo {
  /** The problem `type` the server sent, or a short name such as "network". */
  code: string;
  message: string;
  /** The HTTP status, when there was a response. */
  status?: number | null;
  class?: "ack" | "transient" | "rate_limited" | "conflict" | "auth" | "permanent";
}

/** An op, as the outbox shows it: the same as {@link OpSnapshot}. */
export type Op = OpSnapshot;

/** An op as `pending()`, `failed()` and `conflicts()` show it. */
export interface OpSnapshot {
  id: string;
  idempotencyKey: string;
  collection: string;
  key: string;
  /** Absent only on a quarantined record (see `raw`). */
  op: OpKind;
  name?: string;
  value?: JsonValue;
  baseVersion?: string;
  state: OpState;
  attempts: number;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms. */
  nextAttemptAt?: number;
  lastError?: OpErrorInfo;
  /** The server's current document, for an op in conflict. */
  serverDoc?: JsonValue;
  /** The server's current version, for an op in conflict. */
  serverVersion?: string;
  /** Sent with `If-None-Match: *` (a create that never overwrites). */
  createOnly?: boolean;
  /**
   * An earlier attempt may have been applied (its answer was lost). A retry keeps the idempotency key,
   * so it cannot apply twice; a `failed` op with this set may in fact be on the server.
   */
  maybeApplied: boolean;
  /**
   * Only on a stored record the outbox could not read (`lastError.code` is `"CORRUPT_RECORD"`): its stored
   * text, to inspect or salvage. Such an entry has `op` absent, and `collection`, `key`, `idempotencyKey`
   * and `createdAt` only as far as the record still says them (else `""` and `0`). `discard(id)` removes it.
   */
  raw?: string;
}

/**
 * The one-word state a sync indicator shows. `stalled`: storage is failing, so nothing is sent until a
 * commit succeeds again (`storageError` says why).
 */
export type SyncState = "idle" | "syncing" | "offline" | "paused" | "blocked" | "stalled" | "error";

/** The status view-model. Times are epoch ms. */
export interface SyncStatus {
  state: SyncState;
  pending: number;
  inFlight: number;
  failed: number;
  conflicts: number;
  /** Ops of unknown outcome (see `unknown()`). */
  unknown: number;
  nextAttemptAt: number | null;
  blockedUntil: number | null;
  lastSyncedAt: number | null;
  lastError: OpErrorInfo | null;
  online: boolean;
  /** Set while storage fails to commit (state `stalled`). */
  storageError: { code: string; message: string } | null;
}

/** Structured events, discriminated by `type`. */
export type SyncEvent =
  | { type: "enqueued"; id: string; collection: string; key: string }
  | { type: "sent"; batchId: number; ids: string[] }
  | { type: "acked"; id: string; collection: string; key: string; version: string | null; doc: JsonValue }
  | { type: "retry_scheduled"; id: string; attempts: number; at: number; error: OpErrorInfo }
  | { type: "failed"; id: string; collection: string; key: string; error: OpErrorInfo }
  | {
      type: "conflict";
      id: string;
      error: OpErrorInfo;
      serverDoc: JsonValue;
      serverVersion: string | null;
      /** What the collection's strategy did: dropped the op, resent it rebased, or held it. */
      resolution: "server-wins" | "client-wins" | "held";
    }
  | {
      type: "unknown";
      id: string;
      collection: string;
      key: string;
      error: OpErrorInfo;
      serverDoc: JsonValue;
      serverVersion: string | null;
    }
  | { type: "discarded"; id: string; collection: string; key: string }
  | { type: "blocked"; until: number }
  | { type: "unblocked" }
  | { type: "drained" }
  | { type: "status_changed"; status: SyncStatus };

/** The name of an event type. */
export type SyncEventType = SyncEvent["type"];

/** The stable codes of `SyncError`. */
export type SyncErrorCode =
  | "INVALID_OP"
  | "INVALID_CONFIG"
  | "QUOTA_EXCEEDED"
  | "DB_UPGRADE_BLOCKED"
  | "DB_CLOSED"
  | "STORAGE_FAILED"
  | "UNKNOWN_OP"
  | "OP_IN_FLIGHT"
  | "WRONG_STATE"
  | "CORRUPT_RECORD"
  | "CLOSED"
  | "PULL_FAILED"
  | "REENTRANT"
  | "INTERNAL";
