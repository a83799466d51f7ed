//! Transport-neutral description of what came back from a send.
//!
//! Both the fetch transport and a custom JS transport fill these plain structs, so the engine never
//! sees a `web_sys::Response` and the classification tables can be tested natively.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::Json;
use crate::op::OpId;

/// One HTTP-like response: a status, the few headers the engine reads, and an optional JSON body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Header name/value pairs. Names are matched case-insensitively. The engine reads `Retry-After`,
    /// `Date`, `ETag`, `X-RateLimit-*`, `RateLimit` and `RateLimit-Policy`; other headers may be omitted.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The JSON body, if any (a document on success, `application/problem+json` on errors), as the
    /// text that came: an acknowledged document is stored and shown exactly as the server wrote it,
    /// and never becomes a tree unless the engine must look inside ([`Response::body_value`]).
    #[serde(default)]
    pub body: Option<Json>,
}

impl Response {
    /// A response with only a status.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            ..Response::default()
        }
    }

    /// Adds a header (builder style, handy for transports and tests).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the JSON body (builder style).
    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(Json::from(body));
        self
    }

    /// The body, parsed: for the answers whose content the engine reads (problems, conflicts, pull
    /// pages), which are few, unlike acknowledged documents.
    pub fn body_value(&self) -> Option<Value> {
        self.body.as_ref().map(Json::value)
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The RFC 9457 problem `type`, when the body is a problem document.
    pub fn problem_type(&self) -> Option<String> {
        self.problem_member(&["type"])
    }

    /// The best human-readable message in a problem body (`detail`, then `title`).
    pub(crate) fn problem_message(&self) -> Option<String> {
        self.problem_member(&["detail", "title"])
    }

    /// The first of these string members of a problem body. A success's body (a document) is not
    /// one, and is not parsed for it.
    fn problem_member(&self, names: &[&str]) -> Option<String> {
        if self.is_success() {
            return None;
        }
        let body = self.body_value()?;
        names
            .iter()
            .find_map(|name| body.get(*name)?.as_str().map(str::to_owned))
    }

    /// True when the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// True when the server says this is a stored answer replayed for a repeated idempotency key
    /// (`Idempotent-Replayed: true`; a push result's `"replayed": true` is passed as that header).
    pub fn is_replay(&self) -> bool {
        self.header("idempotent-replayed")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "?1")
    }

    /// The server's `Idempotency-Retention` (docs/PROTOCOL.md §4): how long it keeps an idempotency
    /// key, in ms. A value that is not a non-negative integer of seconds is ignored.
    pub fn idempotency_retention_ms(&self) -> Option<u64> {
        let seconds: u64 = self.header("idempotency-retention")?.trim().parse().ok()?;
        Some(seconds.saturating_mul(1000))
    }
}

/// The result for one op inside a batch reply (one entry of the push endpoint's result array).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    /// The op this result is for.
    pub id: OpId,
    /// Its response (status, `ETag` header, body).
    pub response: Response,
}

/// What came back for a whole batch.
///
/// * `results: None` — `response` applies to every op of the batch. That is the case for a transport
///   that sends one op per request, and for a batch request refused as a whole (429, 503, 401 …).
/// * `results: Some(..)` — the push endpoint's per-op results, matched by id. An op of the batch with
///   no entry is treated like a lost response (transient, retried with the same idempotency key).
///
/// Rate-limit headers are read from `response` (and `Retry-After` from each op's own response too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The response to the request itself.
    pub response: Response,
    /// Per-op results, when the server returned them.
    #[serde(default)]
    pub results: Option<Vec<OpResult>>,
}

impl Reply {
    /// A reply whose single response applies to every op of the batch.
    pub fn whole(response: Response) -> Self {
        Reply {
            response,
            results: None,
        }
    }

    /// A `200` reply carrying per-op results.
    pub fn per_op(results: Vec<OpResult>) -> Self {
        Reply {
            response: Response::status(200),
            results: Some(results),
        }
    }
}
