// The package's types. The runtime class is wasm-bindgen's (`wasm/outbox_sync.js`, completed by index.js);
// its generated declaration cannot be generic, so `Outbox` is declared here by hand, typed by an optional
// schema (collection name → document type), and the generated one is not re-exported. Every other type is
// the one src/types.d.ts puts into the generated file.
import type {
  AnySchema,
  CollectionName,
  DrainReport,
  EnqueueResult,
  Health,
  HistoryEntry,
  HistoryQuery,
  IngestDoc,
  JsonValue,
  OpInputFor,
  OpOutcome,
  OpSnapshot,
  OutboxOptions,
  OutboxSchema,
  PullReport,
  Resolution,
  SyncErrorCode,
  SyncEvent,
  SyncEventType,
  SyncStatus,
  ViewItem,
} from "./wasm/outbox_sync.js";

export { coreVersion, version } from "./wasm/outbox_sync.js";
export type {
  AnySchema,
  CollectionEvent,
  CollectionName,
  CollectionOptions,
  ConflictResolver,
  CustomOpInput,
  CustomTransportOptions,
  DeleteOpInput,
  DocInput,
  DocOrNull,
  DrainReport,
  EndpointOptions,
  EnqueueResult,
  Health,
  HealthAlert,
  HealthOptions,
  HistoryEntry,
  HistoryKind,
  HistoryOptions,
  HistoryOutcome,
  HistoryQuery,
  HistoryTrigger,
  IngestDoc,
  JsonValue,
  LocalChange,
  MergePatch,
  Op,
  OpErrorInfo,
  OpInput,
  OpInputFor,
  OpKind,
  OpOutcome,
  OpSnapshot,
  OpState,
  OpTarget,
  OutboxBaseOptions,
  OutboxOptions,
  OutboxSchema,
  OutgoingBatch,
  OutgoingOp,
  PatchOpInput,
  PullFilter,
  PullOptions,
  PullPage,
  PullReport,
  PutOpInput,
  Resolution,
  RetryOptions,
  StandardSchemaV1,
  SyncErrorCode,
  SyncEvent,
  SyncEventOf,
  SyncEventType,
  SyncState,
  SyncStatus,
  TransportResult,
  Validator,
  ViewItem,
} from "./wasm/outbox_sync.js";

/**
 * An offline-first outbox: a durable queue of changes delivered to the server exactly once.
 *
 * `S` maps collection names to document types (`Outbox.open<{ todos: Todo }>(…)`); it types `enqueue`, the
 * view, events and the collection options. Without it, any collection name is accepted and documents are
 * `JsonValue`.
 */
