/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

// `any`, not `unknown`: an interface has no implicit index signature, so only `Record<string, any>` admits
// `interface Schema { todos: Todo }`. It is only a constraint: nothing is typed `any` through it.
/**
 * What `Outbox.open<Schema>(…)` takes as its type argument: collection names mapped to the type of their
 * documents, e.g. `{ todos: Todo; notes: Note }`. Only the types: the outbox still checks every value at run
 * time (`collections.<name>.validate` checks more).
 */
export type OutboxSchema = Record<string, any>;

/** The schema of an outbox opened without one: any collection name, documents of any JSON. */
export type AnySchema = Record<string, JsonValue>;

/** The collection names of a schema (`string` for an outbox without one). */
export type CollectionName<S extends OutboxSchema> = Extract<keyof S, string>;

/**
 * What an op may give as a document of type `T`. A collection typed only as JSON (an outbox without a schema)
 * takes any value at compile time, as it always has: the outbox refuses what JSON cannot hold exactly.
 */
export type DocInput<T> = JsonValue extends T ? unknown : T;

/** A document as the outbox hands it back: `T`, or `null` where the server has none (deleted, or no body). */
export type DocOrNull<T> = JsonValue extends T ? JsonValue : T | null;

/**
 * A JSON merge patch (RFC 7396) for a document of type `T`: every member optional, objects merged member by
 * member, arrays and other values replaced. `null` removes a member, so it is allowed for optional members
 * only (a `null` on a required member would remove it, not set it to `null`).
 */
export type MergePatch<T> = JsonValue extends T
  ? unknown
  : T extends readonly unknown[] | string | number | boolean | null
    ? T
    : T extends object
      ? {
          [K in keyof T]?: {} extends Pick<T, K>
            ? MergePatch<Exclude<T[K], undefined | null>> | null
            : MergePatch<Exclude<T[K], null>>;
        }
      : T;

/** What `enqueue` does to the entity. */
export type OpKind = "put" | "patch" | "delete" | "custom";

/**
 * An op state: waiting, sent, waiting out a backoff, refused for good, in conflict, or of unknown
 * outcome (it may have been applied, and the server has forgotten its idempotency key).
 */
export type OpState = "pending" | "inflight" | "backoff" | "failed" | "conflict" | "unknown";

/** What every op of `enqueue` names: the entity, and optionally the version it was made against. */
export interface OpTarget<C extends string = string> {
  collection: C;
  key: string;
  /**
   * The version the change was made against, as the outbox reports versions (`version` in `list()`, events
   * and outcomes): an opaque string such as `3`, never an ETag's quoted form (`"3"` is `INVALID_OP`). By
   * default the version the user saw (unless the collection is `versioned: false`).
   */
  baseVersion?: string;
}

/** Replaces the document (of collection `C`, whose documents are `T`). */
export interface PutOpInput<C extends string = string, T = JsonValue> extends OpTarget<C> {
  op: "put";
  value: DocInput<T>;
}

/** Merges a JSON merge patch (RFC 7396) into the document. */
export interface PatchOpInput<C extends string = string, T = JsonValue> extends OpTarget<C> {
  op: "patch";
  value: MergePatch<T>;
}

/** Deletes the document. */
export interface DeleteOpInput<C extends string = string> extends OpTarget<C> {
  op: "delete";
}

/**
 * An op of the app's own vocabulary, applied to the view by `registerMutation(name, …)`: its value is not a
 * document of the collection, so it is not typed by it.
 */
export interface CustomOpInput<C extends string = string> extends OpTarget<C> {
  op: "custom";
  name: string;
  value: unknown;
}

/** An op on collection `C`, whose documents are `T`. */
export type OpInputFor<C extends string, T> =
  | PutOpInput<C, T>
  | PatchOpInput<C, T>
  | DeleteOpInput<C>
  | CustomOpInput<C>;

/** The argument of `enqueue`: an op on one of the schema's collections. */
export type OpInput<S extends OutboxSchema = AnySchema> = {
  [C in CollectionName<S>]: OpInputFor<C, S[C]>;
}[CollectionName<S>];

