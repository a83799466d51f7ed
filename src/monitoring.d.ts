/** What a history entry records. */
export type HistoryKind = "send" | "batch" | "pull" | "drain";

/**
 * What made the outbox send (or pull) when it did: the debounce after an enqueue, a wake-up timer (backoff
 * or rate-limit block expired), the browser coming online, the page becoming visible, the app (`drain()`,
 * `retry()`, `resume()`, `pull()`…), the periodic pull, a worker host, or the queue restored at open.
 */
export type HistoryTrigger = "enqueue" | "timer" | "online" | "focus" | "manual" | "pull_interval" | "worker" | "restore";

/** How an attempt ended: everything it carried succeeded, some of it, or nothing (or no answer). */
export type HistoryOutcome = "success" | "partial" | "failure";

/** What a response's pacing headers said (`X-RateLimit-*`, `RateLimit`, `RateLimit-Policy`, `Retry-After`). */
export interface RateLimitInfo {
  limit: number | null;
  remaining: number | null;
  /** When the quota resets, epoch ms. */
  resetAt: number | null;
  retryAfterMs: number | null;
  /** The `RateLimit-Policy` header as sent. */
  policy: string | null;
}

/**
 * One attempt: a single-op request (`send`), a push or multi-op batch (`batch`), one pull page (`pull`), or
 * one `drain()` call from its start until it settled (`drain`). Times are epoch ms.
 */
export interface HistoryEntry {
  /** Grows with every entry. */
  id: number;
  kind: HistoryKind;
  trigger: HistoryTrigger;
  startedAt: number;
  endedAt: number;
  durationMs: number;
  /** Ops carried (sends), documents received (pulls), ops settled (drains). */
  items: number;
  outcome: HistoryOutcome;
  /** The HTTP status, when there was one. */
  status: number | null;
  /**
   * Why it did not succeed: `transient`, `rate_limited`, `conflict`, `auth`, `permanent` (how the answer was
   * classified), `network`, `timeout`, `pull_failed`, or `incomplete` (a drain).
   */
  errorCode: string | null;
  errorMessage: string | null;
  /** The URL path; `null` for a custom transport, a `route`, or a pull `source`. */
  endpoint: string | null;
  rateLimit: RateLimitInfo | null;
}

/** What `history()` returns. Every field is optional. */
export interface HistoryQuery {
  /** At most this many entries (the newest). */
  limit?: number;
  /** Only entries that ended at or after this time, epoch ms. */
  since?: number;
  kind?: HistoryKind;
  outcome?: HistoryOutcome;
}

/** `options.history`: how much history is kept (in IndexedDB and in memory). */
export interface HistoryOptions {
  /** Most entries kept. Default 1000. */
  maxEntries?: number;
  /** Longest an entry is kept, ms. Default 604800000 (7 days). */
  maxAgeMs?: number;
}

/** `options.health`: the thresholds of `health()`. */
export interface HealthOptions {
  /** The window of rates, durations and violations, ms. Default 3600000 (1 h). */
  windowMs?: number;
  /** Pending ops with no success for this long raise `stale`, ms. Default 900000 (15 min). */
  staleAfterMs?: number;
  /** This many failed attempts in a row raise `failing`. Default 3. */
  failingAfter?: number;
}

/** Something to act on; see the "Monitoring" section of the README for each rule. */
export type HealthAlert =
  | { type: "stale"; since: number; pending: number }
  | { type: "failing"; consecutiveFailures: number }
  | { type: "rate_limited"; until: number | null; violations: number }
  | { type: "storage_blocked"; code: string; message: string }
  | { type: "dead_letters"; failed: number; conflicts: number; unknown: number };

/**
 * How syncing goes, derived from the history (requests only: sends, batches, pulls) and the queue. Times are
 * epoch ms; rates and durations are over `health.windowMs`.
 */
export interface Health {
  /** No alerts. */
  healthy: boolean;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  consecutiveFailures: number;
  /** Attempts in the window that wholly succeeded, 0–1; `null` without attempts. */
  successRate: number | null;
  meanDurationMs: number | null;
  /** 95th percentile (nearest rank). */
  p95DurationMs: number | null;
  rateLimit: {
    limit: number | null;
    remaining: number | null;
    resetAt: number | null;
    /** 429s in the window. */
    violations: number;
    lastViolation: { at: number; endpoint: string | null; retryAfterMs: number | null } | null;
  };
  alerts: HealthAlert[];
}
