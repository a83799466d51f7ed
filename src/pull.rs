//! Pulling server changes: `GET {endpoint}/pull?since=<cursor>&limit=` (docs/PROTOCOL.md §7), or the
//! app's own `pull.source(cursor)`.
//!
//! Pausing: `pausePull(collection)` holds a collection back. The shared cursor keeps moving (a server
//! cannot filter "everything but X"), so the paused collection's changes are dropped on arrival and
//! the cursor it was paused at is kept as a catch-up cursor; `resumePull` then pulls that collection
//! alone (`collection=X`) from there until `hasMore` is false, which brings every change the shared
//! cursor skipped. Catch-up cursors are stored (meta [`HELD`]) with the documents they cover, so a
//! reload while paused loses nothing; the pause itself is not stored: it belongs to the page session,
//! and after a reload every held collection is simply caught up.
//!
//! Pull shares the engine's gate with push — no pull while offline, paused or rate-limited — and its
//! responses feed the engine's rate-limit state, so one server budget covers both. A failed periodic
//! pull backs off with full jitter instead of hammering a struggling server every interval.

use std::cell::{Cell, RefCell};

use gloo_timers::callback::Interval;
use outbox_core::{ConfirmedDoc, Json};
use serde_json::{Map, Value};

use crate::options::PullOptions;

/// The meta record that holds the cursor.
pub const CURSOR: &str = "cursor";

/// The meta record that holds the catch-up cursors: JSON `{ collection: cursor | null }`.
pub const HELD: &str = "pullHeld";

/// A collection the shared cursor has moved past without applying its changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Hold {
    /// Where its catch-up starts (`None`: the beginning).
    pub since: Option<String>,
    /// Still paused; else resumed and owed a catch-up.
    pub paused: bool,
}

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
    /// `pausePull()`: no pull at all (the cursor stays, so nothing needs catching up).
    pub all_paused: Cell<bool>,
    /// Paused collections and resumed ones not yet caught up, sorted by name (a few: a list, since every
    /// map type costs the wasm its own copy of the tree code).
    pub held: RefCell<Vec<(String, Hold)>>,
}

impl Pull {
    /// Takes the cursor another tab (the last leader) left in the store: a new leader pulls on from
    /// there. What that tab held back for its paused collections is its own pause, so it is dropped.
    pub async fn reload(&self, store: &crate::store::IdbStore) {
        if let Ok(cursor) = store.get_meta(CURSOR).await {
            *self.cursor.borrow_mut() = cursor.and_then(|c| c.as_string());
        }
    }