/**
 * Where an op ended up. `acked`: the server applied it (`doc` is its answer, `null` without a body or for a
 * delete). `failed`: refused for good. `conflict`: refused for a newer server version (dropped under
 * "server-wins", held under "manual" or a resolver; a "client-wins" rebase goes on and settles later).
 * `unknown`: it may have been applied (see `unknown()`), with the server's document as far as it is known.
 * `discarded`: removed by `discard` or a resolution.
 * `done`: no longer in the outbox when asked (acked or discarded earlier, e.g. before a reload).
 */
export type OpOutcome<T = JsonValue> =
  | { state: "acked"; version?: string | null; doc?: DocOrNull<T> }
  | { state: "failed"; error: OpErrorInfo }
  | { state: "conflict"; serverDoc?: DocOrNull<T>; serverVersion?: string | null }
  | { state: "unknown"; serverDoc?: DocOrNull<T>; serverVersion?: string | null }
  | { state: "discarded" }
  | { state: "done" };

/** What `enqueue` resolves with, once the op is durable. */
export interface EnqueueResult<T = JsonValue> {
  id: string;
  idempotencyKey: string;
  /**
   * The op's outcome, as `settled(id)` gives it: resolves once it is acked, failed, in conflict, unknown or
   * discarded (not only when acked); rejects with `SyncError` `CLOSED` if the outbox closes first. Awaiting
   * it is optional: an unobserved rejection is never reported as unhandled.
   */
  acked: Promise<OpOutcome<T>>;
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
  /** The version the op was made against (opaque, e.g. `3`; the `If-Match` header quotes it: `"3"`). */
  baseVersion?: string;
  /** Create only: the request must not overwrite an existing document (`If-None-Match: *`). */
  createOnly?: boolean;
  /** 1 for the first send; every send counts, a retry's too (it is never reset). */
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
 * other 4xx failed. `headers` are HTTP's too: an `ETag` is an entity-tag (`"3"` for version `3`).
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

/**
 * What every `Outbox.open` options object may hold. An option name not declared here is `INVALID_CONFIG`
 * at run time, naming it (with the likely one: "did you mean retry.maxAttempts?"), and a compile error in an
 * object literal.
 */
export interface OutboxBaseOptions<S extends OutboxSchema = AnySchema> {
  /** The outbox name; also the IndexedDB database name. */
  name: string;
  /** Most ops per batch (with `batch` or a custom transport). */
  maxBatchOps?: number;
  /** Most requests in flight at once. */
  maxInFlight?: number;
  retry?: RetryOptions;
  /**
   * "relaxed" (default): an op survives a crashed, closed or reloaded tab, but a crash of the whole
   * browser may lose the last moments of enqueues (Chromium reports a relaxed commit complete before
   * the OS has it). "strict": only once it is flushed to disk, which survives a browser crash and
   * power loss.
   */
  durability?: "relaxed" | "strict";
  /** Send automatically after enqueue, on reconnect and on focus. Default true. */
  autoDrain?: boolean;
  /** Open paused: nothing is sent (not even the queue restored from storage) until `resume()`. */
  paused?: boolean;
  /** Debounce between an enqueue and the send it triggers, ms. Default 5. */
  drainDelayMs?: number;
  /** Largest op value, in bytes of JSON. Default 1 MiB. */
  maxOpBytes?: number;
  /**
   * How long the server keeps idempotency keys, ms, until it says with `Idempotency-Retention`
   * (a shorter statement wins). An op that may have been applied is never resent under its key past
   * this time after its first send; it becomes `unknown`. Must not exceed the server's retention.
   * Default 86400000 (24 h).
   */
  idempotencyRetentionMs?: number;
  /** Per-collection settings, by collection name (only the schema's, in a typed outbox). */
  collections?: { [C in CollectionName<S>]?: CollectionOptions<S[C]> };
  /** Fetching server changes. Off unless `intervalMs` or `onFocus` is set, or `pull()` is called. */
  pull?: PullOptions;
  /** How much sync history is kept (see `history()`). */
  history?: HistoryOptions;
  /** The thresholds of `health()`. */
  health?: HealthOptions;
  /**
   * A status subscriber from the start, for as long as the outbox is open (like `subscribe`, which can
   * only come after `open` resolves). It hears the restore too: `state: "restoring"` as soon as the first
   * part of the stored ops has been read, before any is parsed, and again after each part (`progress`:
   * records read of stored, the number stored estimated until the last part; the counts: those of the
   * records read so far). Then the restored status once, just before `open`
   * resolves, and every change after it. So a sync indicator can show a long restore (a large queue) from
   * its start. An error it throws is reported (`reportError`), not thrown at the outbox.
   */
  onStatus?: (status: SyncStatus) => void;
}

/** The options of an outbox that speaks the protocol (docs/PROTOCOL.md) to `endpoint`. */
export interface EndpointOptions<S extends OutboxSchema = AnySchema> extends OutboxBaseOptions<S> {
  /**
   * The API base URL of a server speaking the protocol: absolute `http(s)://…`, or a path starting with `/`,
   * `./` or `../`, e.g. "/api".
   */
  endpoint: string;
  transport?: never;
  /** Maps an op to the request of an existing REST API. */
  route?: (op: OutgoingOp) => { method: string; url: string } | Promise<{ method: string; url: string }>;
  /** Returns headers (e.g. Authorization) at send time; `refresh` is true after a 401. Never stored. */
  auth?: (request: { refresh: boolean }) => Record<string, string> | Promise<Record<string, string>>;
  /** Send batches to `{endpoint}/push` instead of one request per op. Default false. */
  batch?: boolean;
  /** Per-request timeout, ms, covering the whole exchange (the body too). Default 15000. */
  timeoutMs?: number;
  /** fetch credentials mode. Default "same-origin". */
  credentials?: "same-origin" | "include" | "omit";
  /**
   * Sent as `Outbox-Client-Id` (1–255 visible ASCII characters); the server scopes idempotency keys by it.
   * Default: a UUID generated once per outbox and kept in its IndexedDB database, so it survives reloads;
   * the header is sent with every request either way. (One exception: a database from a release that sent
   * no id, holding ops that may have been applied under no id, sends none until those ops are settled, since
   * resending them under a new id could apply them twice.)
   */
  clientId?: string;
}

/** The options of an outbox that hands its ops to the app's own `transport`. */
export interface CustomTransportOptions<S extends OutboxSchema = AnySchema> extends OutboxBaseOptions<S> {
  /** Your own transport, instead of `endpoint`. */
  transport: (batch: OutgoingBatch) => Promise<TransportResult[]> | TransportResult[];
  endpoint?: never;
  // The options of the built-in fetch transport, which a custom transport does not use.
  route?: never;
  auth?: never;
  batch?: never;
  timeoutMs?: never;
  credentials?: never;
  clientId?: never;
}

/** The options of `Outbox.open`: `endpoint` or `transport` (exclusive). */
export type OutboxOptions<S extends OutboxSchema = AnySchema> = EndpointOptions<S> | CustomTransportOptions<S>;

/**
 * Decides a conflict held for it: the op's own value (`local`), the server's document (`server`, `null` when
 * it has none), and the op. `local` is what the op carries, so its type depends on `op.op`: the document of a
 * put, the merge patch of a patch, `null` for a delete, the value of a custom op.
 */
export type ConflictResolver<T = JsonValue> = (
  local: LocalChange<T>,
  server: DocOrNull<T>,
  op: OpSnapshot,
) => Resolution<T> | Promise<Resolution<T>>;

/** What an op of a collection of `T` carries: a document, a merge patch, `null` (a delete) or a custom value. */
export type LocalChange<T> = JsonValue extends T ? JsonValue : T | MergePatch<T> | JsonValue;

/**
 * A collection's validator: a function, or a Standard Schema (zod ≥ 3.24, valibot ≥ 1, arktype …).
 *
 * It is called synchronously at `enqueue` with the document the op would produce: a put's value, or for a
 * patch the current document of the view with the patch merged in; never for deletes or custom ops. A function
 * that throws or returns `false` refuses the enqueue with `INVALID_OP` (its message includes the thrown
 * error's); any other return accepts it. A Standard Schema refuses with `INVALID_OP` naming the first issue's
 * path and message. A validator that returns a Promise is `INVALID_CONFIG`: validation must be synchronous,
 * so that enqueues keep their order. What is stored is always the app's own value, never a schema's output.
 */
export type Validator<T = JsonValue> = ((value: T) => unknown) | StandardSchemaV1<DocInput<T>, unknown>;

/** Settings of one collection. */
export interface CollectionOptions<T = JsonValue> {
  /**
   * "server-wins" (default): drop the local op, keep the server's document, emit a `conflict` event.
   * "client-wins": rebase the op on the server's version and resend it (under the same idempotency key).
   * "manual": hold the op in `conflict` until `resolve(id, ...)`. Or a function that decides.
   */
  conflict?: "server-wins" | "client-wins" | "manual" | ConflictResolver<T>;
  /** Ops without `baseVersion` take the confirmed version, so conflicts are detected. Default true. */
  versioned?: boolean;
  /** Checks every document an op would produce, at enqueue (see {@link Validator}). */
  validate?: Validator<T>;
}

/** How a held conflict (or an op of unknown outcome) is settled. */
export type Resolution<T = JsonValue> = { use: "server" } | { use: "local" } | { use: "merged"; value: T };

/** Pulling server changes (`GET {endpoint}/pull`). */
export interface PullOptions {
  /**
   * Pull on this period, ms: at least 1000 (a shorter one is `INVALID_CONFIG`). Apps polling list
   * endpoints typically use 15000–30000.
   */
  intervalMs?: number;
  /** Pull when the page becomes visible again. */
  onFocus?: boolean;
  /** Most changes per page. Default 100. */
  limit?: number;
  /**
   * Your own source of changes instead of `{endpoint}/pull`. `filter.collections` names the only collections
   * wanted (`null`: every one), as `?collection=` does; a source that ignores it is still correct, only
   * wasteful (what was not asked for is dropped).
   */
  source?: (cursor: string | null, filter: PullFilter) => Promise<PullPage> | PullPage;
  /** Pull only these collections (a non-empty list); the server is asked to filter (`?collection=`). */
  collections?: string[];
}

/** The second argument of `PullOptions.source`. */
export interface PullFilter {
  /** Only these collections; `null`: every one. */
  collections: string[] | null;
}

/** One page of server changes. */
export interface PullPage {
  changes: Array<{
    collection: string;
    key: string;
    /** The document's version: opaque, e.g. `3` (not quoted); or give `etag`. */
    version?: string | number;
    /** The document's strong entity-tag, as HTTP quotes it (`"3"`), instead of `version`. */
    etag?: string;
    deleted?: boolean;
    doc?: JsonValue;
  }>;
  cursor: string | null;
  hasMore?: boolean;
}

/**
 * What `pull()` (or `resumePull()`) did; `skipped` says why nothing (more) was fetched: `"paused"` is the
 * outbox's `pause()`, `"pullPaused"` is `pausePull()` with no collection. `changes` counts the changes applied.
 */
export interface PullReport {
  changes: number;
  cursor?: string | null;
  skipped?: "offline" | "paused" | "blocked" | "busy" | "pullPaused";
}

/** A document of the optimistic view. */
export interface ViewItem<T = JsonValue> {
  key: string;
  value: T;
  /** The confirmed server version it builds on: opaque, e.g. `3` (not the ETag `"3"`). */
  version: string | null;
  /** Local changes not yet acknowledged. */
  pending: number;
}

/** A document the app loaded itself, for `ingest`. */
export interface IngestDoc<T = JsonValue> {
  key: string;
  /** Its version: a number, or an opaque string as the outbox reports versions (`3`, never `"3"`). */
  version: string | number;
  value?: T;
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

/**
 * An op as `pending()`, `failed()`, `conflicts()` and `unknown()` show it. Not typed by collection: the queue
 * may hold ops an earlier release of the app stored.
 */
export interface OpSnapshot {
  id: string;
  idempotencyKey: string;
  collection: string;
  key: string;
  /** Absent only on a quarantined record (see `raw`). */
  op: OpKind;
  name?: string;
  value?: JsonValue;
  /** The version the op was made against: opaque, e.g. `3` (not the ETag `"3"`). */
  baseVersion?: string;
  state: OpState;
  /** Every attempt to send the op, never reset (`maxAttempts` counts from the last `retry` on its own). */
  attempts: number;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms. */
  nextAttemptAt?: number;
  lastError?: OpErrorInfo;
  /** The server's current document, for an op in conflict or of unknown outcome. */
  serverDoc?: JsonValue;
  /** The server's current version (opaque, e.g. `3`), for an op in conflict or of unknown outcome. */
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
 * The one-word state a sync indicator shows. `restoring`: the stored queue is still being read at open
 * (only `options.onStatus` sees it; `open` resolves after it). `stalled`: storage is failing, so nothing is sent until a
 * commit succeeds again (`storageError` says why). `syncing`: an op is in flight or can be sent now;
 * `retrying`: none is, and ops wait for a backoff to end (`nextAttemptAt`). The state table is in the
 * package README ("Status").
 */
export type SyncState =
  | "restoring"
  | "idle"
  | "syncing"
  | "retrying"
  | "offline"
  | "paused"
  | "blocked"
  | "stalled"
  | "error";

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
  /**
   * The error of the op that met one most recently, among the ops still held (failed, in conflict, unknown,
   * backing off, or resent after it and not yet acked); `null` once none holds one.
   */
  lastError: OpErrorInfo | null;
  online: boolean;
  /** Set while storage fails to commit (state `stalled`). */
  storageError: { code: string; message: string } | null;
  /**
   * The running sync: `current` ops settled (acked, failed, in conflict, unknown, discarded) of `total`;
   * `null` when nothing is left to settle. `total - current` ops are still pending or in flight. While
   * `restoring`: `current` stored ops read of the `total` stored.
   */
  progress: { current: number; total: number } | null;
  /**
   * This context's part among the tabs (and workers) that opened the outbox: `leader` sends and pulls for
   * all of them; a `follower` enqueues and shows the leader's status; `uncoordinated` where Web Locks or
   * BroadcastChannel are missing: every context sends on its own (idempotency keeps each op's effect single).
   */
  role: "leader" | "follower" | "uncoordinated";
}

/** The events about one op of collection `C`, whose documents are `T`. */
export type CollectionEvent<C extends string, T> =
  | { type: "enqueued"; id: string; collection: C; key: string }
  | {
      type: "acked";
      id: string;
      collection: C;
      key: string;
      /** The new version (opaque, e.g. `3`), or `null` when the server sent none. */
      version: string | null;
      /** The server's document, or `null` when it sent none (or for a delete). */
      doc: DocOrNull<T>;
    }
  | { type: "failed"; id: string; collection: C; key: string; error: OpErrorInfo }
  | {
      type: "unknown";
      id: string;
      collection: C;
      key: string;
      error: OpErrorInfo;
      serverDoc: DocOrNull<T>;
      /** Opaque, e.g. `3`. */
      serverVersion: string | null;
    }
  | { type: "discarded"; id: string; collection: C; key: string };

/**
 * Structured events, discriminated by `type`. In a typed outbox, checking `collection` narrows `doc` and
 * `serverDoc` to that collection's document type.
 */
export type SyncEvent<S extends OutboxSchema = AnySchema> =
  | { [C in CollectionName<S>]: CollectionEvent<C, S[C]> }[CollectionName<S>]
  | { type: "sent"; batchId: number; ids: string[] }
  | { type: "retry_scheduled"; id: string; attempts: number; at: number; error: OpErrorInfo }
  | {
      type: "conflict";
      id: string;
      error: OpErrorInfo;
      /** The server's document (of the op's collection, which `conflicts()` names), or `null`. */
      serverDoc: DocOrNull<S[CollectionName<S>]>;
      /** Opaque, e.g. `3`. */
      serverVersion: string | null;
      /**
       * What the collection's strategy did: dropped the op, resent it rebased, or held it; with a resolver
       * function, what its answer did (`merged`: the merge is sent), told once it answered.
       */
      resolution: "server-wins" | "client-wins" | "held" | "merged";
    }
  | { type: "blocked"; until: number }
  | { type: "unblocked" }
  | { type: "drained" }
  | { type: "status_changed"; status: SyncStatus };

/** The name of an event type. */
export type SyncEventType = SyncEvent["type"];

/** The event of one type, e.g. `SyncEventOf<"failed">`. */
export type SyncEventOf<K extends SyncEventType, S extends OutboxSchema = AnySchema> = Extract<
  SyncEvent<S>,
  { type: K }
>;

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
  | "ALREADY_OPEN"
  | "SYNC_INCOMPLETE"
  | "INTERNAL";
