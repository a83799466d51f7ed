//! Health: what the history says about how syncing goes, and the alerts an app may show or report.
//!
//! [`health`] is a pure function of the entries, the time and a few facts about the queue
//! ([`HealthInputs`]): the same arguments always give the same [`Health`]. Only requests count as
//! attempts (sends, pushes, pulls); a drain entry aggregates requests already recorded.
//!
//! # Alerts
//! `healthy` is true exactly when `alerts` is empty. Each alert has one rule:
//!
//! | alert | raised when |
//! |---|---|
//! | `stale { since, pending }` | ops are pending and nothing succeeded for `stale_after_ms`: `since` is the later of the last success and the oldest pending op's enqueue, and `now - since >= stale_after_ms` |
//! | `failing { consecutive_failures }` | the last `failing_after` (or more) attempts all failed |
//! | `rate_limited { until, violations }` | a 429 came within the window, or the server's rate limit blocks sending now; `until` is the block's end, else the latest reset or `Retry-After` seen |
//! | `storage_blocked { code, message }` | storage fails to commit, or another tab's schema upgrade closed the database |
//! | `dead_letters { failed, conflicts, unknown }` | ops wait for the app: failed, held in conflict, or of unknown outcome |

use serde::{Deserialize, Serialize};

use crate::history::{HistoryEntry, Outcome};

/// The default window over which rates and durations are computed: 1 hour.
pub const DEFAULT_WINDOW_MS: u64 = 60 * 60 * 1_000;
/// The default age of the last success at which pending ops make the outbox stale: 15 minutes.
pub const DEFAULT_STALE_AFTER_MS: u64 = 15 * 60 * 1_000;
/// The default number of consecutive failed attempts that raise `failing`.
pub const DEFAULT_FAILING_AFTER: u32 = 3;

/// The thresholds of [`health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Entries that ended within this many ms before `now` make the window.
    pub window_ms: u64,
    /// See the `stale` alert.
    pub stale_after_ms: u64,
    /// See the `failing` alert.
    pub failing_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window_ms: DEFAULT_WINDOW_MS,
            stale_after_ms: DEFAULT_STALE_AFTER_MS,
            failing_after: DEFAULT_FAILING_AFTER,
        }
    }
}

/// What the queue and storage say now, besides the history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthInputs {
    /// Ops waiting to be sent or in flight.
    pub pending: usize,
    /// When the oldest of them was enqueued.
    pub oldest_pending_at: Option<u64>,
    /// Failed ops.
    pub failed: usize,
    /// Ops held in conflict.
    pub conflicts: usize,
    /// Ops of unknown outcome.
    pub unknown: usize,
    /// Sending is blocked by the server's rate limit until this time.
    pub blocked_until: Option<u64>,
    /// Storage fails (or the database was closed by another tab's upgrade): `(code, message)`.
    pub storage_error: Option<(String, String)>,
}

/// The latest 429.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// When it came.
    pub at: u64,
    /// The URL path it answered.
    pub endpoint: Option<String>,
    /// Its `Retry-After`, ms.
    pub retry_after_ms: Option<u64>,
}

/// The server's rate limit as the history saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitHealth {
    /// The latest quota seen.
    pub limit: Option<u64>,
    /// The latest remaining count seen.
    pub remaining: Option<u64>,
    /// The latest reset time seen.
    pub reset_at: Option<u64>,
    /// 429s within the window.
    pub violations: u32,
    /// The latest 429 (at any time).
    pub last_violation: Option<Violation>,
}

/// Something an app may want to act on; see the module docs for each rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Alert {
    /// Ops are pending and nothing succeeded for `stale_after_ms` since `since`.
    Stale {
        /// The later of the last success and the oldest pending op's enqueue.
        since: u64,
        /// Ops pending.
        pending: usize,
    },
    /// The last attempts all failed.
    Failing {
        /// How many in a row.
        consecutive_failures: u32,
    },
    /// The server rate limits this client.
    RateLimited {
        /// Until when, when known.
        until: Option<u64>,
        /// 429s within the window.
        violations: u32,
    },
    /// Storage cannot commit.
    StorageBlocked {
        /// The storage error code (`QUOTA_EXCEEDED`, `DB_UPGRADE_BLOCKED`, …).
        code: String,
        /// What happened.
        message: String,
    },
    /// Ops wait for the app to decide.
    DeadLetters {
        /// Failed ops.
        failed: usize,
        /// Ops held in conflict.
        conflicts: usize,
        /// Ops of unknown outcome.
        unknown: usize,
    },
}

/// The derived health. Times are epoch ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// No alerts.
    pub healthy: bool,
    /// The end of the latest attempt that succeeded, wholly or partly.
    pub last_success_at: Option<u64>,
    /// The end of the latest attempt that failed.
    pub last_failure_at: Option<u64>,
    /// Failed attempts since the last one that (partly) succeeded.
    pub consecutive_failures: u32,
    /// Attempts in the window that succeeded wholly, as a fraction; `None` without attempts.
    pub success_rate: Option<f64>,
    /// Mean attempt duration in the window, ms (rounded).
    pub mean_duration_ms: Option<u64>,
    /// 95th percentile (nearest rank) of attempt durations in the window, ms.
    pub p95_duration_ms: Option<u64>,
    /// The server's rate limit.
    pub rate_limit: RateLimitHealth,
    /// What needs attention, in the order of [`Alert`]'s variants.
    pub alerts: Vec<Alert>,
}

