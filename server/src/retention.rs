//! The `Idempotency-Retention` response header: how long this server keeps an idempotency key's
//! record, so a client knows when a retry could no longer be recognised as one (PROTOCOL §4).
//!
//! It is one layer around the whole router, outside CORS and fault injection, because the client
//! must learn the value from whatever answer it gets: a 503 during an outage is often the only
//! response it sees for hours, and a preflight is answered before any route runs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const IDEMPOTENCY_RETENTION: &str = "idempotency-retention";

#[derive(Clone)]
pub struct Retention {
    base: Arc<str>,
    value: HeaderValue,
}

impl Retention {
    /// `base` is the normalised base path ("" or "/a[/b...]"), as routed.
    pub fn new(base: &str, ttl: Duration) -> Retention {
        let seconds = header_value(ttl);
        Retention {
            base: base.into(),
            value: HeaderValue::from_str(&seconds).expect("an sf-integer is a valid header value"),
        }
    }

    fn covers(&self, path: &str) -> bool {
        path.strip_prefix(&*self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The TTL as an RFC 9651 Integer of whole seconds. Rounded down and clamped to the sf-integer
/// range, so the stated value never exceeds what the server actually keeps.
pub fn header_value(ttl: Duration) -> String {
    let seconds = sfv::Integer::try_from(ttl.as_secs()).unwrap_or(sfv::Integer::MAX);
    sfv::ItemSerializer::new().bare_item(seconds).finish()
}

pub async fn with_retention(State(r): State<Retention>, req: Request, next: Next) -> Response {
    let covered = r.covers(req.uri().path());
    let mut res = next.run(req).await;
    if covered {
        res.headers_mut().insert(
            HeaderName::from_static(IDEMPOTENCY_RETENTION),
            r.value.clone(),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_rounded_down_and_clamped() {
        assert_eq!(header_value(Duration::from_secs(24 * 3600)), "86400");
        assert_eq!(header_value(Duration::from_millis(5_400_999)), "5400");
        assert_eq!(header_value(Duration::from_millis(999)), "0");
        assert_eq!(header_value(Duration::ZERO), "0");
        assert_eq!(header_value(Duration::MAX), "999999999999999");
        assert_eq!(
            header_value(Duration::from_secs(999_999_999_999_999)),
            "999999999999999"
        );
        assert_eq!(
            header_value(Duration::from_secs(1_000_000_000_000_000)),
            "999999999999999"
        );
    }

    #[test]
    fn covers_only_paths_under_the_base() {
        let r = Retention::new("/api", Duration::from_secs(1));
        for path in ["/api", "/api/", "/api/docs/c/k", "/api/push", "/api/nope"] {
            assert!(r.covers(path), "{path}");
        }
        for path in ["/", "/apix", "/_admin/faults", "/index.html", "/ap"] {
            assert!(!r.covers(path), "{path}");
        }
        let root = Retention::new("", Duration::from_secs(1));
        assert!(root.covers("/docs/c/k") && root.covers("/"));
    }
}
