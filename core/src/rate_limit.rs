//! Reading the server's pacing headers: `Retry-After`, `X-RateLimit-*`, and the IETF `RateLimit` /
//! `RateLimit-Policy` structured fields.
//!
//! Every result is a *delay* in milliseconds, not an absolute time: server-side dates are compared with
//! the response's own `Date` header when present, so a client whose wall clock is wrong still waits as
//! long as the server asked. The engine adds the delay to its own clock.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sfv::{BareItem, ListEntry, Parameters, Parser};

use crate::response::Response;

/// `X-RateLimit-Reset` values above this are read as Unix epoch seconds (GitHub style) rather than
/// delta seconds: no server asks a client to wait 30 years.
const EPOCH_SECONDS_THRESHOLD: u64 = 1_000_000_000;

/// What the pacing headers of one response say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitInfo {
    /// `Retry-After`, as a delay in ms.
    pub retry_after_ms: Option<u64>,
    /// The request quota of the current window, when advertised.
    pub limit: Option<u64>,
    /// Requests left in the current window, when advertised.
    pub remaining: Option<u64>,
    /// Delay in ms until the quota resets, when advertised.
    pub reset_ms: Option<u64>,
}

impl RateLimitInfo {
    /// How long the server says to stop sending *everything*, if it says so: the quota is used up
    /// (`remaining = 0`) and a reset time is known.
    pub fn exhausted_for_ms(&self) -> Option<u64> {
        if self.remaining == Some(0) {
            self.reset_ms.or(self.retry_after_ms)
        } else {
            None
        }
    }
}

