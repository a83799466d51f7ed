//! Pulling server changes: `GET {endpoint}/pull?since=<cursor>&limit=` (docs/PROTOCOL.md §7), or the
//! app's own `pull.source(cursor)`.
//!
//! Pull shares the engine's gate with push — no pull while offline, paused or rate-limited — and its
//! responses feed the engine's rate-limit state, so one server budget covers both. A failed periodic
//! pull backs off with full jitter instead of hammering a struggling server every interval.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use gloo_timers::callback::Interval;
use outbox_core::ConfirmedDoc;
use serde_json::Value;

use crate::options::PullOptions;

/// The meta record that holds the cursor.
pub const CURSOR: &str = "cursor";

/// Pull state of one outbox.
pub struct Pull {
    /// The options.
    pub options: PullOptions,
    /// Where the next pull starts; persisted in the `meta` store.
    pub cursor: RefCell<Option<String>>,
    /// A pull is under way (one at a time).
    pub running: Cell<bool>,
    /// Consecutive failed periodic pulls.
    pub failures: Cell<u32>,
    /// No periodic pull before this engine time (backoff).
    pub not_before: Cell<u64>,
    /// The periodic timer.
    pub timer: RefCell<Option<Interval>>,
}

impl Pull {
    /// Pull state starting at `cursor`.
    pub fn new(options: PullOptions, cursor: Option<String>) -> Self {
        Pull {
            options,
            cursor: RefCell::new(cursor),
            running: Cell::new(false),
            failures: Cell::new(0),
            not_before: Cell::new(0),
            timer: RefCell::new(None),
        }
    }

    /// Records a failed periodic pull: the next one waits `uniform(0, min(60 s, 1 s * 2^n))`.
    pub fn failed(&self, now: u64) {
        let n = self.failures.get().saturating_add(1);
        self.failures.set(n);
        let ceiling = 1_000u64.saturating_mul(1 << n.min(6)).min(60_000);
        let delay = (js_sys::Math::random() * ceiling as f64) as u64;
        self.not_before.set(now.saturating_add(delay));
    }

    /// Records a successful pull.
    pub fn succeeded(&self) {
        self.failures.set(0);
        self.not_before.set(0);
    }
}

/// One page of changes.
pub struct Page {
    /// The changed documents, tombstones included.
    pub docs: Vec<ConfirmedDoc>,
    /// The cursor to continue from.
    pub cursor: Option<String>,
    /// More pages follow.
    pub has_more: bool,
}

/// Reads `{ changes: [{ collection, key, version | etag, deleted, doc }], cursor, hasMore }`.
pub fn parse_page(body: &Value) -> Result<Page, String> {
    let changes = body
        .get("changes")
        .and_then(Value::as_array)
        .ok_or("a pull page needs a \"changes\" array")?;
    let docs = changes
        .iter()
        .map(|change| {
            let text = |field: &str| change.get(field).and_then(Value::as_str).map(str::to_owned);
            let collection = text("collection").ok_or("a change needs a \"collection\"")?;
            let key = text("key").ok_or("a change needs a \"key\"")?;
            // The ETag is the version the rest of the engine speaks. A `version` is the opaque form the API
            // shows (`3`, `abc`: quoted into an ETag), or an ETag already.
            let version = text("etag").or_else(|| match change.get("version") {
                Some(Value::Number(n)) => Some(format!("\"{n}\"")),
                Some(Value::String(v)) if v.starts_with('"') || v.starts_with("W/\"") => {
                    Some(v.clone())
                }
                Some(Value::String(v)) => crate::transport::wire::etag_from_api(v),
                _ => None,
            });
            let deleted = change
                .get("deleted")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(ConfirmedDoc {
                collection,
                key,
                version,
                doc: Arc::new(if deleted {
                    Value::Null
                } else {
                    change.get("doc").cloned().unwrap_or(Value::Null)
                }),
                deleted,
            })
        })
        .collect::<Result<Vec<_>, &str>>()?;
    let cursor = match body.get("cursor") {
        Some(Value::String(c)) => Some(c.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(Page {
        docs,
        cursor,
        has_more: body
            .get("hasMore")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}
