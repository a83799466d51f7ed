//! The sync history and health: recording one entry per request and per `drain()`, persisting them, and
//! answering `history()`, `watchHistory()` and `health()`.
//!
//! What an entry says is decided by the core ([`outbox_core::history`], [`outbox_core::health`]); this
//! module only times the attempts, remembers what triggered them, and writes the entries.
//!
//! **Writing never costs the op path.** An entry gets no transaction of its own: recorded entries wait
//! in memory and are appended, after the op writes, to the next group commit that starts anyway
//! ([`super::durable`]). Only when no group commit comes for [`FLUSH_AFTER_MS`] are they written alone,
//! in a transaction whose scope is the history store only, so it never waits for or holds up an op
//! commit; and while that one runs, group commits leave the history out. So entries are batched, a crash
//! may lose the last second of them, and op writes are never delayed or reordered by them. The trimming
//! the bounds call for (one range delete) travels with the entries.
//!
//! The whole bounded history is kept in memory (loaded at open): `health()` is synchronous and cheap,
//! and `history()` answers without a read.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::Function;
use outbox_core::{
    Answer, Attempt, Batch, Config, Effect, HealthConfig, History, HistoryBounds, HistoryEntry,
    HistoryKind, HistoryQuery, OpState, Outcome, Response, Trigger,
};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::{report_error, Runtime};
use crate::clock;
use crate::convert;
use crate::error::{Error, Result};
use crate::options::{Options, TransportOptions};
use crate::store::{StoreError, Write};
use crate::transport::SendOutcome;

/// How long recorded entries wait for a group commit to ride on before they are written alone.
pub(super) const FLUSH_AFTER_MS: u32 = 1_000;

/// Entries recorded but not yet written, and the trim they call for.
#[derive(Default)]
pub(super) struct Unwritten {
    entries: Vec<HistoryEntry>,
    delete_below: Option<u64>,
}

impl Unwritten {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.delete_below.is_none()
    }

    /// The store writes: the entries, then the range delete (which may remove some of them again).
    pub(super) fn writes(&self) -> Vec<Write> {
        let mut writes: Vec<Write> = self
            .entries
            .iter()
            .map(|e| Write::PutHistory {
                id: e.id,
                record: JsValue::from_str(
                    &serde_json::to_string(e).expect("history entries always serialize"),
                ),
            })
            .collect();
        if let Some(id) = self.delete_below {
            writes.push(Write::DeleteHistoryBelow { id });
        }
        writes
    }
}

/// Where requests go, as far as the history names them (URL paths; `None` for the app's own URLs).
struct Endpoints {
    /// The path of `options.endpoint`, without a trailing slash; `None` for a custom transport.
    base: Option<String>,
    /// `batch: true`: sends are pushes.
    push: bool,
    /// A `route` maps ops to the app's URLs.
    routed: bool,
}

/// The history state of one outbox.
pub(super) struct Recorder {
    log: RefCell<History>,
    bounds: HistoryBounds,
    health: HealthConfig,
    /// The engine's classification rules, so an entry's outcome is the engine's.
    config: Config,
    endpoints: Endpoints,
    unwritten: RefCell<Unwritten>,
    flush_timer: RefCell<Option<Timeout>>,
    /// A history-only commit runs: group commits leave the history out meanwhile.
    pub(super) flushing: Cell<bool>,
    watchers: RefCell<Vec<(u32, Function)>>,
    next_watcher: Cell<u32>,
    /// Why the runtime is pumping now; each send remembers the trigger of the call that made it.
    pub(super) trigger: Cell<Trigger>,
    /// The trigger of the pull under way.
    pub(super) pull_trigger: Cell<Trigger>,
    batch_triggers: RefCell<HashMap<u64, Trigger>>,
    /// The response of the pull request under way, for its entry.
    pull_response: RefCell<Option<Response>>,
}

/// The stored history entries (as the restore's read found them) that can be read. An entry that cannot
/// is only history: skipped, never a reason to fail an open.
fn read_entries(stored: Vec<JsValue>) -> Vec<HistoryEntry> {
    stored
        .into_iter()
        .filter_map(|v| v.as_string())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect()
}

impl Recorder {
    /// The recorder of the `stored` history entries, less what is out of bounds (dropped from the store
    /// in the first commit).
    pub(super) fn open(stored: Vec<JsValue>, options: &Options) -> Recorder {
        let (log, cut) = History::restore(read_entries(stored), options.history, clock::now());
        let endpoints = match &options.transport {
            TransportOptions::Fetch(f) => Endpoints {
                base: Some(url_path(&f.endpoint)),
                push: f.batch,
                routed: f.route.is_some(),
            },
            TransportOptions::Custom(_) => Endpoints {
                base: None,
                push: false,
                routed: false,
            },
        };
        Recorder {
            log: RefCell::new(log),
            bounds: options.history,
            health: options.health,
            config: options.engine.clone(),
            endpoints,
            unwritten: RefCell::new(Unwritten {
                entries: Vec::new(),
                delete_below: cut,
            }),
            flush_timer: RefCell::new(None),
            flushing: Cell::new(false),
            watchers: RefCell::new(Vec::new()),
            next_watcher: Cell::new(0),
            trigger: Cell::new(Trigger::Restore),
            pull_trigger: Cell::new(Trigger::Manual),
            batch_triggers: RefCell::new(HashMap::new()),
            pull_response: RefCell::new(None),
        }
    }

