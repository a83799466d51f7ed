//! One HTTP exchange over `fetch`, bounded in every way a hostile server or proxy could stretch it:
//! the timeout covers the whole exchange (a body that never ends is aborted too), redirects are never
//! followed (a `303` would turn a PATCH into a GET and look like an ack), and the body read is capped
//! and parsed defensively.

use js_sys::Promise;
use outbox_core::{Json, Response as CoreResponse};
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Headers, Request, RequestCredentials, RequestInit, RequestRedirect, Response,
    ResponseType,
};

use super::fetch::js_message;
use super::Failure;

/// The response headers the core reads. Only these are copied out of a `Response`; the server's CORS
/// configuration must expose them (docs/PROTOCOL.md).
const HEADERS_READ: [&str; 11] = [
    "etag",
    "idempotent-replayed",
    "idempotency-retention",
    "date",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "content-type",
];

/// A response body larger than this is not parsed: the status still classifies the outcome.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The problem type of an answer the client made up for a redirect (never followed).
pub const REDIRECTED: &str = "urn:outbox-sync:redirected";

#[wasm_bindgen]
extern "C" {
    // The global `fetch`, so the transport works in a window and in a worker alike.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> Promise;
}

/// Sends one request and reads its answer, all within `timeout_ms`.
pub async fn exchange(
    method: &str,
    url: &str,
    headers: Headers,
    body: Option<String>,
    credentials: RequestCredentials,
    timeout_ms: u32,
) -> Result<CoreResponse, Failure> {
    let controller = AbortController::new().map_err(|e| Failure::Refused(js_message(e)))?;
    let init = RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers);
    init.set_credentials(credentials);
    init.set_redirect(RequestRedirect::Manual);
    init.set_signal(Some(&controller.signal()));
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body));
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(|e| {
        Failure::Refused(format!("the request could not be made: {}", js_message(e)))
    })?;
    // A stalled connection, or a body that never ends, must not hold the lane: the timer lives until the
    // body is read, and aborting rejects whichever of the two is pending.
    let abort = controller.clone();
    let _timeout = gloo_timers::callback::Timeout::new(timeout_ms, move || abort.abort());
    let failed = |e: JsValue| {
        if controller.signal().aborted() {
            Failure::NoAnswer(format!("timed out after {timeout_ms} ms"))
        } else {
            Failure::NoAnswer(format!("network error: {}", js_message(e)))
        }
    };
    let response: Response = JsFuture::from(global_fetch(&request))
        .await
        .map_err(failed)?
        .unchecked_into();
    if response.type_() == ResponseType::Opaqueredirect {
        return Ok(redirected());
    }
    read_response(response, failed).await
}

/// Reads status, the headers the core needs, and a bounded, validated JSON body. A body that is too
/// large, not JSON, or nested too deep is dropped, never a panic: the status still classifies it.
async fn read_response(
    response: Response,
    failed: impl Fn(JsValue) -> Failure,
) -> Result<CoreResponse, Failure> {
    let status = response.status();
    let mut core = CoreResponse::status(status);
    let headers = response.headers();
    for name in HEADERS_READ {
        if let Ok(Some(value)) = headers.get(name) {
            core.headers.push((name.to_owned(), value));
        }
    }
    let is_json = core
        .header("content-type")
        .is_some_and(|t| t.contains("json"));
    let too_big = headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > MAX_BODY_BYTES);
    if status == 204 {
        return Ok(core);
    }
    if !is_json || too_big {
        // Not read at all: a proxy's page or a huge body tells nothing the status does not.
        if let Some(stream) = response.body() {
            let _ = stream.cancel();
        }
        return Ok(core);
    }
    let text = JsFuture::from(
        response
            .text()
            .map_err(|e| Failure::NoAnswer(js_message(e)))?,
    )
    .await
    .map_err(failed)?;
    let text = text.as_string().unwrap_or_default();
    // serde_json refuses nesting deeper than 128 levels, so a hostile body cannot blow the stack.
    if text.len() <= MAX_BODY_BYTES {
        core.body = Json::from_text(text).ok();
    }
    Ok(core)
}

/// What a redirect means to the core: a refusal the app must see (the endpoint is wrong), never an ack.
fn redirected() -> CoreResponse {
    CoreResponse::status(0).with_body(json!({
        "type": REDIRECTED,
        "detail": "the server answered with a redirect, which is never followed (check the endpoint)",
    }))
}

/// The answer the core gets when the request could not even be made because of the app's own input
/// or callback (an `auth` that returned a header `fetch` refuses): the op fails, visibly, instead of
/// being retried forever as a network error.
pub fn refused(message: &str) -> CoreResponse {
    CoreResponse::status(0).with_body(json!({
        "type": "urn:outbox-sync:request-refused",
        "detail": message,
    }))
}
