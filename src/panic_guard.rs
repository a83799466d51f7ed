//! Panics never leave the engine half-working.
//!
//! The release build aborts on panic, which traps the wasm instance: whatever Rust was doing stops, and
//! any promise waiting on Rust would never settle. So a panic hook, which runs before the trap:
//! - records the panic, after which every call fails fast with `SyncError { code: "INTERNAL" }`;
//! - rejects every promise the API has handed out and not yet settled, with that same error.
//!
//! The queue itself is safe: IndexedDB transactions commit whole or not at all, so a reload restores
//! exactly what was durable.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;

use crate::error::Error;

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The reject functions of the promises not yet settled, oldest first (promises mostly settle in
    /// the order they were made, so the one to remove is found near the front).
    static UNSETTLED: RefCell<(u64, VecDeque<(u64, Function)>)> = const { RefCell::new((0, VecDeque::new())) };
}

/// Installs the hook. Called once when the module starts.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        #[cfg(feature = "debug-panic-hook")]
        console_error_panic_hook::hook(info);
        let message = info.to_string();
        PANIC.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.get_or_insert(message.clone());
            }
        });
        let rejecters = UNSETTLED.with(|u| {
            u.try_borrow_mut()
                .map(|mut u| std::mem::take(&mut u.1))
                .unwrap_or_default()
        });
        let error: JsValue = Error::Internal(message).into();
        for (_, reject) in &rejecters {
            let _ = reject.call1(&JsValue::UNDEFINED, &error);
        }
    }));
}

/// Fails with `INTERNAL` once a panic has happened.
pub fn check() -> Result<(), Error> {
    PANIC.with(|p| match &*p.borrow() {
        Some(message) => Err(Error::Internal(message.clone())),
        None => Ok(()),
    })
}

/// Runs `future` and returns a promise of its result that a panic rejects rather than strands.
pub fn promise<F>(future: F) -> Promise
where
    F: Future<Output = Result<JsValue, Error>> + 'static,
{
    // One boxed copy of the promise plumbing instead of one per exported method: most of the generic
    // code the exports would otherwise duplicate in the wasm.
    promise_boxed(Box::pin(future))
}

fn promise_boxed(future: Pin<Box<dyn Future<Output = Result<JsValue, Error>>>>) -> Promise {
    if let Err(e) = check() {
        return Promise::reject(&e.into());
    }
    let mut future = Some(future);
    Promise::new(&mut |resolve, reject| {
        let id = UNSETTLED.with(|u| {
            let mut u = u.borrow_mut();
            u.0 += 1;
            let id = u.0;
            u.1.push_back((id, reject.clone()));
            id
        });
        let future = future.take().expect("the executor runs once");
        wasm_bindgen_futures::spawn_local(async move {
            let result = future.await;
            let still_unsettled = UNSETTLED.with(|u| {
                let mut u = u.borrow_mut();
                let at = u.1.iter().position(|(unsettled, _)| *unsettled == id);
                at.and_then(|at| u.1.remove(at)).is_some()
            });
            if still_unsettled {
                let _ = match result {
                    Ok(value) => resolve.call1(&JsValue::UNDEFINED, &value),
                    Err(error) => reject.call1(&JsValue::UNDEFINED, &error.into()),
                };
            }
        });
    })
}

/// Panics on purpose. A test hook for the panic path; never called by the library.
#[doc(hidden)]
pub fn panic_for_test() {
    panic!("deliberate panic for a test");
}
