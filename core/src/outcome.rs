//! Outcome classification: the DESIGN.md table as data, and one function that reads it.
//!
//! Keeping the table as data (rather than a `match` spread over the engine) means the policy can be
//! reviewed row by row against the design, tested row by row, and swapped by a runtime that talks to
//! a server with different conventions.

use serde::{Deserialize, Serialize};

use crate::op::OpKind;
use crate::response::Response;

/// The default problem `type` a server uses for "a request with this idempotency key is still being
/// processed" (the 409 of the IETF Idempotency-Key draft). It must match `docs/PROTOCOL.md`; other
/// servers' types can be added through [`crate::Config::key_in_flight_problem_types`].
pub const KEY_IN_FLIGHT_PROBLEM_TYPE: &str =
    "https://outbox-sync.dev/problems/idempotency-key-in-use";

/// What the engine does with an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// Done: remove the op, keep the returned doc and version.
    Ack,
    /// Try again later with the same idempotency key, backing off with full jitter.
    Transient,
    /// The server is rate limiting: block all sending until it says we may go on.
    RateLimited,
    /// The server holds a different version: hold the op with the server's doc.
    Conflict,
    /// Credentials were refused: refresh them, retry once at once, then back off.
    Auth,
    /// The server refused the op for good: dead-letter it and halt its lane.
    Permanent,
}

/// Which ops a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindMatch {
    /// Any op kind.
    Any,
    /// Only deletes.
    Delete,
}

/// An extra condition on the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// No condition.
    None,
    /// The problem `type` is one of the configured "idempotency key in flight" types.
    KeyInFlight,
    /// A `Retry-After` header is present and readable (delta-seconds or an HTTP-date): `Retry-After: soon`
    /// says nothing, and the answer is an ordinary transient one.
    RetryAfter,
    /// The body carries the server's current state of the document (a problem's `current` member,
    /// docs/PROTOCOL.md §2): evidence of a version conflict.
    CurrentState,
}

/// One row of the classification table: the first matching row wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Lowest matching status (inclusive).
    pub from: u16,
    /// Highest matching status (inclusive).
    pub to: u16,
    /// Which op kinds the row applies to.
    pub kind: KindMatch,
    /// Extra condition on the response.
    pub when: Condition,
    /// The resulting class.
    pub class: OutcomeClass,
}

const fn rule(from: u16, to: u16, kind: KindMatch, when: Condition, class: OutcomeClass) -> Rule {
    Rule {
        from,
        to,
        kind,
        when,
        class,
    }
}

use Condition as C;
use KindMatch as K;
use OutcomeClass as O;

/// The default table from DESIGN.md ("Default outcome classification"). Order matters: first match wins.
/// A network error, timeout or lost response has no status and is always [`OutcomeClass::Transient`].
pub const DEFAULT_RULES: &[Rule] = &[
    rule(200, 299, K::Any, C::None, O::Ack),
    // The goal state of a delete is already reached.
    rule(404, 404, K::Delete, C::None, O::Ack),
    rule(410, 410, K::Delete, C::None, O::Ack),
    // Same key still being processed: retry with the same key (checked before the conflict row).
    rule(409, 409, K::Any, C::KeyInFlight, O::Transient),
    // A 409 is a version conflict only with evidence: the server's current state. A bare 409 (a
    // proxy's, or an application's "already exists") falls through to a permanent refusal.
    rule(409, 409, K::Any, C::CurrentState, O::Conflict),
    // A failed precondition is a version mismatch by definition: the client sends preconditions only
    // for versions.
    rule(412, 412, K::Any, C::None, O::Conflict),
    rule(401, 401, K::Any, C::None, O::Auth),
    rule(429, 429, K::Any, C::None, O::RateLimited),
    rule(503, 503, K::Any, C::RetryAfter, O::RateLimited),
    rule(408, 408, K::Any, C::None, O::Transient),
    rule(425, 425, K::Any, C::None, O::Transient),
    rule(500, 500, K::Any, C::None, O::Transient),
    rule(502, 504, K::Any, C::None, O::Transient),
    // Every other status (other 4xx, 501, 505+, and anything unexpected) is a permanent refusal: the op
    // stays visible as failed rather than being retried forever against a server that cannot take it.
    rule(100, 599, K::Any, C::None, O::Permanent),
];

