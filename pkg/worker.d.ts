// Types of `outbox-sync/worker`: draining an outbox from a service worker.
import type { AnySchema, DrainReport, OutboxOptions, OutboxSchema, SyncStatus } from "./index.js";

export { SyncError } from "./index.js";

/** The default Background Sync tag. */
export declare const SYNC_TAG: "outbox-sync";

/** What `drainOutbox` did. */
export interface WorkerDrainResult {
  /** Whether this context led (and sent). `false`: a tab leads and sends; nothing was done here. */
  leader: boolean;
  /** The drain's report, when this context led. */
  report: DrainReport | null;
  /** The status after the drain (the leader's, as this context saw it). */
  status: SyncStatus;
}

/**
 * Opens the outbox, sends what it holds if this context wins the election, and closes it. Rejects with
 * `SyncError` code `SYNC_INCOMPLETE` when ops were left waiting, so a Background Sync event is fired again.
 */
export declare function drainOutbox<S extends OutboxSchema = AnySchema>(options: OutboxOptions<S>): Promise<WorkerDrainResult>;

/** Registers `sync` and `periodicsync` handlers for `tag` in this service worker. Returns a remover. */
export declare function handleSync<S extends OutboxSchema = AnySchema>(init: { options: OutboxOptions<S>; tag?: string }): () => void;

/** From a page: asks for a `sync` event when online. `'unsupported'` without Background Sync. */
export declare function requestSync(tag?: string): Promise<"registered" | "unsupported">;