    /// Pull state starting at `cursor`, with the stored catch-up cursors `held` (JSON, see [`HELD`]).
    pub fn new(options: PullOptions, cursor: Option<String>, held: Option<&str>) -> Self {
        // After a reload nothing is paused; what was held is owed a catch-up.
        // JSON's own object type rather than a map of strings, as in `held_record`. It iterates sorted by
        // name (serde_json without `preserve_order`), which keeps `held` sorted.
        let held = held
            .and_then(|text| serde_json::from_str::<Map<String, Value>>(text).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, since)| {
                let since = match since {
                    Value::String(since) => Some(since),
                    Value::Null => None,
                    _ => return None,
                };
                let hold = Hold {
                    since,
                    paused: false,
                };
                Some((name, hold))
            })
            .collect();
        Pull {
            options,
            cursor: RefCell::new(cursor),
            running: Cell::new(false),
            failures: Cell::new(0),
            not_before: Cell::new(0),
            timer: RefCell::new(None),
            all_paused: Cell::new(false),
            held: RefCell::new(held),
        }
    }

    /// Holds `collection` back (`None`: stops pulling altogether).
    pub fn pause(&self, collection: Option<&str>) {
        let Some(name) = collection else {
            self.all_paused.set(true);
            return;
        };
        let cursor = self.cursor.borrow().clone();
        // Paused again before its catch-up finished: the older cursor still covers everything.
        let mut held = self.held.borrow_mut();
        match held.binary_search_by(|(held, _)| held.as_str().cmp(name)) {
            Ok(at) => held[at].1.paused = true,
            Err(at) => held.insert(
                at,
                (
                    name.to_owned(),
                    Hold {
                        since: cursor,
                        paused: true,
                    },
                ),
            ),
        }
    }

    /// Lifts the pause of `collection` (`None`: of everything), leaving it owed a catch-up.
    pub fn resume(&self, collection: Option<&str>) {
        let mut held = self.held.borrow_mut();
        match collection {
            None => {
                self.all_paused.set(false);
                held.iter_mut().for_each(|(_, hold)| hold.paused = false);
            }
            Some(name) => {
                if let Some(hold) = find(&mut held, name) {
                    hold.paused = false;
                }
            }
        }
    }

    /// `pullPaused()`: `None` when everything is paused, else the paused collections.
    pub fn paused(&self) -> Option<Vec<String>> {
        if self.all_paused.get() {
            return None;
        }
        let held = self.held.borrow();
        Some(
            held.iter()
                .filter(|(_, hold)| hold.paused)
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }

    /// Whether the shared pull applies `collection`'s changes now.
    pub fn applies(&self, collection: &str) -> bool {
        let configured = self
            .options
            .collections
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == collection));
        configured
            && !self
                .held
                .borrow()
                .iter()
                .any(|(name, hold)| name == collection && hold.paused)
    }

    /// The next resumed collection owed a catch-up, and where it starts.
    pub fn owed(&self) -> Option<(String, Option<String>)> {
        self.held
            .borrow()
            .iter()
            .find(|(_, hold)| !hold.paused)
            .map(|(name, hold)| (name.clone(), hold.since.clone()))
    }

    /// The [`HELD`] record as it should be stored with a page's writes: the catch-up cursors now, with
    /// `step` (a catch-up page of one collection) applied.
    pub fn held_record(&self, step: Option<(&str, &Progress)>) -> String {
        // Inserted one by one: collecting into the map would sort first, with a sort of its own.
        let mut record = Map::new();
        for (name, hold) in self.held.borrow().iter() {
            record.insert(name.clone(), cursor_json(&hold.since));
        }
        match step {
            Some((name, Progress::To(since))) => {
                record.insert(name.to_owned(), cursor_json(since));
            }
            Some((name, Progress::Done)) => {
                record.remove(name);
            }
            None => {}
        }
        serde_json::to_string(&record).unwrap_or_else(|_| "{}".into())
    }

    /// Records a committed catch-up page of `collection`.
    pub fn caught_up(&self, collection: &str, progress: Progress) {
        let mut held = self.held.borrow_mut();
        let Some(hold) = find(&mut held, collection) else {
            return;
        };
        match progress {
            // Paused again while the page was under way: keep the cursor the page started from (still
            // in memory), which covers at least as much; the next shared page stores it again.
            _ if hold.paused => {}
            Progress::To(since) => hold.since = since,
            Progress::Done => held.retain(|(name, _)| name != collection),
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

/// How a catch-up page moves its collection's catch-up cursor.
pub enum Progress {
    /// More to fetch from here.
    To(Option<String>),
    /// Caught up: the shared pull covers the rest.
    Done,
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
                doc: match change.get("doc") {
                    Some(doc) if !deleted => Json::from(doc),
                    _ => Json::null(),
                },
                deleted,
                acks: Vec::new(),
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

/// A catch-up cursor as the [`HELD`] record stores it: a string, or `null` for the beginning.
fn cursor_json(since: &Option<String>) -> Value {
    since.clone().map_or(Value::Null, Value::String)
}

/// The hold of `collection`, if it has one.
fn find<'a>(held: &'a mut [(String, Hold)], collection: &str) -> Option<&'a mut Hold> {
    held.iter_mut()
        .find(|(name, _)| name == collection)
        .map(|(_, hold)| hold)
}
