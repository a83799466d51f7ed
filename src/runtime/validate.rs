//! The app's validators (`collections.<name>.validate`), run at enqueue on the document the op would
//! produce: a put's value, or a patch merged onto the current view document. Deletes and custom ops are
//! not validated (there is no document to check, or only the app's mutation function knows it).

use outbox_core::{NewOp, OpKind};
use wasm_bindgen::prelude::*;

use super::Runtime;
use crate::convert;
use crate::error::{Error, Result};

#[wasm_bindgen(module = "/src/js/validate.js")]
extern "C" {
    /// `null` when valid, else `{ message, config }` (`src/js/validate.js`).
    #[wasm_bindgen(js_name = runValidator)]
    fn run_validator(validator: &JsValue, doc: &JsValue) -> JsValue;
    /// Whether a value is a function or a Standard Schema.
    #[wasm_bindgen(js_name = isValidator)]
    pub(crate) fn is_validator(value: &JsValue) -> bool;
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("../standard-schema.d.ts");

impl Runtime {
    /// Refuses `op` (whose value the app gave as `given`) when its collection's validator says no.
    pub(super) fn validate(&self, op: &NewOp, given: &JsValue) -> Result<()> {
        let Some(validator) = self.validators.get(&op.collection) else {
            return Ok(());
        };
        let doc = match op.kind {
            // The app's own object: the validator sees exactly what will be stored.
            OpKind::Put => given.clone(),
            OpKind::Patch => {
                let engine = self.engine.borrow();
                let current = engine
                    .view_item(&op.collection, &op.key)
                    .and_then(|item| item.value);
                convert::json_to_js(&outbox_core::view::merged(current, &op.payload))
            }
            OpKind::Delete | OpKind::Custom { .. } => return Ok(()),
        };
        let verdict = run_validator(validator, &doc);
        if verdict.is_null() || verdict.is_undefined() {
            return Ok(());
        }
        let field = |name: &str| js_sys::Reflect::get(&verdict, &name.into()).ok();
        let message = field("message")
            .and_then(|m| m.as_string())
            .unwrap_or_default();
        let message = format!(
            "op.value for {}/{} is refused by options.collections.{}.validate: {message}",
            op.collection, op.key, op.collection
        );
        if field("config").is_some_and(|c| c.is_truthy()) {
            return Err(Error::InvalidConfig(message));
        }
        Err(Error::InvalidOp(message))
    }
}