/// Parses all pacing headers of `response`. `wall_now_ms` (Unix ms) is only used when an HTTP-date
/// must be judged and the response has no `Date` header.
pub fn parse(response: &Response, wall_now_ms: u64) -> RateLimitInfo {
    let server_now = response
        .header("date")
        .and_then(parse_http_date_ms)
        .unwrap_or(wall_now_ms);
    let mut info = RateLimitInfo {
        retry_after_ms: response
            .header("retry-after")
            .and_then(|v| parse_retry_after(v, server_now)),
        ..RateLimitInfo::default()
    };

    // Legacy, widely deployed headers.
    info.limit = response.header("x-ratelimit-limit").and_then(parse_u64);
    info.remaining = response.header("x-ratelimit-remaining").and_then(parse_u64);
    info.reset_ms = response
        .header("x-ratelimit-reset")
        .and_then(parse_u64)
        .map(|v| legacy_reset_ms(v, server_now));

    // The IETF fields win when both are present: they are unambiguous.
    if let Some(ietf) = response.header("ratelimit").and_then(parse_ratelimit_field) {
        info.remaining = ietf.remaining.or(info.remaining);
        info.reset_ms = ietf.reset_ms.or(info.reset_ms);
        info.limit = ietf.limit.or(info.limit);
    }
    if let Some(policy) = response
        .header("ratelimit-policy")
        .and_then(parse_policy_field)
    {
        info.limit = info.limit.or(policy.quota);
        // With no reset given, an exhausted quota refills at the latest after one window.
        if info.remaining == Some(0) && info.reset_ms.is_none() {
            info.reset_ms = policy.window_ms;
        }
    }
    info
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP-date judged against `server_now_ms`.
pub fn parse_retry_after(value: &str, server_now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Some(secs) = parse_u64(value) {
        return Some(secs.saturating_mul(1000));
    }
    let at = parse_http_date_ms(value)?;
    Some(at.saturating_sub(server_now_ms))
}

/// Parses an HTTP-date into Unix milliseconds.
pub fn parse_http_date_ms(value: &str) -> Option<u64> {
    let t: SystemTime = httpdate::parse_http_date(value.trim()).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

fn parse_u64(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

fn legacy_reset_ms(value: u64, server_now_ms: u64) -> u64 {
    if value > EPOCH_SECONDS_THRESHOLD {
        value.saturating_mul(1000).saturating_sub(server_now_ms)
    } else {
        value.saturating_mul(1000)
    }
}

#[derive(Default)]
struct RateLimitField {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_ms: Option<u64>,
}

struct PolicyField {
    quota: Option<u64>,
    window_ms: Option<u64>,
}

fn int(item: Option<&BareItem>) -> Option<u64> {
    item?
        .as_integer()
        .and_then(|i| u64::try_from(i64::from(i)).ok())
}

fn param(params: &Parameters, key: &str) -> Option<u64> {
    int(params.get(key))
}

/// `RateLimit`: the current draft's list form (`"default";r=0;t=30`), or the older dictionary form
/// (`limit=100, remaining=0, reset=30`). With several policies, the most constraining one wins.
fn parse_ratelimit_field(value: &str) -> Option<RateLimitField> {
    if let Ok(list) = Parser::new(value).parse_list() {
        let mut out: Option<RateLimitField> = None;
        for entry in &list {
            let ListEntry::Item(item) = entry else {
                continue;
            };
            let remaining = param(&item.params, "r");
            let reset_ms = param(&item.params, "t").map(|t| t.saturating_mul(1000));
            let candidate = RateLimitField {
                limit: None,
                remaining,
                reset_ms,
            };
            out = Some(match out {
                None => candidate,
                Some(cur) => more_constraining(cur, candidate),
            });
        }
        return out;
    }
    let dict = Parser::new(value).parse_dictionary().ok()?;
    let get = |k: &str| match dict.get(k) {
        Some(ListEntry::Item(item)) => int(Some(&item.bare_item)),
        _ => None,
    };
    Some(RateLimitField {
        limit: get("limit"),
        remaining: get("remaining"),
        reset_ms: get("reset").map(|s| s.saturating_mul(1000)),
    })
}

fn more_constraining(a: RateLimitField, b: RateLimitField) -> RateLimitField {
    let exhausted = |f: &RateLimitField| f.remaining == Some(0);
    match (exhausted(&a), exhausted(&b)) {
        (true, false) => a,
        (false, true) => b,
        // Both exhausted: wait for the later reset. Neither: keep the lower remaining.
        (true, true) => {
            if b.reset_ms > a.reset_ms {
                b
            } else {
                a
            }
        }
        (false, false) => {
            if b.remaining.unwrap_or(u64::MAX) < a.remaining.unwrap_or(u64::MAX) {
                b
            } else {
                a
            }
        }
    }
}

/// `RateLimit-Policy`: `"default";q=100;w=60`. Uses the first policy.
fn parse_policy_field(value: &str) -> Option<PolicyField> {
    let list = Parser::new(value).parse_list().ok()?;
    list.iter().find_map(|entry| match entry {
        ListEntry::Item(item) => Some(PolicyField {
            quota: param(&item.params, "q"),
            window_ms: param(&item.params, "w").map(|w| w.saturating_mul(1000)),
        }),
        ListEntry::InnerList(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sun, 06 Nov 1994 08:49:37 GMT
    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const DATE_MS: u64 = 784_111_777_000;

    fn resp(headers: &[(&str, &str)]) -> Response {
        headers
            .iter()
            .fold(Response::status(200), |r, (n, v)| r.with_header(*n, *v))
    }

    #[test]
    fn retry_after_delta_seconds() {
        let info = parse(&resp(&[("Retry-After", "120")]), 0);
        assert_eq!(info.retry_after_ms, Some(120_000));
    }

    #[test]
    fn retry_after_http_date_is_judged_against_the_date_header_not_the_local_clock() {
        // The client clock is a day fast; the server's own Date header says 30 s remain.
        let info = parse(
            &resp(&[
                ("Date", DATE),
                ("Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"),
            ]),
            DATE_MS + 86_400_000,
        );
        assert_eq!(info.retry_after_ms, Some(30_000));
    }

    #[test]
    fn retry_after_http_date_without_date_header_uses_wall_clock() {
        let info = parse(
            &resp(&[("Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT")]),
            DATE_MS + 10_000,
        );
        assert_eq!(info.retry_after_ms, Some(20_000));
    }

    #[test]
    fn retry_after_in_the_past_is_zero_and_garbage_is_ignored() {
        let info = parse(
            &resp(&[
                ("Date", DATE),
                ("Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT"),
            ]),
            0,
        );
        assert_eq!(info.retry_after_ms, Some(0));
        assert_eq!(
            parse(&resp(&[("Retry-After", "soon")]), 0).retry_after_ms,
            None
        );
    }

    #[test]
    fn x_ratelimit_delta_reset() {
        let info = parse(
            &resp(&[
                ("X-RateLimit-Limit", "100"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "42"),
            ]),
            0,
        );
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.remaining, Some(0));
        assert_eq!(info.exhausted_for_ms(), Some(42_000));
    }

    #[test]
    fn x_ratelimit_epoch_reset_is_judged_against_date() {
        // 1_700_000_000 s is Tue, 14 Nov 2023 22:13:20 GMT.
        let info = parse(
            &resp(&[
                ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1700000015"),
            ]),
            0,
        );
        assert_eq!(info.exhausted_for_ms(), Some(15_000));
    }

    #[test]
    fn remaining_above_zero_does_not_block() {
        let info = parse(
            &resp(&[("X-RateLimit-Remaining", "3"), ("X-RateLimit-Reset", "42")]),
            0,
        );
        assert_eq!(info.exhausted_for_ms(), None);
    }

    #[test]
    fn ietf_list_form() {
        let info = parse(
            &resp(&[
                ("RateLimit", "\"default\";r=0;t=30"),
                ("RateLimit-Policy", "\"default\";q=100;w=60"),
            ]),
            0,
        );
        assert_eq!(info.remaining, Some(0));
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.exhausted_for_ms(), Some(30_000));
    }

    #[test]
    fn ietf_most_constraining_policy_wins() {
        let info = parse(
            &resp(&[("RateLimit", "\"burst\";r=5;t=1, \"day\";r=0;t=3600")]),
            0,
        );
        assert_eq!(info.exhausted_for_ms(), Some(3_600_000));
    }

    #[test]
    fn ietf_exhausted_without_reset_falls_back_to_the_policy_window() {
        let info = parse(
            &resp(&[
                ("RateLimit", "\"default\";r=0"),
                ("RateLimit-Policy", "\"default\";q=10;w=60"),
            ]),
            0,
        );
        assert_eq!(info.exhausted_for_ms(), Some(60_000));
    }

    #[test]
    fn ietf_older_dictionary_form() {
        let info = parse(
            &resp(&[("RateLimit", "limit=100, remaining=0, reset=7")]),
            0,
        );
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.exhausted_for_ms(), Some(7_000));
    }

    #[test]
    fn malformed_structured_fields_are_ignored() {
        let info = parse(&resp(&[("RateLimit", "r=(((")]), 0);
        assert_eq!(info, RateLimitInfo::default());
    }
}
