//! The `Outbox` class exported to JS. A thin shell over [`Runtime`]: argument checking, promise plumbing
//! (through [`panic_guard::promise`], so a panic rejects instead of stranding a promise), and the
//! TypeScript signatures.

use std::rc::Rc;

use js_sys::{Function, Promise};
use outbox_core::OpState;
use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::options::Options;
use crate::panic_guard;
use crate::runtime::{Role, Runtime};

/// An offline-first outbox: a durable queue of changes delivered to the server exactly once.
#[wasm_bindgen]
pub struct Outbox {
    runtime: Rc<Runtime>,
}

#[wasm_bindgen]
impl Outbox {
    /// Opens (or creates) the outbox called `options.name` and restores its queue.
    #[wasm_bindgen(unchecked_return_type = "Promise<Outbox>")]
    pub fn open(
        #[wasm_bindgen(unchecked_param_type = "OutboxOptions")] options: JsValue,
    ) -> Promise {
        panic_guard::promise(async move {
            let options = Options::from_js(&options)?;
            let runtime = Runtime::open(options, Role::Uncoordinated).await?;
            Ok(Outbox { runtime }.into())
        })
    }

    /// `open` in a role among the tabs of the outbox: the package's `tabs.js` elects the leader.
    #[wasm_bindgen(js_name = __openAs, skip_typescript)]
    pub fn open_as(options: JsValue, role: String) -> Promise {
        panic_guard::promise(async move {
            let options = Options::from_js(&options)?;
            let runtime = Runtime::open(options, Role::parse(Some(&role))).await?;
            Ok(Outbox { runtime }.into())
        })
    }

    /// `tabs.js`: the function that posts a message to the other tabs.
    #[wasm_bindgen(js_name = __tabConnect, skip_typescript)]
    pub fn tab_connect(&self, post: Function) {
        self.runtime.tab_connect(post);
    }

