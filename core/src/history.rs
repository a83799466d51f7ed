//! The sync history: one [`HistoryEntry`] per request the outbox made (a single-op send, a push, a pull
//! page) and per `drain()` call, kept in a [`History`] bounded by count and age.
//!
//! Like the engine, this module does no I/O: the runtime gives it the times, the answers and the trigger,
//! and persists what [`History::record`] returns. What an answer *means* is decided here, with the same
//! classification rules the engine applies ([`crate::classify`]), so the history and the engine never
//! disagree about whether a request succeeded.
//!
//! The serialized form (serde, camelCase) is both the stored record and the JSON the app reads.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::op::OpKind;
use crate::outcome::{classify, OutcomeClass};
use crate::rate_limit;
use crate::response::{Reply, Response};

/// The default most entries kept.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000;
/// The default longest an entry is kept: 7 days, ms.
pub const DEFAULT_MAX_AGE_MS: u64 = 7 * 24 * 60 * 60 * 1_000;
/// Longest `RateLimit-Policy` value kept: a header is not the place for an essay, and it is stored.
const MAX_POLICY_CHARS: usize = 200;
/// Longest error message kept, for the same reason.
const MAX_MESSAGE_CHARS: usize = 500;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// One single-op request.
    Send,
    /// One request carrying a batch (a push, or a custom transport's batch of several ops).
    Batch,
    /// One pull page (one request).
    Pull,
    /// One `drain()` call, from its start until nothing it started is in flight.
    Drain,
}

impl HistoryKind {
    /// True for entries that are one request to the server. Drains are not: they aggregate requests
    /// already recorded, and counting both would count every request twice.
    pub fn is_request(self) -> bool {
        !matches!(self, HistoryKind::Drain)
    }
}

/// Why the runtime pumped: what made it send (or pull) when it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The debounce after an enqueue.
    Enqueue,
    /// A wake-up timer (a backoff or a rate-limit block expired).
    Timer,
    /// The browser came back online.
    Online,
    /// The page became visible again.
    Focus,
    /// The app asked: `drain()`, `retry()`, `resume()`, `pull()`…
    #[default]
    Manual,
    /// The periodic pull.
    PullInterval,
    /// A worker host relayed the request (for runtimes driven from a worker).
    Worker,
    /// The queue restored at open.
    Restore,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything it carried succeeded.
    Success,
    /// Some of it succeeded, some did not.
    Partial,
    /// Nothing succeeded (or there was no answer).
    Failure,
}

/// What one response's pacing headers said: `X-RateLimit-*`, the IETF `RateLimit` / `RateLimit-Policy`
/// fields, and `Retry-After`. Absolute times are epoch ms on the client's clock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSeen {
    /// The quota of the window.
    pub limit: Option<u64>,
    /// Requests left in the window.
    pub remaining: Option<u64>,
    /// When the quota resets.
    pub reset_at: Option<u64>,
    /// `Retry-After`, ms.
    pub retry_after_ms: Option<u64>,
    /// The `RateLimit-Policy` header as sent (truncated to 200 characters).
    pub policy: Option<String>,
}

impl RateLimitSeen {
    /// What `response` says, read at `ended_at` (the client clock) and judged against `wall_now` for
    /// HTTP dates; `None` when it carries no pacing header at all.
    pub fn from_response(
        response: &Response,
        ended_at: u64,
        wall_now: u64,
    ) -> Option<RateLimitSeen> {
        let info = rate_limit::parse(response, wall_now);
        let policy = response
            .header("ratelimit-policy")
            .map(|p| p.trim().chars().take(MAX_POLICY_CHARS).collect::<String>());
        let seen = RateLimitSeen {
            limit: info.limit,
            remaining: info.remaining,
            reset_at: info.reset_ms.map(|ms| ended_at.saturating_add(ms)),
            retry_after_ms: info.retry_after_ms,
            policy,
        };
        (seen != RateLimitSeen::default()).then_some(seen)
    }
}

/// How one attempt was answered: everything of an entry that depends on the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// A short code for a failure: the outcome class (`transient`, `rate_limited`, `conflict`, `auth`,
    /// `permanent`), `network`, `timeout`, or the runtime's own (`pull_failed`).
    pub error_code: Option<String>,
    /// What went wrong, in words.
    pub error_message: Option<String>,
    /// The pacing headers.
    pub rate_limit: Option<RateLimitSeen>,
}

impl Answer {
    /// Success with nothing more to say (a drain, a custom pull source).
    pub fn success() -> Answer {
        Answer {
            outcome: Outcome::Success,
            status: None,
            error_code: None,
            error_message: None,
            rate_limit: None,
        }
    }