    /// Remembers the current trigger for every send among `effects` (before the queue may hold them).
    pub(super) fn note_sends(&self, effects: &[Effect]) {
        let trigger = self.trigger.get();
        for effect in effects {
            if let Effect::Send(batch) = effect {
                self.batch_triggers.borrow_mut().insert(batch.id, trigger);
            }
        }
    }

    /// The trigger a send was made under (once: the batch is leaving).
    pub(super) fn take_trigger(&self, batch: u64) -> Trigger {
        self.batch_triggers
            .borrow_mut()
            .remove(&batch)
            .unwrap_or(self.trigger.get())
    }

    /// Keeps the pull response for the entry of its page.
    pub(super) fn saw_pull_response(&self, response: &Response) {
        *self.pull_response.borrow_mut() = Some(response.clone());
    }

    /// The unwritten entries, for a group commit to carry; empty while a history-only commit runs.
    pub(super) fn take_for_commit(&self) -> Unwritten {
        if self.flushing.get() {
            return Unwritten::default();
        }
        self.flush_timer.borrow_mut().take();
        std::mem::take(&mut *self.unwritten.borrow_mut())
    }

    /// A commit that carried `taken` failed: they wait again, ahead of newer ones, within the bounds.
    pub(super) fn put_back(&self, taken: Unwritten) {
        let mut unwritten = self.unwritten.borrow_mut();
        let mut entries = taken.entries;
        entries.append(&mut unwritten.entries);
        let overflow = entries.len().saturating_sub(self.bounds.max_entries);
        entries.drain(..overflow);
        unwritten.entries = entries;
        unwritten.delete_below = unwritten.delete_below.max(taken.delete_below);
    }
}

impl Runtime {
    /// Takes the history as a re-read of the store found it (`stored`), where another tab (the leader)
    /// wrote its entries: a follower shows them, and a tab that becomes the leader numbers its entries
    /// after them instead of overwriting them. The watchers hear of each entry that is new here. A tab
    /// with entries of its own still to write keeps its history.
    pub(super) fn reload_history(&self, stored: Vec<JsValue>) {
        if !self.history.unwritten.borrow().is_empty() {
            return;
        }
        let stored = read_entries(stored);
        let seen = self
            .history
            .log
            .borrow()
            .entries()
            .next_back()
            .map(|e| e.id);
        let (log, _) = History::restore(stored, self.history.bounds, clock::now());
        let new: Vec<String> = log
            .entries()
            .filter(|e| seen.is_none_or(|seen| e.id > seen))
            .map(|e| serde_json::to_string(e).unwrap_or_default())
            .collect();
        *self.history.log.borrow_mut() = log;
        self.tell_history_watchers(&new);
    }

    /// Calls the `watchHistory` callbacks with each entry (JSON text), in order.
    fn tell_history_watchers(&self, entries: &[String]) {
        let watchers: Vec<Function> = self
            .history
            .watchers
            .borrow()
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        if watchers.is_empty() {
            return;
        }
        for text in entries {
            let js = convert::text_to_js(text);
            for watcher in &watchers {
                if let Err(error) = watcher.call1(&JsValue::UNDEFINED, &js) {
                    report_error(&error);
                }
            }
        }
    }

    /// Records one attempt: into the bounded log, the unwritten buffer, and to the watchers.
    pub(super) fn record(self: &Rc<Self>, attempt: Attempt) {
        let entry = {
            let mut log = self.history.log.borrow_mut();
            let (entry, cut) = log.record(attempt, clock::now());
            let mut unwritten = self.history.unwritten.borrow_mut();
            unwritten.entries.push(entry.clone());
            unwritten.delete_below = unwritten.delete_below.max(cut);
            entry.clone()
        };
        self.arm_history_flush();
        if !self.history.watchers.borrow().is_empty() {
            self.tell_history_watchers(&[serde_json::to_string(&entry).unwrap_or_default()]);
        }
    }