export declare class Outbox<S extends OutboxSchema = AnySchema> {
  private constructor();
  /**
   * Opens (or creates) the outbox called `options.name` and restores its queue. Loads the WebAssembly module
   * on first use. Rejects with `INVALID_CONFIG` naming the field for a malformed option, an unknown one
   * included.
   */
  static open<S extends OutboxSchema = AnySchema>(options: OutboxOptions<S>): Promise<Outbox<S>>;
  /**
   * Adds a change. The view (`get`, `list`, watchers) shows it before this returns; the promise
   * resolves with its id and idempotency key once it is durable in IndexedDB, and with `acked`, a promise of
   * its outcome. The collection's `validate` runs first (a refused document rejects with `INVALID_OP`, see
   * `Validator`).
   */
  enqueue<C extends CollectionName<S>>(op: OpInputFor<C, S[C]>): Promise<EnqueueResult<S[C]>>;
  /**
   * The outcome of the op `id` (from `enqueue`, or a snapshot after a reload): resolves once it is acked,
   * failed, in conflict, unknown or discarded (at once for an op already in `failed()`, `conflicts()` or
   * `unknown()`), and with `{ state: "done" }` for an id no longer in the outbox. Rejects with `SyncError`
   * `CLOSED` if the outbox closes first. Name the collection (`settled<"todos">(id)`) to type the documents.
   */
  settled<C extends CollectionName<S> = CollectionName<S>>(id: string): Promise<OpOutcome<S[C]>>;
  /**
   * The document as the user sees it: the server's last confirmed version with pending changes
   * applied. `undefined` when it does not exist. Synchronous, from memory.
   */
  get<C extends CollectionName<S>>(collection: C, key: string): S[C] | undefined;
  /** Every document of a collection as the user sees it, ordered by key. Synchronous, from memory. */
  list<C extends CollectionName<S>>(collection: C): ViewItem<S[C]>[];
  /**
   * Calls `callback(list)` now, synchronously, with the collection as it is, and again whenever a document of
   * the collection changes (enqueue, ack, rollback, conflict, pull). Returns a function that stops watching.
   */
  watch<C extends CollectionName<S>>(collection: C, callback: (items: ViewItem<S[C]>[]) => void): () => void;
  /**
   * Calls `callback(value)` now, synchronously, with the document as it is (`undefined` if it does not
   * exist), and again whenever it changes. Returns a function that stops watching.
   */
  watchDoc<C extends CollectionName<S>>(
    collection: C,
    key: string,
    callback: (value: S[C] | undefined) => void,
  ): () => void;
  /** Feeds documents the app loaded by its own means; newer versions replace what is known. */
  ingest<C extends CollectionName<S>>(collection: C, docs: IngestDoc<S[C]>[]): Promise<void>;
  /** Fetches server changes since the last pull and applies the newer ones. */
  pull(): Promise<PullReport>;
  /**
   * Holds back pulled changes of `collection` (they are not applied to the view) until `resumePull`; the
   * others keep arriving. With no argument, stops pulling altogether. Not stored: a reload resumes (and
   * catches up) everything.
   */
  pausePull(collection?: CollectionName<S>): void;
  /**
   * Lifts the pause of `collection` (with no argument: every pause), then pulls, catching the collection up
   * from where it was paused so that every held change arrives. Resolves like `pull()`; if a pull is already
   * under way (`skipped: "busy"`), that pull catches it up before it ends.
   */
  resumePull(collection?: CollectionName<S>): Promise<PullReport>;
  /** `"all"` after `pausePull()`, else the collections paused by name. */
  pullPaused(): string[] | "all";
  /**
   * Settles an op held in conflict (or of unknown outcome): keep the server's version, resend yours, or send
   * a merge. Name the collection (`resolve<"todos">(id, …)`) to type the merged document.
   */
  resolve<C extends CollectionName<S> = CollectionName<S>>(id: string, resolution: Resolution<S[C]>): Promise<void>;
  /**
   * Registers how a custom op changes the view: `apply(current, value)` returns the new document
   * (or `undefined` for no change). It must be pure: it runs again whenever the view is rebuilt.
   */
  registerMutation(
    name: string,
    apply: (current: JsonValue | undefined, value: JsonValue) => JsonValue | undefined,
  ): void;
  /** Sends everything sendable now; resolves when nothing is in flight, with what happened. */
  drain(): Promise<DrainReport>;
  /** The current sync status. */
  status(): SyncStatus;
  /**
   * The sync history, newest first: one entry per request (a single-op send, a push, a pull page) and per
   * `drain()` call, kept across reloads within `options.history` (1000 entries, 7 days by default). Filter by
   * `limit`, `since` (epoch ms), `kind` and `outcome`.
   */
  history(query?: HistoryQuery): Promise<HistoryEntry[]>;
  /** Calls `callback(entry)` for each new history entry as it is recorded. Returns a function that stops watching. */
  watchHistory(callback: (entry: HistoryEntry) => void): () => void;
  /**
   * How syncing goes, derived from the history kept in memory (synchronous and cheap): success rate and
   * durations over `options.health.windowMs`, the rate limit seen, and `alerts` (`healthy` when there are none).
   */
  health(): Health;
  /**
   * Calls `callback(status)` now, synchronously, with the current status, and on every status change.
   * Returns a function that unsubscribes.
   */
  subscribe(callback: (status: SyncStatus) => void): () => void;
  /**
   * Calls `callback(event)` for every event of this type, typed by it (`on("failed", (e) => e.error)`).
   * Returns a function that unsubscribes.
   */
  on<K extends SyncEventType>(type: K, callback: (event: Extract<SyncEvent<S>, { type: K }>) => void): () => void;
  /** Calls `callback(event)` for every event. Returns a function that unsubscribes. */
  on(type: "*", callback: (event: SyncEvent<S>) => void): () => void;
  /** Calls `callback(event)` for every event of this type (`"*"` for all). Returns a function that unsubscribes. */
  on(type: SyncEventType | "*", callback: (event: SyncEvent<S>) => void): () => void;
  /** Ops waiting to be sent or in flight, oldest first. */
  pending(): Promise<OpSnapshot[]>;
  /** Ops the server refused for good (or whose retries ran out). Each halts its entity's lane. */
  failed(): Promise<OpSnapshot[]>;
  /** Ops held in conflict with a newer server version. Each halts its entity's lane. */
  conflicts(): Promise<OpSnapshot[]>;
  /**
   * Ops whose outcome can no longer be known: they may have been applied, and the server has
   * forgotten their idempotency key, so resending could apply them twice. Each halts its entity's
   * lane until the app decides: `resolve` it against the server's current document (`serverDoc`),
   * `discard` it, or `retry` it knowing it may apply twice.
   */
  unknown(): Promise<OpSnapshot[]>;
  /**
   * Calls `callback(ops)` with the failed ops (as `failed()` lists them) once registered, as soon as they are
   * read (not synchronously), and again whenever the list changes. Returns a function that stops watching.
   */
  watchFailed(callback: (ops: OpSnapshot[]) => void): () => void;
  /**
   * Calls `callback(ops)` with the ops held in conflict (as `conflicts()` lists them) once registered, as soon
   * as they are read (not synchronously), and again whenever the list changes. Returns a function that stops
   * watching.
   */
  watchConflicts(callback: (ops: OpSnapshot[]) => void): () => void;
  /**
   * Sends a failed, conflicted or backing-off op again now. This is the user's explicit intent, so
   * it also lifts a wait the server asked for (`Retry-After`, a rate limit's reset); `drain()` and
   * automatic resends never do.
   */
  retry(id: string): Promise<void>;
  /**
   * Sends every failed, conflicted and backing-off op again now, lifting a server's requested wait
   * as `retry` does. Ops of unknown outcome are left alone (see `unknown()`).
   */
  retryAll(): Promise<void>;
  /** Removes an op for good (it will never be sent). Resolves once that is durable. */
  discard(id: string): Promise<void>;
  /** Stops sending. Changes are still accepted and stored. */
  pause(): void;
  /** Starts sending again. */
  resume(): void;
  /**
   * Stops the outbox and closes its database. Unsent ops stay stored for the next open. Pending `settled`
   * and `acked` promises reject with `CLOSED`; watchers stop.
   */
  close(): Promise<void>;
  /**
   * Releases this handle's WebAssembly object (wasm-bindgen's); the handle must not be used afterwards. It
   * does not close the outbox: call `close()` for that.
   */
  free(): void;
  /** The same as `free()` (for `using`); it does not close the outbox. */
  [Symbol.dispose](): void;
}

/** Loads the WebAssembly module (once). `Outbox.open` calls it for you. */
export function ready(): Promise<void>;

/** The error every outbox-sync call rejects or throws with. */
export declare class SyncError extends Error {
  constructor(code: SyncErrorCode, message: string, options?: { cause?: unknown });
  readonly name: "SyncError";
  /** A stable code to branch on. */
  readonly code: SyncErrorCode;
}
