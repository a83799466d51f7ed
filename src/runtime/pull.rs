//! Running pulls: on demand, periodically and on focus. The pull state, the page format and the backoff
//! of periodic pulls are in [`crate::pull`].

use std::rc::Rc;

use gloo_timers::callback::Interval;
use js_sys::Promise;
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::Runtime;
use crate::clock;
use crate::convert;
use crate::error::{Error, Result};
use crate::pull::{parse_page, Page, Progress, CURSOR, HELD};
use crate::transport::Transport;
use outbox_core::{Trigger, Write as CoreWrite};

impl Runtime {
    /// Fetches server changes since the cursor, page by page, and applies the newer ones.
    pub async fn pull(self: &Rc<Self>) -> Result<JsValue> {
        self.pull_as(Trigger::Manual).await
    }

    /// [`Runtime::pull`], its pages recorded in the history under `trigger`.
    async fn pull_as(self: &Rc<Self>, trigger: Trigger) -> Result<JsValue> {
        self.check_usable()?;
        if self.pull.running.replace(true) {
            return Ok(convert::to_js(&json!({ "changes": 0, "skipped": "busy" })));
        }
        self.history.pull_trigger.set(trigger);
        let result = self.pull_pages().await;
        self.pull.running.set(false);
        match &result {
            Ok(_) => self.pull.succeeded(),
            Err(_) => self.pull.failed(clock::now()),
        }
        result
    }