/// Derives the health from `entries` (any order is fine; ids give the order) at `now`.
pub fn health<'a>(
    entries: impl IntoIterator<Item = &'a HistoryEntry>,
    now: u64,
    inputs: &HealthInputs,
    config: &HealthConfig,
) -> Health {
    let mut attempts: Vec<&HistoryEntry> = entries
        .into_iter()
        .filter(|e| e.kind.is_request())
        .collect();
    crate::order::sort_by_key(&mut attempts, |e| (0, e.id, 0));
    let window_start = now.saturating_sub(config.window_ms);
    let in_window: Vec<&HistoryEntry> = attempts
        .iter()
        .copied()
        .filter(|e| e.ended_at >= window_start)
        .collect();

    let latest = |pred: &dyn Fn(&HistoryEntry) -> bool| {
        attempts
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.ended_at)
            .max()
    };
    let last_success_at = latest(&|e| e.outcome != Outcome::Failure);
    let last_failure_at = latest(&|e| e.outcome == Outcome::Failure);
    let consecutive_failures = attempts
        .iter()
        .rev()
        .take_while(|e| e.outcome == Outcome::Failure)
        .count() as u32;

    let n = in_window.len() as u64;
    let success_rate = (n > 0).then(|| {
        let ok = in_window
            .iter()
            .filter(|e| e.outcome == Outcome::Success)
            .count();
        ok as f64 / n as f64
    });
    let mut durations: Vec<u64> = in_window.iter().map(|e| e.duration_ms).collect();
    crate::order::sort_by_key(&mut durations, |&d| (0, d, 0));
    let mean_duration_ms = (n > 0).then(|| {
        let sum: u128 = durations.iter().map(|&d| u128::from(d)).sum();
        ((sum + u128::from(n) / 2) / u128::from(n)) as u64
    });
    let p95_duration_ms = (n > 0).then(|| durations[nearest_rank(95, durations.len()) - 1]);

    let rate_limit = rate_limit_health(&attempts, &in_window);
    let alerts = alerts(
        inputs,
        config,
        now,
        last_success_at,
        consecutive_failures,
        &rate_limit,
    );
    Health {
        healthy: alerts.is_empty(),
        last_success_at,
        last_failure_at,
        consecutive_failures,
        success_rate,
        mean_duration_ms,
        p95_duration_ms,
        rate_limit,
        alerts,
    }
}

/// The 1-based nearest rank of percentile `p` among `n` sorted values: `ceil(p / 100 * n)`, at least 1.
fn nearest_rank(p: usize, n: usize) -> usize {
    (p * n).div_ceil(100).clamp(1, n)
}

fn rate_limit_health(attempts: &[&HistoryEntry], in_window: &[&HistoryEntry]) -> RateLimitHealth {
    let seen = || attempts.iter().rev().filter_map(|e| e.rate_limit.as_ref());
    let is_violation = |e: &&&HistoryEntry| e.status == Some(429);
    RateLimitHealth {
        limit: seen().find_map(|r| r.limit),
        remaining: seen().find_map(|r| r.remaining),
        reset_at: seen().find_map(|r| r.reset_at),
        violations: in_window.iter().filter(is_violation).count() as u32,
        last_violation: attempts.iter().rev().find(is_violation).map(|e| Violation {
            at: e.ended_at,
            endpoint: e.endpoint.clone(),
            retry_after_ms: e.rate_limit.as_ref().and_then(|r| r.retry_after_ms),
        }),
    }
}

fn alerts(
    inputs: &HealthInputs,
    config: &HealthConfig,
    now: u64,
    last_success_at: Option<u64>,
    consecutive_failures: u32,
    rate_limit: &RateLimitHealth,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if inputs.pending > 0 {
        let since = last_success_at.max(inputs.oldest_pending_at);
        if let Some(since) = since {
            if now.saturating_sub(since) >= config.stale_after_ms {
                alerts.push(Alert::Stale {
                    since,
                    pending: inputs.pending,
                });
            }
        }
    }
    if config.failing_after > 0 && consecutive_failures >= config.failing_after {
        alerts.push(Alert::Failing {
            consecutive_failures,
        });
    }
    let blocked = inputs.blocked_until.filter(|&until| until > now);
    if blocked.is_some() || rate_limit.violations > 0 {
        let stated = rate_limit.last_violation.as_ref().and_then(|v| {
            v.retry_after_ms
                .map(|ms| v.at.saturating_add(ms))
                .max(rate_limit.reset_at)
        });
        alerts.push(Alert::RateLimited {
            until: blocked.or(stated),
            violations: rate_limit.violations,
        });
    }
    if let Some((code, message)) = &inputs.storage_error {
        alerts.push(Alert::StorageBlocked {
            code: code.clone(),
            message: message.clone(),
        });
    }
    if inputs.failed + inputs.conflicts + inputs.unknown > 0 {
        alerts.push(Alert::DeadLetters {
            failed: inputs.failed,
            conflicts: inputs.conflicts,
            unknown: inputs.unknown,
        });
    }
    alerts
}

#[cfg(test)]
mod tests;
