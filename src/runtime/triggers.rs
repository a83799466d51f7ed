//! Triggers: the DOM events that wake the engine (`online`, `offline`, `visibilitychange`), and removing
//! their listeners again.

use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use outbox_core::Trigger;

use super::Runtime;
use crate::clock;

/// A DOM event listener the runtime added, kept to remove it on close.
pub(super) struct DomListener {
    target: web_sys::EventTarget,
    event: &'static str,
    _closure: Closure<dyn FnMut()>,
}

impl Runtime {
    pub(super) fn install_triggers(self: &Rc<Self>) {
        let global = js_sys::global();
        if let Ok(window) = global.clone().dyn_into::<web_sys::Window>() {
            self.listen_dom(window.clone().into(), "online", |rt| {
                rt.history.trigger.set(Trigger::Online);
                let fx = rt.engine.borrow_mut().set_online(true, clock::now());
                rt.run_in_background(fx);
            });
            self.listen_dom(window.clone().into(), "offline", |rt| {
                let fx = rt.engine.borrow_mut().set_online(false, clock::now());
                rt.run_in_background(fx);
            });
            if let Some(document) = window.document() {
                let doc = document.clone();
                self.listen_dom(document.into(), "visibilitychange", move |rt| {
                    if doc.visibility_state() != web_sys::VisibilityState::Visible {
                        return;
                    }
                    if rt.pull.options.on_focus {
                        rt.pull_in_background(Trigger::Focus);
                    }
                    if rt.auto_drain {
                        rt.history.trigger.set(Trigger::Focus);
                        rt.flush_confirmations();
                        let fx = rt.engine.borrow_mut().drain(clock::now());
                        rt.run_in_background(fx);
                    }
                });
            }
        }
    }

    fn listen_dom(
        self: &Rc<Self>,
        target: web_sys::EventTarget,
        event: &'static str,
        handler: impl Fn(&Rc<Runtime>) + 'static,
    ) {
        let this: Weak<Runtime> = Rc::downgrade(self);
        let closure = Closure::<dyn FnMut()>::new(move || {
            if let Some(rt) = this.upgrade() {
                if rt.check_usable().is_ok() {
                    handler(&rt);
                }
            }
        });
        if target
            .add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())
            .is_ok()
        {
            self.dom.borrow_mut().push(DomListener {
                target,
                event,
                _closure: closure,
            });
        }
    }

    pub(super) fn remove_dom_listeners(&self) {
        for listener in self.dom.borrow_mut().drain(..) {
            let _ = listener.target.remove_event_listener_with_callback(
                listener.event,
                listener._closure.as_ref().unchecked_ref(),
            );
        }
    }
}

pub(super) fn navigator_online() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .ok()
        .and_then(|n| js_sys::Reflect::get(&n, &"onLine".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}