    /// The entry of one send: from when the request left to its answer or timeout.
    pub(super) fn record_send(
        self: &Rc<Self>,
        batch: &Batch,
        trigger: Trigger,
        started_at: u64,
        outcome: &SendOutcome,
    ) {
        let ended_at = clock::now();
        let endpoints = &self.history.endpoints;
        let push = endpoints.push;
        let kind = if push || batch.ops.len() > 1 {
            HistoryKind::Batch
        } else {
            HistoryKind::Send
        };
        let endpoint = match (&endpoints.base, endpoints.routed) {
            (Some(base), _) if push => Some(format!("{base}/push")),
            (Some(base), false) => batch.ops.first().map(|op| {
                let enc = |s: &str| String::from(js_sys::encode_uri_component(s));
                format!("{base}/docs/{}/{}", enc(&op.collection), enc(&op.key))
            }),
            _ => None,
        };
        let answer = match outcome {
            SendOutcome::NoAnswer(reason) => Answer::no_answer(reason),
            SendOutcome::Reply(reply) => {
                let kinds: Vec<_> = batch.ops.iter().map(|op| &op.kind).collect();
                Answer::of_reply(
                    reply,
                    &kinds,
                    &self.history.config,
                    ended_at,
                    clock::wall_now(),
                )
            }
        };
        self.record(Attempt {
            kind,
            trigger,
            started_at,
            ended_at,
            items: batch.ops.len() as u64,
            endpoint,
            answer,
        });
    }

    /// [`Runtime::fetch_page`], recorded as one pull entry.
    pub(super) async fn fetch_page_recorded(
        self: &Rc<Self>,
        since: Option<&str>,
        collections: Option<&[String]>,
    ) -> Result<crate::pull::Page> {
        let started_at = clock::now();
        self.history.pull_response.borrow_mut().take();
        let page = self.fetch_page(since, collections).await;
        let ended_at = clock::now();
        let response = self.history.pull_response.borrow_mut().take();
        let answer = match (&response, &page) {
            (Some(r), _) => Answer::of_pull(r, page.is_ok(), ended_at, clock::wall_now()),
            (None, Ok(_)) => Answer::success(),
            (None, Err(e)) => Answer::failure("pull_failed", &e.to_string()),
        };
        let endpoint = match (&self.pull.options.source, &self.history.endpoints.base) {
            (None, Some(base)) => Some(format!("{base}/pull")),
            _ => None,
        };
        self.record(Attempt {
            kind: HistoryKind::Pull,
            trigger: self.history.pull_trigger.get(),
            started_at,
            ended_at,
            items: page.as_ref().map_or(0, |p| p.docs.len() as u64),
            endpoint,
            answer,
        });
        page
    }

    /// The entry of one `drain()` call: `items` is the ops it settled (acked, failed or in conflict).
    pub(super) fn record_drain(
        self: &Rc<Self>,
        started_at: u64,
        acked: u64,
        retried: u64,
        failed: u64,
        conflicts: u64,
    ) {
        let settled = acked + failed + conflicts;
        let answer = if retried + failed + conflicts == 0 {
            Answer::success()
        } else {
            let message = format!(
                "{acked} acked, {failed} failed, {conflicts} in conflict, {retried} to retry"
            );
            let mut answer = Answer::failure("incomplete", &message);
            if acked > 0 {
                answer.outcome = Outcome::Partial;
            }
            answer
        };
        self.record(Attempt {
            kind: HistoryKind::Drain,
            trigger: Trigger::Manual,
            started_at,
            ended_at: clock::now(),
            items: settled,
            endpoint: None,
            answer,
        });
    }

    /// Entries wait for a group commit; if none comes soon, they are written alone.
    fn arm_history_flush(self: &Rc<Self>) {
        if self.history.flush_timer.borrow().is_some() {
            return;
        }
        let this = Rc::downgrade(self);
        let timer = Timeout::new(FLUSH_AFTER_MS, move || {
            if let Some(this) = this.upgrade() {
                this.history.flush_timer.borrow_mut().take();
                this.flush_history_alone();
            }
        });
        *self.history.flush_timer.borrow_mut() = Some(timer);
    }

