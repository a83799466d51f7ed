//! Running pulls: on demand, periodically and on focus. The pull state, the page format and the backoff
//! of periodic pulls are in [`crate::pull`].

use std::rc::Rc;

use gloo_timers::callback::Interval;
use serde_json::json;
use wasm_bindgen::prelude::*;

use super::Runtime;
use crate::clock;
use crate::convert;
use crate::error::{Error, Result};
use crate::pull::{parse_page, Page, CURSOR};
use crate::transport::Transport;
use outbox_core::Write as CoreWrite;

impl Runtime {
    /// Fetches server changes since the cursor, page by page, and applies the newer ones.
    pub async fn pull(self: &Rc<Self>) -> Result<JsValue> {
        self.check_usable()?;
        if self.pull.running.replace(true) {
            return Ok(convert::to_js(&json!({ "changes": 0, "skipped": "busy" })));
        }
        let result = self.pull_pages().await;
        self.pull.running.set(false);
        match &result {
            Ok(_) => self.pull.succeeded(),
            Err(_) => self.pull.failed(clock::now()),
        }
        result
    }

    async fn pull_pages(self: &Rc<Self>) -> Result<JsValue> {
        let mut changes = 0usize;
        loop {
            if !self.engine_ref()?.can_send() {
                let status = self.engine_ref()?.status();
                let reason = if !status.online {
                    "offline"
                } else if status.blocked_until.is_some() {
                    "blocked"
                } else {
                    "paused"
                };
                return Ok(convert::to_js(&json!({
                    "changes": changes,
                    "cursor": *self.pull.cursor.borrow(),
                    "skipped": reason,
                })));
            }
            let since = self.pull.cursor.borrow().clone();
            let page = self.fetch_page(since.as_deref()).await?;
            let n = page.docs.len();
            let fx = self.engine_mut()?.ingest(page.docs, clock::now());
            // The documents and the cursor are submitted in the same task: one transaction, so a crash
            // never leaves a cursor that skips changes we did not store.
            let cursor_write = page.cursor.iter().map(|c| CoreWrite::PutMeta {
                key: CURSOR.to_owned(),
                value: c.clone(),
            });
            self.run_with(fx, cursor_write.collect()).await?;
            if page.cursor.is_some() {
                *self.pull.cursor.borrow_mut() = page.cursor;
            }
            changes += n;
            if !page.has_more || n == 0 {
                break;
            }
        }
        Ok(convert::to_js(&json!({
            "changes": changes,
            "cursor": *self.pull.cursor.borrow(),
        })))
    }

    async fn fetch_page(self: &Rc<Self>, since: Option<&str>) -> Result<Page> {
        if let Some(source) = &self.pull.options.source {
            let cursor = since.map_or(JsValue::NULL, JsValue::from_str);
            let page = crate::transport::call_async(source, &cursor)
                .await
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
            .pull(since, self.pull.options.limit)
            .await
            .map_err(Error::PullFailed)?;
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
            .body
            .ok_or_else(|| Error::PullFailed("the pull response is not JSON".into()))?;
        parse_page(&body).map_err(Error::PullFailed)
    }

    pub(super) fn start_periodic_pull(self: &Rc<Self>) {
        let Some(interval) = self.pull.options.interval_ms else {
            return;
        };
        let this = Rc::downgrade(self);
        let timer = Interval::new(interval, move || {
            if let Some(this) = this.upgrade() {
                this.pull_in_background();
            }
        });
        *self.pull.timer.borrow_mut() = Some(timer);
    }

    /// A periodic or on-focus pull: skipped while one runs or while backing off; errors only back off.
    pub(super) fn pull_in_background(self: &Rc<Self>) {
        if self.check_usable().is_err()
            || self.pull.running.get()
            || clock::now() < self.pull.not_before.get()
        {
            return;
        }
        let this = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            let _ = this.pull().await;
        });
    }
}