    /// A failure the runtime describes itself.
    pub fn failure(code: &str, message: &str) -> Answer {
        Answer {
            outcome: Outcome::Failure,
            error_code: Some(code.to_owned()),
            error_message: Some(clip(message)),
            ..Answer::success()
        }
    }

    /// No answer came: a network error or a timeout (the transport's words say which).
    pub fn no_answer(reason: &str) -> Answer {
        let code = if reason.starts_with("timed out") {
            "timeout"
        } else {
            "network"
        };
        Answer::failure(code, reason)
    }

    /// The answer to a send of ops of these kinds (in batch order), classified as the engine does.
    pub fn of_reply(
        reply: &Reply,
        kinds: &[&OpKind],
        config: &Config,
        ended_at: u64,
        wall_now: u64,
    ) -> Answer {
        let class = |kind: &OpKind, response: &Response| {
            classify(
                &config.rules,
                &config.key_in_flight_problem_types,
                kind,
                Some(response),
            )
        };
        let any = OpKind::Put;
        let first_kind = kinds.first().copied().unwrap_or(&any);
        // (ok, response) per op that got an answer of its own; ops left out of a push's results count as
        // failed, as the engine retries them.
        let answers: Vec<(bool, &Response)> = match &reply.results {
            None => vec![(
                class(first_kind, &reply.response) == OutcomeClass::Ack,
                &reply.response,
            )],
            Some(results) => results
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let kind = kinds.get(i).copied().unwrap_or(first_kind);
                    (class(kind, &r.response) == OutcomeClass::Ack, &r.response)
                })
                .collect(),
        };
        let expected = match &reply.results {
            None => 1,
            Some(_) => kinds.len().max(answers.len()),
        };
        let acked = answers.iter().filter(|(ok, _)| *ok).count();
        let outcome = if acked == expected && expected > 0 {
            Outcome::Success
        } else if acked > 0 {
            Outcome::Partial
        } else {
            Outcome::Failure
        };
        // The request's own status; for a custom transport's per-op answers (a made-up 200 around them),
        // the ops' status when they all agree.
        let status = match &reply.results {
            Some(results) if !results.is_empty() && reply.response.headers.is_empty() => {
                let first = results[0].response.status;
                if results.iter().all(|r| r.response.status == first) {
                    first
                } else {
                    reply.response.status
                }
            }
            _ => reply.response.status,
        };
        let paced = std::iter::once(&reply.response)
            .chain(answers.iter().map(|(_, r)| *r))
            .find_map(|r| RateLimitSeen::from_response(r, ended_at, wall_now));
        let mut answer = Answer {
            outcome,
            status: Some(status),
            error_code: None,
            error_message: None,
            rate_limit: paced,
        };
        if outcome != Outcome::Success {
            let failed = answers.iter().find(|(ok, _)| !ok).map(|(_, r)| *r);
            let (code, message) = match failed {
                Some(r) => (
                    class_name(class(first_kind, r)).to_owned(),
                    r.problem_message()
                        .unwrap_or_else(|| format!("HTTP {}", r.status)),
                ),
                None => ("transient".to_owned(), "no result for some ops".to_owned()),
            };
            answer.error_code = Some(code);
            answer.error_message = Some(clip(&message));
        }
        answer
    }

    /// The answer to a pull request: `ok` when its page was usable.
    pub fn of_pull(response: &Response, ok: bool, ended_at: u64, wall_now: u64) -> Answer {
        let rate_limit = RateLimitSeen::from_response(response, ended_at, wall_now);
        let mut answer = if ok {
            Answer::success()
        } else {
            let message = response
                .problem_message()
                .unwrap_or_else(|| format!("HTTP {}", response.status));
            let code = if response.status == 429 {
                "rate_limited"
            } else {
                "pull_failed"
            };
            Answer::failure(code, &message)
        };
        answer.status = Some(response.status);
        answer.rate_limit = rate_limit;
        answer
    }
}

fn class_name(class: OutcomeClass) -> &'static str {
    match class {
        OutcomeClass::Ack => "ack",
        OutcomeClass::Transient => "transient",
        OutcomeClass::RateLimited => "rate_limited",
        OutcomeClass::Conflict => "conflict",
        OutcomeClass::Auth => "auth",
        OutcomeClass::Permanent => "permanent",
    }
}

