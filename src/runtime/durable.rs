//! Making the engine's writes durable, in order, and letting each request leave only after them.
//!
//! The order itself is decided by the core's [`EffectQueue`] (the simulator drives the same one); this
//! module is its I/O: it commits the queue's groups to IndexedDB one transaction at a time, starts the
//! sends each commit releases, confirms the enqueues it made durable, and answers the futures of the
//! app's commands.
//!
//! - Every write accepted while storage is idle, up to the end of the current JS task, shares one
//!   transaction (group commit: 1,000 enqueues in a loop are one commit); writes accepted while a commit
//!   runs form the next one.
//! - A failed commit rejects the enqueues it carried (their promises reject, the engine abandons the ops
//!   and their view rolls back) and keeps every other write for a retry with backoff, ahead of newer
//!   ones. Meanwhile the engine is told storage fails: it sends nothing, and the status says `stalled`.
//! - `DB_UPGRADE_BLOCKED` (another tab upgraded the schema) can never recover: nothing is committed or
//!   sent any more, and every waiting command rejects with it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures_channel::oneshot;
use gloo_timers::callback::Timeout;
use outbox_core::{EffectQueue, Group, OpId, StorageError as CoreStorageError, Write as CoreWrite};
use wasm_bindgen::JsValue;

use super::Runtime;
use crate::clock;
use crate::error::Error;
use crate::store::{StoreError, Write};

/// The longest wait between two attempts to commit a failed group.
const MAX_RETRY_MS: u32 = 5_000;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// The commit state of one outbox.
#[derive(Default)]
pub(super) struct Durable {
    pub(super) queue: RefCell<EffectQueue>,
    /// Futures of commands waiting for a group to be durable, with the group's id (a list: there are few,
    /// and a map type of its own would cost the wasm more than it saves).
    waiters: RefCell<Vec<(u64, Waiter)>>,
    /// Futures of enqueues, answered by the commit that made their op durable or rejected it.
    enqueues: RefCell<HashMap<OpId, Waiter>>,
    /// A commit loop is running (or scheduled): at most one at a time, so groups land in order.
    flushing: Cell<bool>,
    retry_timer: RefCell<Option<Timeout>>,
    /// Storage can never be written again (`DB_UPGRADE_BLOCKED`).
    dead: RefCell<Option<StoreError>>,
}

impl Durable {
    pub(super) fn new() -> Durable {
        Durable {
            queue: RefCell::new(EffectQueue::new()),
            ..Durable::default()
        }
    }
}

impl Runtime {
    /// A future that resolves once group `group` is durable (immediately for `None`).
    pub(super) fn durable(
        self: &Rc<Self>,
        group: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + 'static {
        let wait = group.map(|id| {
            let (done, wait) = oneshot::channel();
            if let Some(error) = self.durable.dead.borrow().clone() {
                let _ = done.send(Err(error));
            } else if self.durable.queue.borrow().durable_through() >= id {
                let _ = done.send(Ok(()));
            } else {
                self.durable.waiters.borrow_mut().push((id, done));
            }
            wait
        });
        async move {
            match wait {
                None => Ok(()),
                Some(wait) => wait
                    .await
                    .unwrap_or(Err(StoreError::Closed { cause: None })),
            }
        }
    }

