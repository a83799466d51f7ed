//! The built-in transport: docs/PROTOCOL.md over `fetch`.
//!
//! One request per op (`PUT | PATCH | DELETE {endpoint}/docs/{collection}/{key}`), or with `batch: true`
//! one `POST {endpoint}/push` per batch. Every request carries the op's `Idempotency-Key`, so a retry after
//! a lost response is replayed by the server rather than applied twice.

use js_sys::{Function, Object, Promise, Reflect};
use outbox_core::{Batch, Json, OpId, OpKind, OpResult, Reply, Response as CoreResponse, SendOp};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Headers;

use super::{http, wire, Failure, SendOutcome};
use crate::options::FetchOptions;

/// Sends batches over `fetch`.
pub struct FetchTransport {
    options: FetchOptions,
}

impl FetchTransport {
    /// A transport with these options.
    pub fn new(options: FetchOptions) -> Self {
        Self { options }
    }

    /// Whether a `route` function was given (needed for custom ops).
    pub fn has_route(&self) -> bool {
        self.options.route.is_some()
    }

    /// Sends one batch: one request per op, or one push.
    pub async fn send(&self, batch: &Batch) -> SendOutcome {
        match self.try_send(batch).await {
            Ok(reply) => SendOutcome::Reply(reply),
            Err(Failure::NoAnswer(message)) => SendOutcome::NoAnswer(message),
            // The request could not be made for a reason of the app's: every op of the batch fails,
            // visibly, rather than being retried forever as if the network were down.
            Err(Failure::Refused(message)) => {
                SendOutcome::Reply(Reply::whole(http::refused(&message)))
            }
        }
    }