/// Classifies one outcome. `response` is `None` for a network error, timeout or lost response.
///
/// Falls back to [`OutcomeClass::Permanent`] when no rule matches, so a gap in a custom table never
/// silently drops or endlessly retries an op.
pub fn classify(
    rules: &[Rule],
    key_in_flight_types: &[String],
    kind: &OpKind,
    response: Option<&Response>,
) -> OutcomeClass {
    let Some(response) = response else {
        return OutcomeClass::Transient;
    };
    let status = response.status;
    rules
        .iter()
        .find(|r| {
            (r.from..=r.to).contains(&status)
                && match r.kind {
                    KindMatch::Any => true,
                    KindMatch::Delete => *kind == OpKind::Delete,
                }
                && match r.when {
                    Condition::None => true,
                    Condition::RetryAfter => response
                        .header("retry-after")
                        .is_some_and(|v| crate::rate_limit::parse_retry_after(v, 0).is_some()),
                    Condition::KeyInFlight => response
                        .problem_type()
                        .is_some_and(|t| key_in_flight_types.contains(&t)),
                    Condition::CurrentState => response
                        .body_value()
                        .is_some_and(|b| b.get("current").is_some()),
                }
        })
        .map_or(OutcomeClass::Permanent, |r| r.class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types() -> Vec<String> {
        vec![KEY_IN_FLIGHT_PROBLEM_TYPE.to_string()]
    }

    fn class(kind: OpKind, response: Option<Response>) -> OutcomeClass {
        classify(DEFAULT_RULES, &types(), &kind, response.as_ref())
    }

    fn st(status: u16) -> Option<Response> {
        Some(Response::status(status))
    }

    #[test]
    fn row_2xx_is_ack_for_every_kind() {
        for s in [200, 201, 204, 299] {
            assert_eq!(class(OpKind::Put, st(s)), O::Ack, "{s}");
            assert_eq!(class(OpKind::Delete, st(s)), O::Ack, "{s}");
            assert_eq!(class(OpKind::Custom { name: "x".into() }, st(s)), O::Ack);
        }
    }

    #[test]
    fn row_delete_404_410_is_ack_but_put_patch_404_is_permanent() {
        assert_eq!(class(OpKind::Delete, st(404)), O::Ack);
        assert_eq!(class(OpKind::Delete, st(410)), O::Ack);
        assert_eq!(class(OpKind::Put, st(404)), O::Permanent);
        assert_eq!(class(OpKind::Patch, st(404)), O::Permanent);
        assert_eq!(class(OpKind::Patch, st(410)), O::Permanent);
    }

    #[test]
    fn row_network_error_is_transient() {
        assert_eq!(class(OpKind::Put, None), O::Transient);
    }

    #[test]
    fn row_transient_statuses() {
        for s in [408, 425, 500, 502, 503, 504] {
            assert_eq!(class(OpKind::Put, st(s)), O::Transient, "{s}");
        }
    }

    #[test]
    fn row_rate_limited() {
        assert_eq!(class(OpKind::Put, st(429)), O::RateLimited);
        let r = Response::status(503).with_header("Retry-After", "5");
        assert_eq!(class(OpKind::Put, Some(r)), O::RateLimited);
        let garbage = Response::status(503).with_header("Retry-After", "soon");
        assert_eq!(class(OpKind::Put, Some(garbage)), O::Transient);
    }

    #[test]
    fn row_409_key_in_flight_is_transient_not_conflict() {
        let r = Response::status(409).with_body(json!({ "type": KEY_IN_FLIGHT_PROBLEM_TYPE }));
        assert_eq!(class(OpKind::Put, Some(r)), O::Transient);
        let other = Response::status(409).with_body(json!({ "type": "about:blank" }));
        assert_eq!(class(OpKind::Put, Some(other)), O::Permanent);
    }

    #[test]
    fn row_409_is_a_conflict_only_with_the_servers_current_state() {
        // A proxy's 409 or an application's own: no evidence of a version conflict.
        assert_eq!(class(OpKind::Put, st(409)), O::Permanent);
        let html = Response::status(409).with_body(json!("Conflict"));
        assert_eq!(class(OpKind::Put, Some(html)), O::Permanent);
        let app = Response::status(409).with_body(json!({ "type": "urn:app:name-taken" }));
        assert_eq!(class(OpKind::Patch, Some(app)), O::Permanent);
        // `current` (even `null`: the document does not exist) is the evidence.
        let none = Response::status(409).with_body(json!({ "current": null }));
        assert_eq!(class(OpKind::Put, Some(none)), O::Conflict);
    }

    #[test]
    fn row_409_412_version_conflict() {
        let doc = json!({ "type": "https://example.com/version-mismatch", "current": { "v": 3 } });
        assert_eq!(
            class(
                OpKind::Put,
                Some(Response::status(409).with_body(doc.clone()))
            ),
            O::Conflict
        );
        assert_eq!(
            class(OpKind::Patch, Some(Response::status(412).with_body(doc))),
            O::Conflict
        );
        assert_eq!(class(OpKind::Delete, st(412)), O::Conflict);
    }

    #[test]
    fn row_401_is_auth() {
        assert_eq!(class(OpKind::Put, st(401)), O::Auth);
    }

    #[test]
    fn row_other_4xx_and_odd_statuses_are_permanent() {
        for s in [400, 403, 405, 413, 415, 422, 501, 505, 302] {
            assert_eq!(class(OpKind::Put, st(s)), O::Permanent, "{s}");
        }
    }

    #[test]
    fn an_empty_table_falls_back_to_permanent() {
        assert_eq!(
            classify(&[], &[], &OpKind::Put, st(200).as_ref()),
            O::Permanent
        );
    }

    #[test]
    fn the_key_in_flight_type_list_is_configurable() {
        let r = Response::status(409).with_body(json!({ "type": "urn:custom:in-flight" }));
        let custom = vec!["urn:custom:in-flight".to_string()];
        assert_eq!(
            classify(DEFAULT_RULES, &custom, &OpKind::Put, Some(&r)),
            O::Transient
        );
        assert_eq!(
            classify(DEFAULT_RULES, &types(), &OpKind::Put, Some(&r)),
            O::Permanent
        );
    }
}
