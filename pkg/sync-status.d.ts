import type { OpSnapshot, Outbox, SyncStatus } from "./index.js";

/** What the indicator shows, also reflected as its `state` attribute (for `sync-status[state="failed"]`). */
export type SyncStatusDisplayState =
  | "restoring"
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

/**
 * A label: a string with `{name}` placeholders (`"Syncing {current} of {total}"`), or a function of the same
 * values, for languages whose plurals need more than the One/Other pair.
 */
export type SyncLabel = string | ((values: Record<string, unknown>) => string);

/** Every word `<sync-status>` shows. The English defaults are {@link SYNC_STATUS_LABELS}. */
export interface SyncStatusLabels {
  /** Before an outbox is attached. */
  notConnected: SyncLabel;
  /** `{current}`, `{total}`: stored ops read of stored, while the outbox restores its queue at open. */
  restoring: SyncLabel;
  synced: SyncLabel;
  /** `{count}`: ops queued or in flight. */
  syncing: SyncLabel;
  /** `{current}`, `{total}`: the drain's progress, when the runtime reports it. */
  syncingProgress: SyncLabel;
  /** `{time}`: the next attempt. */
  retrying: SyncLabel;
  /** Retrying, the time not known. */
  retryingSoon: SyncLabel;
  /** `{time}`: the end of the server's `Retry-After`. */
  blocked: SyncLabel;
  offline: SyncLabel;
  paused: SyncLabel;
  /** `{count}`, after paused, offline, blocked, retrying and stalled. */
  pending: SyncLabel;
  error: SyncLabel;
  /** `{message}` */
  errorWithMessage: SyncLabel;
  /** `{message}`: the storage error. */
  stalled: SyncLabel;
  /** The message of `stalled` when the storage error has none. */
  storageFailing: SyncLabel;
  /** `{count}` */
  failedCount: SyncLabel;
  conflictsOne: SyncLabel;
  conflictsOther: SyncLabel;
  unknownCount: SyncLabel;
  /** Between the parts of the indicator's text. */
  separator: SyncLabel;
  reviewOne: SyncLabel;
  /** `{count}` */
  reviewOther: SyncLabel;
  heading: SyncLabel;
  /** The panel's text when nothing needs attention. */
  empty: SyncLabel;
  /** `{verb}`, `{collection}`, `{key}`: an op's title when `describe` gives none. */
  opTitle: SyncLabel;
  noteConflict: SyncLabel;
  noteUnknown: SyncLabel;
  /** Under a conflict that has no error message. */
  conflictHint: SyncLabel;
  retry: SyncLabel;
  discard: SyncLabel;
  retryAll: SyncLabel;
  keepMine: SyncLabel;
  keepServer: SyncLabel;
  useMerged: SyncLabel;
  /** `{action}`, `{title}`: the accessible name of an op's button. */
  actionFor: SyncLabel;
  /** The indicator's tooltip when this tab sends for every open tab (`status().role` is `leader`). */
  roleLeader: SyncLabel;
  /** … when another tab sends for this one (`follower`). */
  roleFollower: SyncLabel;
  /** … where tabs cannot coordinate (`uncoordinated`): each sends its own changes. */
  roleUncoordinated: SyncLabel;
}

/** The English labels. */
export declare const SYNC_STATUS_LABELS: Readonly<SyncStatusLabels>;

/** Fills a label's `{name}` placeholders (or calls it, when it is a function). */
export declare function formatLabel(label: SyncLabel, values?: Record<string, unknown>): string;

/** The display state for a status. */
export declare function syncStatusState(status: SyncStatus): SyncStatusDisplayState;

/**
 * The indicator's text for a status, e.g. "Synced", "Syncing 40 of 200", "Retrying at 10:42:05 · 1 failed".
 * Missing `labels` keys take the English defaults.
 */
export declare function describeSyncStatus(
  status: SyncStatus,
  formatTime?: (epochMs: number) => string,
  labels?: Partial<SyncStatusLabels>,
): string;

/** Detail of the `sync-status-action` event, fired after an action succeeded. */
export interface SyncStatusActionDetail {
  /** `keep-mine`, `keep-server`, `use-merged`: a conflict resolved with `local`, `server` or the app's merge. */
  action: "retry" | "discard" | "retry-all" | "keep-mine" | "keep-server" | "use-merged";
  /** The op id; absent for "retry-all". */
  id?: string;
}

/**
 * `<sync-status>`: shows an outbox's state with `aria-live`, and lists failed, conflicted and unknown ops (in a
 * popover, or inline with the `inline` attribute): a failed op with Retry and Discard, a conflict with Keep
 * mine, Keep the server's, Use merged (when `merge` gives a value) and Discard, plus Retry all.
 *
 * Style it with CSS custom properties (`--sync-status-synced-color`, `--sync-status-syncing-color`,
 * `--sync-status-offline-color`, `--sync-status-blocked-color`, `--sync-status-error-color`,
 * `--sync-status-background`, `--sync-status-font`, `--sync-status-panel-background` …) and `::part(...)`:
 * `indicator`, `dot`, `label`, `details-button`, `panel`, `heading`, `list`, `item`, `item-failed`,
 * `item-conflict`, `item-unknown`, `item-title`, `item-error`, `item-actions`, `retry`, `discard`, `keep-mine`,
 * `keep-server`, `use-merged`, `retry-all`, `empty`, `footer`, `message`.
 */
export declare class SyncStatusElement extends HTMLElement {
  /**
   * The outbox to show, of any schema (it reads only the status and the op lists). Setting it subscribes
   * (while connected); `null` detaches.
   */
  outbox: Outbox<any> | null;
  /** The last status shown, or `null` before an outbox is attached (or a status given). */
  get status(): SyncStatus | null;
  /**
   * Shows a status without an outbox: what `Outbox.open`'s `onStatus` hears before `open` resolves (the
   * restore of a large queue), e.g. `onStatus: (s) => (indicator.status = s)`. Once `outbox` is set, the
   * outbox's own status replaces it.
   */
  set status(status: SyncStatus);
  /** Show the failed and conflicted ops inline instead of in a popover. */
  inline: boolean;
  /** Every label in use. Setting a partial object merges it over the English defaults. */
  get labels(): SyncStatusLabels;
  set labels(labels: Partial<SyncStatusLabels> | null);
  /** An op's title in the list (instead of "put notes/n1"); an empty or non-string answer keeps the default. */
  describe: ((op: OpSnapshot) => string | undefined) | null;
  /** The app's merge of a conflict: "Use merged" is offered whenever it returns a value (not `undefined`). */
  merge: ((op: OpSnapshot) => unknown) | null;
  /** The times in "Retrying at …" and "Blocked until …" (default: `toLocaleTimeString()`). */
  formatTime: (epochMs: number) => string;
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