    async fn try_send(&self, batch: &Batch) -> Result<Reply, Failure> {
        let headers = self.base_headers(batch.refresh_auth).await?;
        if self.options.batch {
            return self.push(batch, headers).await;
        }
        // One request per op. The engine is configured with one op per batch in this mode, so this loop
        // runs once; it stays a loop so a wider batch would still be delivered correctly, op by op.
        let mut results = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            let op_headers = Headers::new_with_headers(&headers).map_err(refused)?;
            results.push(OpResult {
                id: op.id,
                response: self.send_one(op, op_headers).await?,
            });
        }
        Ok(match <[OpResult; 1]>::try_from(results) {
            Ok([only]) => Reply::whole(only.response),
            Err(results) => Reply::per_op(results),
        })
    }

    async fn send_one(&self, op: &SendOp, headers: Headers) -> Result<CoreResponse, Failure> {
        let (method, url) = self.route(op).await.map_err(Failure::Refused)?;
        set(&headers, "Idempotency-Key", &idempotency_key_header(op))?;
        if let Some(version) = &op.base_version {
            set(&headers, "If-Match", &wire::if_match(version))?;
        }
        if op.create_only {
            set(&headers, "If-None-Match", "*")?;
        }
        let body = match op.kind {
            OpKind::Delete => None,
            OpKind::Patch => {
                set(&headers, "Content-Type", "application/merge-patch+json")?;
                Some(op.payload.text().to_owned())
            }
            OpKind::Put | OpKind::Custom { .. } => {
                set(&headers, "Content-Type", "application/json")?;
                Some(op.payload.text().to_owned())
            }
        };
        let response = self.exchange(&method, &url, headers, body).await?;
        if self.options.route.is_none()
            && response.is_success()
            && op.kind != OpKind::Delete
            && response.header("etag").is_none()
            && response.body.is_none()
        {
            // The protocol answers a PUT or PATCH with the document and its ETag. A bare 2xx is not
            // the server's (a captive portal's page, a misrouted proxy): no ack without evidence.
            return Ok(CoreResponse::status(502).with_body(json!({
                "type": "urn:outbox-sync:not-a-protocol-answer",
                "detail": format!("HTTP {} without a document or ETag: not an answer of the server", response.status),
            })));
        }
        Ok(response)
    }

    async fn push(&self, batch: &Batch, headers: Headers) -> Result<Reply, Failure> {
        set(&headers, "Content-Type", "application/json")?;
        let body = wire::push_body(&batch.ops);
        let url = format!("{}/push", self.options.endpoint);
        let response = self.exchange("POST", &url, headers, Some(body)).await?;
        if response.status != 200 {
            // Refused as a whole (429, 503, 401 …): the core applies it to every op of the batch.
            return Ok(Reply::whole(response));
        }
        let results = response.body.as_ref().and_then(|b| push_results(b.text()));
        let Some(results) = results else {
            // A 200 without results: the server may have applied the ops; report no per-op answer, so the
            // core retries each with its key and the server replays what it applied.
            return Ok(Reply {
                response,
                results: Some(Vec::new()),
            });
        };
        let per_op = results
            .into_iter()
            .filter_map(|r| push_result(batch, r))
            .collect();
        Ok(Reply {
            response,
            results: Some(per_op),
        })
    }

    /// `GET {endpoint}/pull?since=&limit=&collection=…`, with the same auth, credentials and timeout as
    /// sends. `collections`: only these (PROTOCOL §7); `None`: every collection.
    pub async fn pull(
        &self,
        since: Option<&str>,
        limit: u32,
        collections: Option<&[String]>,
    ) -> Result<CoreResponse, String> {
        let headers = self
            .base_headers(false)
            .await
            .map_err(Failure::into_message)?;
        let mut url = format!("{}/pull?limit={limit}", self.options.endpoint);
        if let Some(since) = since {
            url.push_str("&since=");
            url.push_str(&encode(since));
        }
        for collection in collections.into_iter().flatten() {
            url.push_str("&collection=");
            url.push_str(&encode(collection));
        }
        self.exchange("GET", &url, headers, None)
            .await
            .map_err(Failure::into_message)
    }

    /// `GET {endpoint}/docs/{collection}/{key}`: the server's current state of one document (200 the
    /// document, 410 a tombstone, 404 none), with the same auth, credentials and timeout as sends.
    pub async fn get_doc(&self, collection: &str, key: &str) -> Result<CoreResponse, String> {
        let headers = self
            .base_headers(false)
            .await
            .map_err(Failure::into_message)?;
        let url = format!(
            "{}/docs/{}/{}",
            self.options.endpoint,
            encode(collection),
            encode(key)
        );
        self.exchange("GET", &url, headers, None)
            .await
            .map_err(Failure::into_message)
    }

    /// The headers every request carries: the app's auth headers (asked for at send time, never
    /// stored) and the client id.
    async fn base_headers(&self, refresh_auth: bool) -> Result<Headers, Failure> {
        let headers = Headers::new().map_err(refused)?;
        self.add_auth_headers(&headers, refresh_auth).await?;
        if let Some(client) = &self.options.client_id {
            set(&headers, "Outbox-Client-Id", client)?;
        }
        Ok(headers)
    }

    async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        body: Option<String>,
    ) -> Result<CoreResponse, Failure> {
        let (credentials, timeout) = (self.options.credentials, self.options.timeout_ms);
        http::exchange(method, url, headers, body, credentials, timeout).await
    }

    async fn route(&self, op: &SendOp) -> Result<(String, String), String> {
        if let Some(route) = &self.options.route {
            let arg = js_sys::JSON::parse(&wire::send_op_text(op)).map_err(js_message)?;
            let routed = call_async(route, &arg)
                .await
                .map_err(|e| format!("options.route threw: {}", js_message(e)))?;
            let field = |name: &str| {
                Reflect::get(&routed, &name.into())
                    .ok()
                    .and_then(|v| v.as_string())
            };
            return match (field("method"), field("url")) {
                (Some(method), Some(url)) => Ok((method.to_ascii_uppercase(), url)),
                _ => Err("options.route must return { method, url } strings".to_owned()),
            };
        }
        let method =
            wire::method(&op.kind).ok_or("custom ops need options.route or options.transport")?;
        let url = format!(
            "{}/docs/{}/{}",
            self.options.endpoint,
            encode(&op.collection),
            encode(&op.key)
        );
        Ok((method.to_owned(), url))
    }

    /// An `auth` that throws may be waiting on the network (a token refresh): retried. One that returns
    /// something `fetch` cannot send is the app's bug: the ops fail, with the reason.
    async fn add_auth_headers(&self, headers: &Headers, refresh: bool) -> Result<(), Failure> {
        let Some(auth) = &self.options.auth else {
            return Ok(());
        };
        let arg = Object::new();
        let _ = Reflect::set(&arg, &"refresh".into(), &refresh.into());
        // The credentials live only in this request's headers: never stored, never logged.
        let result = call_async(auth, &arg)
            .await
            .map_err(|e| Failure::NoAnswer(format!("options.auth threw: {}", js_message(e))))?;
        if result.is_undefined() || result.is_null() {
            return Ok(());
        }
        let entries = Object::entries(result.dyn_ref::<Object>().ok_or_else(|| {
            Failure::Refused("options.auth must return an object of headers".to_owned())
        })?);
        for entry in entries.iter() {
            let pair: js_sys::Array = entry.unchecked_into();
            let (name, value) = (pair.get(0).as_string(), pair.get(1).as_string());
            match (name, value) {
                (Some(name), Some(value)) => headers.set(&name, &value).map_err(|e| {
                    Failure::Refused(format!(
                        "options.auth returned a header fetch refuses ({name:?}): {}",
                        js_message(e)
                    ))
                })?,
                _ => {
                    return Err(Failure::Refused(
                        "options.auth must return string header values".to_owned(),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// `Idempotency-Key` is a Structured Field string (RFC 8941), so the UUID goes in quotes.
fn idempotency_key_header(op: &SendOp) -> String {
    let key = op.idempotency_key.to_string();
    sfv::ItemSerializer::new()
        .bare_item(sfv::StringRef::from_str(&key).expect("a UUID is a valid sf-string"))
        .finish()
}

/// A push response: its results, each still as its JSON text.
#[derive(Deserialize)]
struct PushAnswer<'a> {
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

/// One entry of a push response's results: each member still as its JSON text.
#[derive(Deserialize)]
struct PushEntry<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    status: &'a RawValue,
    #[serde(borrow)]
    etag: Option<&'a RawValue>,
    #[serde(borrow)]
    replayed: Option<&'a RawValue>,
    /// Kept as the text it came as: serde_json checked it while reading the entry.
    doc: Option<Json>,
    problem: Option<Json>,
}

/// The entries of a push response's `results`, each read on its own: one that is malformed costs only
/// its op (retried, as if it had no answer), not the whole batch.
fn push_results(body: &str) -> Option<Vec<PushEntry<'_>>> {
    let answer: PushAnswer<'_> = serde_json::from_str(body).ok()?;
    Some(
        answer
            .results
            .into_iter()
            .filter_map(|entry| serde_json::from_str(entry.get()).ok())
            .collect(),
    )
}

/// One entry of a push response, as the core's per-op result. The document (or problem) in it stays the
/// text the server wrote: it is stored and shown as it is, never parsed into a tree.
fn push_result(batch: &Batch, entry: PushEntry<'_>) -> Option<OpResult> {
    let text = |raw: &RawValue| serde_json::from_str::<String>(raw.get()).ok();
    let id: OpId = text(entry.id)?.parse().ok()?;
    if !batch.ops.iter().any(|op| op.id == id) {
        return None;
    }
    let mut response = CoreResponse::status(entry.status.get().parse().ok()?);
    if let Some(etag) = entry.etag.and_then(text) {
        response.headers.push(("etag".to_owned(), etag));
    }
    if entry.replayed.map(RawValue::get) == Some("true") {
        // The core reads a replay the same way whichever endpoint answered.
        response
            .headers
            .push(("idempotent-replayed".to_owned(), "true".to_owned()));
    }
    response.body = entry.doc.or(entry.problem);
    Some(OpResult { id, response })
}

fn set(headers: &Headers, name: &str, value: &str) -> Result<(), Failure> {
    headers.set(name, value).map_err(refused)
}

/// A JS error the app's input caused, as a refusal.
fn refused(error: JsValue) -> Failure {
    Failure::Refused(js_message(error))
}

/// Calls `f(arg)` and awaits the result if it is a promise.
pub async fn call_async(f: &Function, arg: &JsValue) -> Result<JsValue, JsValue> {
    let result = f.call1(&JsValue::UNDEFINED, arg)?;
    JsFuture::from(Promise::resolve(&result)).await
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    js_sys::encode_uri_component(segment).into()
}

/// The message of a JS error value, for `lastError` and events.
pub(crate) fn js_message(error: JsValue) -> String {
    crate::convert::message(&error)
}