fn clip(message: &str) -> String {
    message.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// One attempt, as stored and as the app reads it. Times are epoch ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Monotonic: a later entry has a larger id.
    pub id: u64,
    /// What it records.
    pub kind: HistoryKind,
    /// What made the runtime send.
    pub trigger: Trigger,
    /// When the request left (the drain was called).
    pub started_at: u64,
    /// When its answer (or timeout) came (the drain settled).
    pub ended_at: u64,
    /// `ended_at - started_at`.
    pub duration_ms: u64,
    /// Ops carried (sends), documents received (pulls), ops settled (drains).
    pub items: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// See [`Answer::error_code`].
    pub error_code: Option<String>,
    /// See [`Answer::error_message`].
    pub error_message: Option<String>,
    /// The URL path the request went to; `null` for a custom transport or a `route` (the app's URLs).
    pub endpoint: Option<String>,
    /// What the pacing headers said.
    pub rate_limit: Option<RateLimitSeen>,
}

/// An attempt before it has an id: what the runtime knows of it.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// What it records.
    pub kind: HistoryKind,
    /// What made the runtime send.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: u64,
    /// When it ended.
    pub ended_at: u64,
    /// Ops, documents or settled ops.
    pub items: u64,
    /// The URL path, if known.
    pub endpoint: Option<String>,
    /// How it was answered.
    pub answer: Answer,
}

/// The bounds of a [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryBounds {
    /// Most entries kept.
    pub max_entries: usize,
    /// Longest an entry is kept, ms (by its `ended_at`).
    pub max_age_ms: u64,
}

impl Default for HistoryBounds {
    fn default() -> Self {
        HistoryBounds {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_age_ms: DEFAULT_MAX_AGE_MS,
        }
    }
}

/// What `history({ limit, since, kind, outcome })` asks for.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// At most this many entries.
    pub limit: Option<usize>,
    /// Only entries that ended at or after this time.
    pub since: Option<u64>,
    /// Only entries of this kind.
    pub kind: Option<HistoryKind>,
    /// Only entries with this outcome.
    pub outcome: Option<Outcome>,
}

/// The bounded history, oldest first.
#[derive(Clone, Debug)]
pub struct History {
    entries: VecDeque<HistoryEntry>,
    next_id: u64,
    bounds: HistoryBounds,
}

impl Default for History {
    fn default() -> Self {
        History::restore(Vec::new(), HistoryBounds::default(), 0).0
    }
}

impl History {
    /// The history from stored entries (any order). Returns it and, when some of them are out of
    /// bounds, the id below which every stored entry must be deleted.
    pub fn restore(
        mut stored: Vec<HistoryEntry>,
        bounds: HistoryBounds,
        now: u64,
    ) -> (History, Option<u64>) {
        crate::order::sort_by_key(&mut stored, |e| (0, e.id, 0));
        stored.dedup_by_key(|e| e.id);
        let next_id = stored.last().map_or(1, |e| e.id + 1);
        let mut history = History {
            entries: stored.into(),
            next_id,
            bounds,
        };
        let cut = history.trim(now);
        (history, cut)
    }

    /// Records an attempt at `now`; returns the entry and, when the bounds dropped older entries, the
    /// id below which every stored entry must be deleted.
    pub fn record(&mut self, attempt: Attempt, now: u64) -> (&HistoryEntry, Option<u64>) {
        let Attempt {
            kind,
            trigger,
            started_at,
            ended_at,
            items,
            endpoint,
            answer,
        } = attempt;
        let entry = HistoryEntry {
            id: self.next_id,
            kind,
            trigger,
            started_at,
            ended_at,
            duration_ms: ended_at.saturating_sub(started_at),
            items,
            outcome: answer.outcome,
            status: answer.status,
            error_code: answer.error_code,
            error_message: answer.error_message,
            endpoint,
            rate_limit: answer.rate_limit,
        };
        self.next_id += 1;
        self.entries.push_back(entry);
        let cut = self.trim(now);
        (self.entries.back().expect("pushed above"), cut)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &HistoryEntry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// The entries `query` asks for, newest first.
    pub fn query(&self, query: &HistoryQuery) -> Vec<&HistoryEntry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| query.since.is_none_or(|since| e.ended_at >= since))
            .filter(|e| query.kind.is_none_or(|k| e.kind == k))
            .filter(|e| query.outcome.is_none_or(|o| e.outcome == o))
            .take(query.limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// Drops the oldest entries past the bounds. Ids grow with time, so the survivors are a suffix and
    /// one range delete (`id < cut`) removes the rest from storage.
    fn trim(&mut self, now: u64) -> Option<u64> {
        let oldest_kept = now.saturating_sub(self.bounds.max_age_ms);
        let mut dropped = false;
        while let Some(front) = self.entries.front() {
            if self.entries.len() > self.bounds.max_entries || front.ended_at < oldest_kept {
                self.entries.pop_front();
                dropped = true;
            } else {
                break;
            }
        }
        dropped.then(|| self.entries.front().map_or(self.next_id, |e| e.id))
    }
}

#[cfg(test)]
mod tests;
