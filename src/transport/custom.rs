//! A transport the app provides: `transport(batch) => Promise<results>`, for apps with their own client
//! (GraphQL, RPC, a different REST shape).
//!
//! The batch is `{ id, ops: [{ id, idempotencyKey, collection, key, op, value?, name?, baseVersion?,
//! attempt }] }`. The function resolves to one result per op, in order or matched by `id`:
//! `{ id?, status, headers?, body? }` — an HTTP-like status (200 ack, 409/412 conflict, 429 rate limited,
//! 503 retry …), optional headers such as `ETag` or `Retry-After`, and an optional JSON body (the new
//! document, or a problem). A rejected promise means "no answer": the ops are retried with the same keys.

use js_sys::Function;
use outbox_core::{Batch, Json, OpResult, Reply, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::fetch::{call_async, js_message};
use super::{wire, SendOutcome};

/// Calls the app's transport function.
pub struct CustomTransport {
    function: Function,
}

#[derive(Deserialize)]
struct CustomResult {
    id: Option<String>,
    status: u16,
    /// Read as JSON's own object type (already in the module) rather than a map of strings: every map
    /// type costs the wasm its own copy of the tree code. Values must be strings ([`header_pairs`]).
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    body: Option<Json>,
}

impl CustomTransport {
    /// Wraps the app's function.
    pub fn new(function: Function) -> Self {
        Self { function }
    }

    /// Sends one batch through the app's function.
    pub async fn send(&self, batch: &Batch) -> SendOutcome {
        let ops: Vec<String> = batch.ops.iter().map(wire::send_op_text).collect();
        let arg = format!("{{\"id\":{},\"ops\":[{}]}}", batch.id, ops.join(","));
        let Ok(arg) = js_sys::JSON::parse(&arg) else {
            return SendOutcome::NoAnswer("the batch could not be encoded".to_owned());
        };
        let returned = match call_async(&self.function, &arg).await {
            Ok(value) => value,
            Err(e) => {
                return SendOutcome::NoAnswer(format!("options.transport threw: {}", js_message(e)))
            }
        };
        let results: Vec<CustomResult> = match js_sys::JSON::stringify(&returned)
            .ok()
            .and_then(|s| s.as_string())
            .and_then(|s| serde_json::from_str::<Vec<CustomResult>>(&s).ok())
            .filter(|results| {
                results
                    .iter()
                    .all(|r| r.headers.values().all(Value::is_string))
            }) {
            Some(results) => results,
            None => {
                return SendOutcome::NoAnswer(
                    "options.transport must resolve to an array of { status, headers?, body? }"
                        .to_owned(),
                )
            }
        };
        let per_op = results
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                // Matched by id when given, else by position.
                let id = match &r.id {
                    Some(id) => batch.ops.iter().find(|op| op.id.to_string() == *id)?.id,
                    None => batch.ops.get(i)?.id,
                };
                let mut response = Response::status(r.status);
                response.headers = header_pairs(r.headers);
                response.body = r.body;
                Some(OpResult { id, response })
            })
            .collect();
        SendOutcome::Reply(Reply::per_op(per_op))
    }
}

/// The headers of a result, every value a string (checked when the results were read).
fn header_pairs(headers: Map<String, Value>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::String(value) => Some((name, value)),
            _ => None,
        })
        .collect()
}