    /// `tabs.js`: this tab was elected; it becomes the sender.
    #[wasm_bindgen(js_name = __tabPromote, skip_typescript)]
    pub fn tab_promote(&self) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move {
            runtime.tab_promote().await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `tabs.js`: another tab committed; a follower re-reads the store.
    #[wasm_bindgen(js_name = __tabRefresh, skip_typescript)]
    pub fn tab_refresh(&self) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move {
            runtime.tab_refresh().await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `tabs.js`: the op records another tab committed, and for each the id of the op before it in its
    /// lane there (`after`), from its message; with no `after`, the leader looks in the store for ops no
    /// message told it of.
    #[wasm_bindgen(js_name = __tabAdopt, skip_typescript)]
    pub fn tab_adopt(&self, records: Vec<String>, after: Option<Vec<String>>) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move {
            runtime.tab_adopt(records, after).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `worker.js`: a `sync` event said the network works again.
    #[wasm_bindgen(js_name = __reconnected, skip_typescript)]
    pub fn reconnected(&self) -> Result<(), Error> {
        self.runtime.reconnected()
    }

    /// `tabs.js`: the leader's status, for a follower to show.
    #[wasm_bindgen(js_name = __tabLeaderStatus, skip_typescript)]
    pub fn tab_leader_status(&self, status: JsValue, paused: bool) {
        self.runtime.tab_leader_status(status, paused);
    }

    /// `tabs.js`: the leader posts its status (a new follower asked for it).
    #[wasm_bindgen(js_name = __tabPostStatus, skip_typescript)]
    pub fn tab_post_status(&self) {
        self.runtime.tab_post_status();
    }

    /// `tabs.js`: one of the leader's events, for a follower's listeners.
    #[wasm_bindgen(js_name = __tabRemoteEvent, skip_typescript)]
    pub fn tab_remote_event(&self, event: JsValue) {
        self.runtime.tab_remote_event(event);
    }

    /// Adds a change. The view (`get`, `list`, watchers) shows it before this returns; the promise
    /// resolves with its id and idempotency key once it is durable in IndexedDB.
    #[wasm_bindgen(unchecked_return_type = "Promise<EnqueueResult>")]
    pub fn enqueue(
        &self,
        #[wasm_bindgen(unchecked_param_type = "OpInput")] op: JsValue,
    ) -> Promise {
        match self.runtime.enqueue(op) {
            Ok(durable) => panic_guard::promise(durable),
            Err(error) => Promise::reject(&error.into()),
        }
    }

    /// The document as the user sees it: the server's last confirmed version with pending changes
    /// applied. `undefined` when it does not exist. Synchronous, from memory.
    #[wasm_bindgen(unchecked_return_type = "JsonValue | undefined")]
    pub fn get(&self, collection: &str, key: &str) -> Result<JsValue, Error> {
        self.runtime.get(collection, key)
    }

    /// Every document of a collection as the user sees it, ordered by key. Synchronous, from memory.
    #[wasm_bindgen(unchecked_return_type = "ViewItem[]")]
    pub fn list(&self, collection: &str) -> Result<JsValue, Error> {
        self.runtime.list(collection)
    }

    /// Calls `callback(list)` now, with the collection as it is, and again whenever a document of the
    /// collection changes (enqueue, ack, rollback, conflict, pull). Returns a function that stops
    /// watching.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn watch(
        &self,
        collection: String,
        #[wasm_bindgen(unchecked_param_type = "(items: ViewItem[]) => void")] callback: Function,
    ) -> Result<JsValue, Error> {
        let id = self
            .runtime
            .watch(collection.clone(), None, callback.clone())?;
        self.runtime
            .call_with_current(&callback, self.runtime.list(&collection));
        Ok(self.unwatcher(id))
    }

    /// Calls `callback(value)` now, with the document as it is, and again whenever it changes. Returns a
    /// function that stops watching.
    #[wasm_bindgen(js_name = watchDoc, unchecked_return_type = "() => void")]
    pub fn watch_doc(
        &self,
        collection: String,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "(value: JsonValue | undefined) => void")]
        callback: Function,
    ) -> Result<JsValue, Error> {
        let id = self
            .runtime
            .watch(collection.clone(), Some(key.clone()), callback.clone())?;
        self.runtime
            .call_with_current(&callback, self.runtime.get(&collection, &key));
        Ok(self.unwatcher(id))
    }

