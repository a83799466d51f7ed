import type { Outbox } from "./index.js";
import type { SyncLabel } from "./sync-status.js";

/**
 * What `<sync-history>` reads of `outbox.health()`. Declared here by its shape, so that the element also types
 * against a runtime whose `Outbox` has no `health()` yet (the element then says so instead of failing).
 */
export interface SyncHistoryHealth {
  healthy: boolean;
  lastSuccessAt: number | null;
  lastFailureAt?: number | null;
  consecutiveFailures?: number;
  /** 0..1, or `null` before any attempt. */
  successRate?: number | null;
  meanDurationMs?: number | null;
  p95DurationMs?: number | null;
  rateLimit?: {
    limit: number | null;
    remaining: number | null;
    resetAt: number | null;
    violations?: number;
    lastViolation?: number | null;
  } | null;
  alerts?: Array<{ type: string; [field: string]: unknown }>;
}

/** What `<sync-history>` reads of one `outbox.history()` entry. */
export interface SyncHistoryEntry {
  id: string | number;
  kind: "send" | "batch" | "pull" | "drain" | (string & {});
  trigger?: string;
  startedAt: number;
  endedAt?: number | null;
  durationMs?: number | null;
  items?: number | null;
  outcome: "success" | "partial" | "failure" | (string & {});
  status?: number | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  endpoint?: string | null;
  rateLimit?: unknown;
}

/** Every word `<sync-history>` shows. The English defaults are {@link SYNC_HISTORY_LABELS}. */
export interface SyncHistoryLabels {
  healthHeading: SyncLabel;
  historyHeading: SyncLabel;
  healthy: SyncLabel;
  unhealthy: SyncLabel;
  /** Before any health was read. */
  healthUnknown: SyncLabel;
  /** On an outbox without `health()` and `history()`. */
  unsupported: SyncLabel;
  historyEmpty: SyncLabel;
  lastSync: SyncLabel;
  never: SyncLabel;
  successRate: SyncLabel;
  p95: SyncLabel;
  mean: SyncLabel;
  failuresInARow: SyncLabel;
  rateLimit: SyncLabel;
  /** `{remaining}`, `{limit}` */
  rateLimitLeft: SyncLabel;
  /** A value not known yet. */
  none: SyncLabel;
  /** `{value}` */
  percent: SyncLabel;
  ms: SyncLabel;
  seconds: SyncLabel;
  /** `{time}`: the last successful sync. */
  alertStale: SyncLabel;
  alertStaleNever: SyncLabel;
  /** `{count}`: consecutive failures. */
  alertFailing: SyncLabel;
  /** `{time}`: when the limit resets. */
  alertRateLimited: SyncLabel;
  alertRateLimitedNoTime: SyncLabel;
  alertStorageBlocked: SyncLabel;
  /** `{failed}`, `{conflicts}`, `{unknown}`: ops waiting for the app or the user. */
  alertDeadLetters: SyncLabel;
  /** `{type}`: an alert type without a label of its own (`alert<Type>`, e.g. `alertAuthExpired`, if given). */
  alertOther: SyncLabel;
  colKind: SyncLabel;
  colTrigger: SyncLabel;
  colWhen: SyncLabel;
  colDuration: SyncLabel;
  colItems: SyncLabel;
  colOutcome: SyncLabel;
  colDetail: SyncLabel;
  kindSend: SyncLabel;
  kindBatch: SyncLabel;
  kindPull: SyncLabel;
  kindDrain: SyncLabel;
  outcomeSuccess: SyncLabel;
  outcomePartial: SyncLabel;
  outcomeFailure: SyncLabel;
  triggerEnqueue: SyncLabel;
  triggerTimer: SyncLabel;
  triggerOnline: SyncLabel;
  triggerFocus: SyncLabel;
  triggerManual: SyncLabel;
  triggerPullInterval: SyncLabel;
  triggerWorker: SyncLabel;
  triggerRestore: SyncLabel;
  /** A trigger shows as the runtime names it unless a `trigger<Name>` label exists (`pull_interval`: `triggerPullInterval`). */
  [trigger: `trigger${string}`]: SyncLabel;
}

/** The English labels. */
export declare const SYNC_HISTORY_LABELS: Readonly<SyncHistoryLabels>;

/**
 * `<sync-history>`: an outbox's sync health (healthy or not, alerts in a polite live region, last sync, success
 * rate, p95 and mean latency, failures in a row, rate limit) and a table of its latest sync attempts (kind,
 * trigger, when, duration, items, outcome, status or error). The `health` attribute reflects
 * `healthy` / `unhealthy` / `unknown`; `limit` sets how many attempts the table lists (default 20).
 *
 * Style it with CSS custom properties (`--sync-history-ok-color`, `--sync-history-warn-color`,
 * `--sync-history-error-color`, `--sync-history-line-color`, `--sync-history-font`,
 * `--sync-history-table-font-size`; the colours fall back to `<sync-status>`'s) and `::part(...)`: `health`,
 * `heading`, `health-heading`, `health-state`, `health-dot`, `health-text`, `alerts`, `alert`, `alert-<type>`,
 * `stats`, `stat`, `stat-<name>`, `history`, `history-heading`, `table-wrap`, `table`, `header-row`, `rows`,
 * `row`, `row-<outcome>`, `outcome`, `outcome-<outcome>`, `detail`, `history-empty`, `unsupported`.
 */
export declare class SyncHistoryElement extends HTMLElement {
  /** The outbox to show. Setting it subscribes (while connected); `null` detaches. */
  outbox: Outbox<any> | null;
  /** How many attempts the table lists (the `limit` attribute; default 20). */
  limit: number;
  /** Every label in use. Setting a partial object merges it over the English defaults. */
  get labels(): SyncHistoryLabels;
  set labels(labels: Partial<SyncHistoryLabels> | null);
  /** The times shown (default: `toLocaleTimeString()`). */
  formatTime: (epochMs: number) => string;
  /** The last health read, or `null`. */
  readonly health: SyncHistoryHealth | null;
  /** The attempts listed, newest first. */
  readonly entries: SyncHistoryEntry[];
  /** Whether the outbox has `health()` or `history()`. */
  readonly supported: boolean;
  /** An alert of `health().alerts` in words, as the element shows it. */
  alertText(alert: { type: string; [field: string]: unknown }, health?: SyncHistoryHealth): string;
}

declare global {
  interface HTMLElementTagNameMap {
    "sync-history": SyncHistoryElement;
  }
}
