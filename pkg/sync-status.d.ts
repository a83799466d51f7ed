import type { Outbox, SyncStatus } from "./index.js";

/** What the indicator shows, also reflected as its `state` attribute (for `sync-status[state="failed"]`). */
export type SyncStatusDisplayState =
  | "synced"
  | "syncing"
  | "retrying"
  | "blocked"
  | "offline"
  | "paused"
  | "failed"
  | "conflict"
  | "unknown"
  | "stalled"
  | "error";

/** The display state for a status. */
export declare function syncStatusState(status: SyncStatus): SyncStatusDisplayState;

/** The indicator's text for a status, e.g. "Synced", "Syncing 3", "Retrying at 10:42:05 · 1 failed". */
export declare function describeSyncStatus(status: SyncStatus, formatTime?: (epochMs: number) => string): string;

/** Detail of the `sync-status-action` event, fired after a Retry, Discard or Retry all succeeded. */
export interface SyncStatusActionDetail {
  action: "retry" | "discard" | "retry-all";
  /** The op id; absent for "retry-all". */
  id?: string;
}

/**
 * `<sync-status>`: shows an outbox's state with `aria-live`, and lists failed, conflicted and unknown ops with
 * Retry, Discard and Retry all (in a popover, or inline with the `inline` attribute).
 *
 * Style it with CSS custom properties (`--sync-status-synced-color`, `--sync-status-syncing-color`,
 * `--sync-status-offline-color`, `--sync-status-blocked-color`, `--sync-status-error-color`,
 * `--sync-status-background`, `--sync-status-font`, `--sync-status-panel-background` …) and `::part(...)`:
 * `indicator`, `dot`, `label`, `details-button`, `panel`, `heading`, `list`, `item`, `item-failed`,
 * `item-conflict`, `item-title`, `item-error`, `item-actions`, `retry`, `discard`, `retry-all`, `empty`,
 * `footer`, `message`.
 */
export declare class SyncStatusElement extends HTMLElement {
  /**
   * The outbox to show, of any schema (it reads only the status and the op lists). Setting it subscribes
   * (while connected); `null` detaches.
   */
  outbox: Outbox<any> | null;
  /** The last status shown, or `null` before an outbox is attached. */
  readonly status: SyncStatus | null;
  /** Show the failed and conflicted ops inline instead of in a popover. */
  inline: boolean;
  addEventListener<K extends keyof SyncStatusElementEventMap>(
    type: K,
    listener: (this: SyncStatusElement, event: SyncStatusElementEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

export interface SyncStatusElementEventMap extends HTMLElementEventMap {
  "sync-status-action": CustomEvent<SyncStatusActionDetail>;
}

declare global {
  interface HTMLElementTagNameMap {
    "sync-status": SyncStatusElement;
  }
}