    /// Feeds documents the app loaded by its own means; newer versions replace what is known.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn ingest(
        &self,
        collection: String,
        #[wasm_bindgen(unchecked_param_type = "IngestDoc[]")] docs: JsValue,
    ) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move {
            runtime
                .ingest(collection, docs)
                .await
                .map(|()| JsValue::UNDEFINED)
        })
    }

    /// Fetches server changes since the last pull and applies the newer ones.
    #[wasm_bindgen(unchecked_return_type = "Promise<PullReport>")]
    pub fn pull(&self) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.pull().await })
    }

    /// Holds back the pulled changes of `collection` (none: stops pulling) until `resumePull`.
    #[wasm_bindgen(js_name = pausePull)]
    pub fn pause_pull(&self, collection: Option<String>) -> Result<(), Error> {
        self.runtime.pause_pull(collection.as_deref())
    }

    /// Lifts `pausePull(collection)` (none: every pause) and pulls, so every held change arrives.
    #[wasm_bindgen(js_name = resumePull, unchecked_return_type = "Promise<PullReport>")]
    pub fn resume_pull(&self, collection: Option<String>) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.resume_pull(collection.as_deref()).await })
    }

    /// `"all"` after `pausePull()`, else the collections paused by name.
    #[wasm_bindgen(js_name = pullPaused, unchecked_return_type = "string[] | \"all\"")]
    pub fn pull_paused(&self) -> Result<JsValue, Error> {
        self.runtime.pull_paused()
    }

    /// Settles an op held in conflict: keep the server's version, resend yours, or send a merge.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn resolve(
        &self,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "Resolution")] resolution: JsValue,
    ) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move {
            runtime
                .resolve(&id, resolution)
                .await
                .map(|()| JsValue::UNDEFINED)
        })
    }

    /// Registers how a custom op changes the view: `apply(current, value)` returns the new document
    /// (or `undefined` for no change). It must be pure: it runs again whenever the view is rebuilt.
    #[wasm_bindgen(js_name = registerMutation)]
    pub fn register_mutation(
        &self,
        name: String,
        #[wasm_bindgen(
            unchecked_param_type = "(current: JsonValue | undefined, value: JsonValue) => JsonValue | undefined"
        )]
        apply: Function,
    ) -> Result<(), Error> {
        self.runtime.register_mutation(name, apply)
    }

    /// Sends everything sendable now; resolves when nothing is in flight, with what happened.
    #[wasm_bindgen(unchecked_return_type = "Promise<DrainReport>")]
    pub fn drain(&self) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.drain().await })
    }

    /// The current sync status.
    #[wasm_bindgen(unchecked_return_type = "SyncStatus")]
    pub fn status(&self) -> Result<JsValue, Error> {
        self.runtime.status()
    }

    /// The sync history, newest first: one entry per request and per `drain()` call, kept within
    /// `options.history`'s bounds across reloads.
    #[wasm_bindgen(unchecked_return_type = "Promise<HistoryEntry[]>")]
    pub fn history(
        &self,
        #[wasm_bindgen(unchecked_param_type = "HistoryQuery")] query: JsValue,
    ) -> Promise {
        match self.runtime.history(&query) {
            Ok(list) => Promise::resolve(&list),
            Err(error) => Promise::reject(&error.into()),
        }
    }

    /// Calls `callback(entry)` for each new history entry. Returns a function that stops watching.
    #[wasm_bindgen(js_name = watchHistory, unchecked_return_type = "() => void")]
    pub fn watch_history(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(entry: HistoryEntry) => void")] callback: Function,
    ) -> Result<JsValue, Error> {
        let id = self.runtime.watch_history(callback)?;
        let runtime = Rc::downgrade(&self.runtime);
        Ok(Closure::<dyn FnMut()>::new(move || {
            if let Some(runtime) = runtime.upgrade() {
                runtime.unwatch_history(id);
            }
        })
        .into_js_value())
    }

    /// How syncing goes, derived from the history in memory: synchronous and cheap.
    #[wasm_bindgen(unchecked_return_type = "Health")]
    pub fn health(&self) -> Result<JsValue, Error> {
        self.runtime.health()
    }

    /// Calls `callback(status)` now, with the current status, and on every status change. Returns a
    /// function that unsubscribes.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(status: SyncStatus) => void")] callback: Function,
    ) -> Result<JsValue, Error> {
        let id = self.runtime.listen(None, callback.clone())?;
        self.runtime
            .call_with_current(&callback, self.runtime.status());
        Ok(self.unsubscriber(id))
    }

    /// Calls `callback(event)` for every event of this type (`"*"` for all). Returns a function that
    /// unsubscribes.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SyncEventType | \"*\"")] event: String,
        #[wasm_bindgen(unchecked_param_type = "(event: SyncEvent) => void")] callback: Function,
    ) -> Result<JsValue, Error> {
        let id = self.runtime.listen(Some(event), callback)?;
        Ok(self.unsubscriber(id))
    }

    /// Ops waiting to be sent or in flight, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<OpSnapshot[]>")]
    pub fn pending(&self) -> Promise {
        self.snapshot(&[OpState::Pending, OpState::Backoff, OpState::Inflight])
    }

    /// Ops the server refused for good (or whose retries ran out). Each halts its entity's lane.
    #[wasm_bindgen(unchecked_return_type = "Promise<OpSnapshot[]>")]
    pub fn failed(&self) -> Promise {
        self.snapshot(&[OpState::Failed])
    }

    /// Ops held in conflict with a newer server version. Each halts its entity's lane.
    #[wasm_bindgen(unchecked_return_type = "Promise<OpSnapshot[]>")]
    pub fn conflicts(&self) -> Promise {
        self.snapshot(&[OpState::Conflict])
    }

    /// Ops whose outcome can no longer be known: they may have been applied, and the server has
    /// forgotten their idempotency key, so resending could apply them twice. Each halts its entity's
    /// lane until the app decides: `resolve` it against the server's current document (`serverDoc`),
    /// `discard` it, or `retry` it knowing it may apply twice.
    #[wasm_bindgen(unchecked_return_type = "Promise<OpSnapshot[]>")]
    pub fn unknown(&self) -> Promise {
        self.snapshot(&[OpState::Unknown])
    }

    /// Sends a failed, conflicted or backing-off op again now. This is the user's explicit intent, so
    /// it also lifts a wait the server asked for (`Retry-After`, a rate limit's reset); `drain()` and
    /// automatic resends never do.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn retry(&self, id: String) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.retry(&id).await.map(|()| JsValue::UNDEFINED) })
    }

    /// Sends every failed, conflicted and backing-off op again now, lifting a server's requested wait
    /// as `retry` does. Ops of unknown outcome are left alone (see `unknown()`).
    #[wasm_bindgen(js_name = retryAll, unchecked_return_type = "Promise<void>")]
    pub fn retry_all(&self) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.retry_all().await.map(|()| JsValue::UNDEFINED) })
    }

    /// Removes an op for good (it will never be sent). Resolves once that is durable.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn discard(&self, id: String) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.discard(&id).await.map(|()| JsValue::UNDEFINED) })
    }

    /// Stops sending. Changes are still accepted and stored.
    pub fn pause(&self) -> Result<(), Error> {
        self.runtime.pause()
    }

    /// Starts sending again.
    pub fn resume(&self) -> Result<(), Error> {
        self.runtime.resume()
    }

    /// Stops the outbox and closes its database. Unsent ops stay stored for the next open.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.close().await.map(|()| JsValue::UNDEFINED) })
    }

    /// Test hook: the next `n` commits fail as a disk error would.
    #[doc(hidden)]
    #[wasm_bindgen(js_name = __failCommits, skip_typescript)]
    pub fn fail_commits(&self, n: u32) {
        self.runtime.store().fail_commits_for_test(n);
    }

    /// Test hook: the number of readwrite transactions committed since open.
    #[doc(hidden)]
    #[wasm_bindgen(js_name = __transactionsCommitted, skip_typescript)]
    pub fn transactions_committed(&self) -> f64 {
        self.runtime.store().transactions_committed() as f64
    }

    /// Test hook: panics, to prove a panic becomes `SyncError { code: "INTERNAL" }` and nothing hangs.
    #[doc(hidden)]
    #[wasm_bindgen(js_name = __panicForTest, skip_typescript)]
    pub fn panic_for_test(&self) {
        panic_guard::panic_for_test();
    }

    fn snapshot(&self, states: &'static [OpState]) -> Promise {
        let runtime = Rc::clone(&self.runtime);
        panic_guard::promise(async move { runtime.ops_in(states) })
    }

    fn unwatcher(&self, id: u32) -> JsValue {
        let runtime = Rc::downgrade(&self.runtime);
        Closure::<dyn FnMut()>::new(move || {
            if let Some(runtime) = runtime.upgrade() {
                runtime.unwatch(id);
            }
        })
        .into_js_value()
    }

    fn unsubscriber(&self, id: u32) -> JsValue {
        let runtime = Rc::downgrade(&self.runtime);
        Closure::<dyn FnMut()>::new(move || {
            if let Some(runtime) = runtime.upgrade() {
                runtime.unlisten(id);
            }
        })
        .into_js_value()
    }
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");