    fn flush_history_alone(self: &Rc<Self>) {
        if self.closed.get() || self.history.unwritten.borrow().is_empty() {
            return;
        }
        if !self.durable.queue.borrow().is_idle() || self.history.flushing.get() {
            // A group commit is under way or about to start: it (or the next wait) takes them.
            self.arm_history_flush();
            return;
        }
        let taken = std::mem::take(&mut *self.history.unwritten.borrow_mut());
        self.history.flushing.set(true);
        let this = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            let result = this.store().commit_history(&taken.writes()).await;
            this.history.flushing.set(false);
            if let Err(error) = result {
                this.history.put_back(taken);
                if !matches!(
                    error,
                    StoreError::UpgradeBlocked | StoreError::Closed { .. }
                ) {
                    this.arm_history_flush();
                }
            }
        });
    }

    /// Writes what is unwritten now (at close): the last entries would otherwise wait for a timer that
    /// no longer fires.
    pub(super) async fn flush_history_now(&self) {
        self.history.flush_timer.borrow_mut().take();
        let taken = std::mem::take(&mut *self.history.unwritten.borrow_mut());
        if !taken.is_empty() {
            let _ = self.store().commit_history(&taken.writes()).await;
        }
    }

    /// `history({ limit, since, kind, outcome })`: newest first.
    pub fn history(&self, query: &JsValue) -> Result<JsValue> {
        self.check_open()?;
        let query = parse_query(query)?;
        let log = self.history.log.borrow();
        // One JSON text parsed by the browser: the entries go through the one serializer the stored
        // records need already (a `Value` for each would cost its own code and a copy).
        let list = serde_json::to_string(&log.query(&query)).unwrap_or_default();
        Ok(convert::text_to_js(&list))
    }

    /// `watchHistory(callback)`: returns the watcher's id.
    pub fn watch_history(&self, callback: Function) -> Result<u32> {
        self.check_open()?;
        let id = self.history.next_watcher.get() + 1;
        self.history.next_watcher.set(id);
        self.history.watchers.borrow_mut().push((id, callback));
        Ok(id)
    }

    /// Stops a `watchHistory` watcher.
    pub fn unwatch_history(&self, id: u32) {
        self.history.watchers.borrow_mut().retain(|(i, _)| *i != id);
    }

    /// `health()`, from the history in memory and the engine's counts.
    pub fn health(&self) -> Result<JsValue> {
        self.check_open()?;
        let engine = self.engine_ref()?;
        let status = engine.status();
        let oldest_pending_at = engine
            .ops()
            .filter(|r| {
                matches!(
                    r.state,
                    OpState::Pending | OpState::Backoff | OpState::Inflight
                )
            })
            .map(|r| r.created_at)
            .min();
        let fatal = self
            .fatal
            .borrow()
            .as_ref()
            .map(|e| (e.code(), e.to_string()));
        let storage_error = match (fatal, status.storage_error) {
            (Some((code, message)), _) => Some((code.to_owned(), message)),
            (None, Some(e)) => Some((e.code, e.message)),
            (None, None) => None,
        };
        let inputs = outbox_core::HealthInputs {
            pending: status.pending + status.in_flight,
            oldest_pending_at,
            failed: status.failed + self.quarantined_count(),
            conflicts: status.conflicts,
            unknown: status.unknown,
            blocked_until: status.blocked_until,
            storage_error,
        };
        drop(engine);
        let log = self.history.log.borrow();
        let health =
            outbox_core::health(log.entries(), clock::now(), &inputs, &self.history.health);
        Ok(convert::text_to_js(
            &serde_json::to_string(&health).unwrap_or_default(),
        ))
    }
}

fn parse_query(value: &JsValue) -> Result<HistoryQuery> {
    let mut query = HistoryQuery::default();
    if value.is_undefined() || value.is_null() {
        return Ok(query);
    }
    if !value.is_object() {
        return Err(crate::options::invalid(
            "history() takes an object like { limit, since, kind, outcome }",
        ));
    }
    crate::option_names::check(value, "history()", &["limit", "since", "kind", "outcome"])?;
    let field = |name: &str| crate::options::get(value, name);
    let prefixed = |e: Error| match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(m.replacen("options.", "history().", 1)),
        other => other,
    };
    query.limit = crate::options::number(value, "limit", 1)
        .map_err(prefixed)?
        .map(|n| n as usize);
    query.since = crate::options::number(value, "since", 0)
        .map_err(prefixed)?
        .map(|n| n as u64);
    let named = |name: &str| -> Result<Option<Value>> {
        let v = field(name);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        Ok(Some(Value::String(v.as_string().unwrap_or_default())))
    };
    if let Some(kind) = named("kind")? {
        query.kind = Some(serde_json::from_value(kind).map_err(|_| {
            crate::options::invalid(
                "history().kind must be \"send\", \"batch\", \"pull\" or \"drain\"",
            )
        })?);
    }
    if let Some(outcome) = named("outcome")? {
        query.outcome = Some(serde_json::from_value(outcome).map_err(|_| {
            crate::options::invalid(
                "history().outcome must be \"success\", \"partial\" or \"failure\"",
            )
        })?);
    }
    Ok(query)
}

/// The path of an endpoint URL (absolute, or relative to the page), without a trailing slash.
fn url_path(endpoint: &str) -> String {
    let base = js_sys::Reflect::get(&js_sys::global(), &"location".into())
        .ok()
        .and_then(|l| js_sys::Reflect::get(&l, &"href".into()).ok())
        .and_then(|h| h.as_string());
    let url = match &base {
        Some(base) => web_sys::Url::new_with_base(endpoint, base),
        None => web_sys::Url::new(endpoint),
    };
    url.map(|u| u.pathname())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned()
}