    /// Why no pull may start now, if one may not.
    fn pull_gate(&self) -> Result<Option<&'static str>> {
        if self.pull.all_paused.get() {
            return Ok(Some("pullPaused"));
        }
        let engine = self.engine_ref()?;
        if engine.can_send() {
            return Ok(None);
        }
        let status = engine.status();
        Ok(Some(if !status.online {
            "offline"
        } else if status.blocked_until.is_some() {
            "blocked"
        } else {
            "paused"
        }))
    }

    fn pull_report(&self, changes: usize, skipped: Option<&str>) -> JsValue {
        let mut report = json!({ "changes": changes, "cursor": *self.pull.cursor.borrow() });
        if let Some(reason) = skipped {
            report["skipped"] = json!(reason);
        }
        convert::to_js(&report)
    }

    /// The shared pull, then the catch-up of every resumed collection. Catch-ups come last so that a
    /// collection resumed while this pull runs is caught up before it ends.
    async fn pull_pages(self: &Rc<Self>) -> Result<JsValue> {
        let mut changes = 0usize;
        loop {
            if let Some(reason) = self.pull_gate()? {
                return Ok(self.pull_report(changes, Some(reason)));
            }
            let since = self.pull.cursor.borrow().clone();
            let filter = self.pull.options.collections.clone();
            let page = self
                .fetch_page_recorded(since.as_deref(), filter.as_deref())
                .await?;
            let (n, has_more) = (page.docs.len(), page.has_more);
            // Paused collections are dropped here, at apply time: a pause that came while the page was
            // under way still holds, and the cursor it recorded covers this page.
            let docs: Vec<_> = page
                .docs
                .into_iter()
                .filter(|d| self.pull.applies(&d.collection))
                .collect();
            changes += docs.len();
            let mut meta: Vec<CoreWrite> = Vec::new();
            if let Some(c) = &page.cursor {
                meta.push(put_meta(CURSOR, c.clone()));
            }
            // The catch-up cursors go with the cursor that moves past them, in the same commit.
            if !self.pull.held.borrow().is_empty() {
                meta.push(put_meta(HELD, self.pull.held_record(None)));
            }
            let fx = self.engine_mut()?.ingest(docs, clock::now());
            // The documents and the cursor are submitted in the same task: one transaction, so a crash
            // never leaves a cursor that skips changes we did not store.
            self.run_with(fx, meta).await?;
            if page.cursor.is_some() {
                *self.pull.cursor.borrow_mut() = page.cursor;
            }
            if !has_more || n == 0 {
                break;
            }
        }
        while let Some((collection, since)) = self.pull.owed() {
            if let Some(reason) = self.pull_gate()? {
                return Ok(self.pull_report(changes, Some(reason)));
            }
            changes += self.catch_up_page(&collection, since).await?;
        }
        Ok(self.pull_report(changes, None))
    }

    /// One page of `collection` alone from its catch-up cursor; returns how many changes it applied.
    async fn catch_up_page(
        self: &Rc<Self>,
        collection: &str,
        since: Option<String>,
    ) -> Result<usize> {
        let filter = [collection.to_owned()];
        let configured = self.pull.applies(collection);
        let (docs, progress) = if configured {
            let page = self
                .fetch_page_recorded(since.as_deref(), Some(&filter))
                .await?;
            let done = !page.has_more || page.docs.is_empty();
            // A source that ignores the filter still only catches this collection up.
            let docs: Vec<_> = page
                .docs
                .into_iter()
                .filter(|d| d.collection == collection)
                .collect();
            let progress = if done {
                Progress::Done
            } else {
                Progress::To(page.cursor.or(since))
            };
            (docs, progress)
        } else {
            // Paused, then left out of `pull.collections` (or paused again): nothing to fetch.
            (Vec::new(), Progress::Done)
        };
        let n = docs.len();
        let record = put_meta(HELD, self.pull.held_record(Some((collection, &progress))));
        let fx = self.engine_mut()?.ingest(docs, clock::now());
        self.run_with(fx, vec![record]).await?;
        self.pull.caught_up(collection, progress);
        Ok(n)
    }

    pub(super) async fn fetch_page(
        self: &Rc<Self>,
        since: Option<&str>,
        collections: Option<&[String]>,
    ) -> Result<Page> {
        if let Some(source) = &self.pull.options.source {
            let cursor = since.map_or(JsValue::NULL, JsValue::from_str);
            let filter = convert::to_js(&json!({ "collections": collections }));
            // The filter is a second argument: a source that ignores it is still correct (the
            // runtime drops what it did not ask for), only wasteful.
            let called = source
                .call2(&JsValue::UNDEFINED, &cursor, &filter)
                .map(|page| JsFuture::from(Promise::resolve(&page)));
            let page = match called {
                Ok(pending) => pending.await,
                Err(e) => Err(e),
            }
            .map_err(|e| {
                Error::PullFailed(format!(
                    "options.pull.source threw: {}",
                    convert::message(&e)
                ))
            })?;
            let page = convert::from_js(&page, usize::MAX).map_err(|_| {
                Error::PullFailed("options.pull.source must resolve to JSON".into())
            })?;
            return parse_page(&page).map_err(Error::PullFailed);
        }
        let Transport::Fetch(fetch) = &self.transport else {
            return Err(Error::InvalidConfig(
                "pull() needs options.endpoint or options.pull.source".into(),
            ));
        };
        let response = fetch
            .pull(since, self.pull.options.limit, collections)
            .await
            .map_err(Error::PullFailed)?;
        self.history.saw_pull_response(&response);
        let fx = self
            .engine_mut()?
            .observe(&response, clock::now(), clock::wall_now());
        self.run_in_background(fx);
        if response.status != 200 {
            return Err(Error::PullFailed(format!(
                "the server answered HTTP {}",
                response.status
            )));
        }
        let body = response
            .body_value()
            .ok_or_else(|| Error::PullFailed("the pull response is not JSON".into()))?;
        parse_page(&body).map_err(Error::PullFailed)
    }

    /// `pausePull(collection?)`: holds a collection's pulled changes back (`None`: stops pulling).
    pub fn pause_pull(&self, collection: Option<&str>) -> Result<()> {
        self.check_usable()?;
        self.pull.pause(collection);
        Ok(())
    }

    /// `resumePull(collection?)`: lifts the pause, then pulls at once so the held changes arrive.
    pub async fn resume_pull(self: &Rc<Self>, collection: Option<&str>) -> Result<JsValue> {
        self.check_usable()?;
        self.pull.resume(collection);
        self.pull().await
    }

    /// `pullPaused()`: `"all"`, or the paused collections by name.
    pub fn pull_paused(&self) -> Result<JsValue> {
        self.check_open()?;
        Ok(match self.pull.paused() {
            None => JsValue::from_str("all"),
            Some(names) => convert::to_js(&json!(names)),
        })
    }

    pub(super) fn start_periodic_pull(self: &Rc<Self>) {
        let Some(interval) = self.pull.options.interval_ms else {
            return;
        };
        let this = Rc::downgrade(self);
        let timer = Interval::new(interval, move || {
            if let Some(this) = this.upgrade() {
                this.pull_in_background(Trigger::PullInterval);
            }
        });
        *self.pull.timer.borrow_mut() = Some(timer);
    }

    /// A periodic or on-focus pull: skipped while one runs or while backing off; errors only back off.
    pub(super) fn pull_in_background(self: &Rc<Self>, trigger: Trigger) {
        if self.check_usable().is_err()
            || self.tabs.role.get() == super::Role::Follower
            || self.pull.running.get()
            || clock::now() < self.pull.not_before.get()
        {
            return;
        }
        let this = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            let _ = this.pull_as(trigger).await;
        });
    }
}

fn put_meta(key: &str, value: String) -> CoreWrite {
    CoreWrite::PutMeta {
        key: key.to_owned(),
        value,
    }
}