    /// A future for the enqueue of `id`: resolves when the commit that carries its record succeeds,
    /// fails with that commit's error when it fails.
    pub(super) fn enqueue_durable(
        &self,
        id: OpId,
    ) -> impl Future<Output = Result<(), StoreError>> + 'static {
        let (done, wait) = oneshot::channel();
        self.durable.enqueues.borrow_mut().insert(id, done);
        async move {
            wait.await
                .unwrap_or(Err(StoreError::Closed { cause: None }))
        }
    }

    /// This tab's enqueues whose commit has not landed yet.
    pub(super) fn unstored_enqueues(&self) -> Vec<OpId> {
        self.durable.enqueues.borrow().keys().copied().collect()
    }

    /// Starts the commit loop after the current task, unless it runs already.
    pub(super) fn schedule_commit(self: &Rc<Self>) {
        if self.durable.flushing.replace(true) {
            return;
        }
        let this = Rc::clone(self);
        // spawn_local runs from the microtask queue, after the current task's synchronous code: every
        // write of this task joins the group.
        wasm_bindgen_futures::spawn_local(async move { this.commit_loop().await });
    }

    async fn commit_loop(self: Rc<Self>) {
        loop {
            if self.closed.get() || self.durable.dead.borrow().is_some() {
                break;
            }
            let Some(group) = self.durable.queue.borrow_mut().begin_commit() else {
                break;
            };
            let mut writes: Vec<Write> = group.writes.iter().map(encode).collect();
            // History entries ride along, after every op write: no transaction of their own, and
            // nothing of the group's order changes (src/runtime/history.rs). Not while commits fail:
            // a retry must not grow (a full disk) for their sake.
            let history = match self.durable.queue.borrow().failures() {
                0 => self.history.take_for_commit(),
                _ => Default::default(),
            };
            writes.extend(history.writes());
            let result = self.store().commit(&writes).await;
            if self.closed.get() {
                break;
            }
            match result {
                Ok(()) => {
                    let stored = self.committed(group.id);
                    self.tab_committed(&writes, group.writes.len(), &stored);
                }
                Err(error) => {
                    self.history.put_back(history);
                    // The loop stays "running" through the backoff: the retry timer resumes it, and
                    // writes made meanwhile join the group that retries.
                    self.commit_failed(group, error);
                    return;
                }
            }
        }
        self.durable.flushing.set(false);
    }

    /// Releases what waited for group `id`; returns the ops it stored for the first time.
    fn committed(self: &Rc<Self>, id: u64) -> Vec<OpId> {
        let done = self.durable.queue.borrow_mut().commit_succeeded(id);
        let through = done.durable_through;
        let ready: Vec<Waiter> = {
            let mut waiters = self.durable.waiters.borrow_mut();
            let (ready, later) = std::mem::take(&mut *waiters)
                .into_iter()
                .partition(|(group, _)| *group <= through);
            *waiters = later;
            ready.into_iter().map(|(_, waiter)| waiter).collect()
        };
        for waiter in ready {
            let _ = waiter.send(Ok(()));
        }
        for op in &done.stored {
            if let Some(waiter) = self.durable.enqueues.borrow_mut().remove(op) {
                let _ = waiter.send(Ok(()));
            }
            self.queue_confirmation(*op);
        }
        for batch in done.sends {
            self.start_send(batch);
        }
        if self.engine.borrow().status().storage_error.is_some() {
            let fx = self.engine.borrow_mut().storage_recovered(clock::now());
            self.run_in_background(fx);
        }
        done.stored
    }

    fn commit_failed(self: &Rc<Self>, group: Group, error: StoreError) {
        let rejected = self.durable.queue.borrow_mut().commit_failed(group);
        for op in &rejected {
            if let Some(waiter) = self.durable.enqueues.borrow_mut().remove(op) {
                let _ = waiter.send(Err(error.clone()));
            }
        }
        // Nothing of theirs was written: take them back out, which also rolls their view back. The
        // engine's Delete for each cancels any later write of their records still queued.
        let fx = self
            .engine
            .borrow_mut()
            .abandon_unstored(&rejected, clock::now());
        self.run_in_background(fx);
        self.stall(&error);
        if matches!(error, StoreError::UpgradeBlocked) {
            self.storage_dead(error);
            return;
        }
        if rejected.is_empty() {
            // No enqueue's promise tells the app: the console does.
            self.note_storage_error(&Error::from(error));
        }
        let failures = self.durable.queue.borrow().failures();
        let delay = (50u32 << failures.min(7)).min(MAX_RETRY_MS);
        let this = Rc::downgrade(self);
        let timer = Timeout::new(delay, move || {
            if let Some(this) = this.upgrade() {
                this.durable.retry_timer.borrow_mut().take();
                wasm_bindgen_futures::spawn_local(async move { this.commit_loop().await });
            }
        });
        *self.durable.retry_timer.borrow_mut() = Some(timer);
    }

    /// Tells the engine storage fails: it sends nothing until a commit succeeds.
    fn stall(self: &Rc<Self>, error: &StoreError) {
        let error = CoreStorageError {
            code: error.code().to_owned(),
            message: error.to_string(),
        };
        let fx = self.engine.borrow_mut().storage_failed(error, clock::now());
        self.run_in_background(fx);
    }

    /// Storage is gone for good: every waiting command fails, nothing is committed or sent again.
    pub(super) fn storage_dead(self: &Rc<Self>, error: StoreError) {
        if self.durable.dead.borrow().is_some() {
            return;
        }
        *self.durable.dead.borrow_mut() = Some(error.clone());
        for (_, waiter) in std::mem::take(&mut *self.durable.waiters.borrow_mut()) {
            let _ = waiter.send(Err(error.clone()));
        }
        for (_, waiter) in self.durable.enqueues.borrow_mut().drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        self.stall(&error);
        self.note_storage_error(&Error::from(error));
    }
}

/// A core write as the store takes it: records as JSON text (what a reload parses back).
fn encode(write: &CoreWrite) -> Write {
    match write {
        CoreWrite::PutOp(record) => Write::PutOp {
            id: record.id.to_string(),
            record: JsValue::from_str(
                &serde_json::to_string(record).expect("op records always serialize"),
            ),
        },
        CoreWrite::DeleteOp(id) => Write::DeleteOp { id: id.to_string() },
        CoreWrite::PutDoc(doc) => Write::PutDoc {
            collection: doc.collection.clone(),
            key: doc.key.clone(),
            record: JsValue::from_str(
                &serde_json::to_string(doc).expect("documents always serialize"),
            ),
        },
        CoreWrite::PutMeta { key, value } => Write::PutMeta {
            key: key.clone(),
            value: JsValue::from_str(value),
        },
        CoreWrite::DeleteMeta { key } => Write::DeleteMeta { key: key.clone() },
    }
}
