//! Parsing of the request headers the protocol relies on: `Idempotency-Key`, `Outbox-Client-Id`,
//! `If-Match` / `If-None-Match`, and `Content-Type`.

use axum::http::{header, HeaderMap};

use crate::problem::{Problem, ProblemType};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const CLIENT_ID: &str = "outbox-client-id";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Scope used for idempotency keys when the request carries no `Outbox-Client-Id`.
pub const DEFAULT_SCOPE: &str = "default";

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
pub const MAX_CLIENT_ID_LEN: usize = 255;

/// The `Idempotency-Key` header is a Structured Field Item whose value is a String
/// (draft-ietf-httpapi-idempotency-key-header). The decoded string is the key.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(raw) = values.next() else {
        return Err(invalid_key(
            "the Idempotency-Key header is required on every mutating request",
        ));
    };
    if values.next().is_some() {
        return Err(invalid_key("the Idempotency-Key header must appear once"));
    }
    let item = sfv::Parser::new(raw.as_bytes()).parse_item().map_err(|e| {
        invalid_key(format!(
            "Idempotency-Key is not a structured-field item: {e}"
        ))
    })?;
    let Some(s) = item.bare_item.as_string() else {
        return Err(invalid_key(
            "Idempotency-Key must be a structured-field string, e.g. \"8e03978e-40d5-43e8-bc93-6894a57f9324\" (with the double quotes)",
        ));
    };
    validate_key(s.as_str())
}

/// Same rules for keys carried in JSON (the push batch), where no sf-string quoting applies.
pub fn validate_key(key: &str) -> Result<String, Problem> {
    if key.is_empty() {
        return Err(invalid_key("the idempotency key must not be empty"));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(invalid_key(format!(
            "the idempotency key is {} characters long; at most {MAX_IDEMPOTENCY_KEY_LEN} are allowed",
            key.len()
        )));
    }
    // The character set of an sf-string: printable ASCII.
    if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(invalid_key(
            "the idempotency key may contain printable ASCII characters only",
        ));
    }
    Ok(key.to_owned())
}

fn invalid_key(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::InvalidIdempotencyKey, detail)
}

/// Idempotency keys are scoped per client so two clients that happen to pick the same key never
/// see each other's responses. The scope is the `Outbox-Client-Id` header, or [`DEFAULT_SCOPE`].
pub fn client_scope(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(raw) = headers.get(CLIENT_ID) else {
        return Ok(DEFAULT_SCOPE.to_owned());
    };
    let bytes = raw.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_CLIENT_ID_LEN
        || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Err(Problem::new(
            ProblemType::InvalidClientId,
            "Outbox-Client-Id must be 1 to 255 visible ASCII characters",
        ));
    }
    // Checked above: visible ASCII is valid UTF-8.
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// An entity-tag as defined by RFC 9110 §8.8.3; `opaque` excludes the double quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    pub opaque: String,
}

/// The value of `If-Match` or `If-None-Match`: `*` or a list of entity-tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtagCondition {
    Any,
    Tags(Vec<EntityTag>),
}

impl EtagCondition {
    /// If-Match semantics (RFC 9110 §13.1.1): strong comparison; never true without a
    /// current representation.
    pub fn matches_strong(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (EtagCondition::Any, Some(_)) => true,
            (EtagCondition::Tags(tags), Some(cur)) => {
                tags.iter().any(|t| !t.weak && t.opaque == cur)
            }
        }
    }

    /// If-None-Match semantics (RFC 9110 §13.1.2): weak comparison.
    pub fn matches_weak(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (EtagCondition::Any, Some(_)) => true,
            (EtagCondition::Tags(tags), Some(cur)) => tags.iter().any(|t| t.opaque == cur),
        }
    }
}

/// Parses `"*"` or `1#entity-tag` strictly, so a client bug such as an unquoted version is
/// reported instead of silently failing the precondition.
pub fn parse_etag_condition(value: &str) -> Result<EtagCondition, String> {
    let trimmed = value.trim_matches([' ', '\t']);
    if trimmed == "*" {
        return Ok(EtagCondition::Any);
    }
    let bytes = trimmed.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let weak = bytes[i..].starts_with(b"W/");
        if weak {
            i += 2;
        }
        if bytes.get(i) != Some(&b'"') {
            return Err(format!(
                "expected an entity-tag such as \"\\\"3\\\"\" at byte {i} of {value:?}"
            ));
        }
        i += 1;
        let start = i;
        // etagc = %x21 / %x23-7E / obs-text
        while i < bytes.len() && bytes[i] != b'"' {
            let b = bytes[i];
            if !(b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
                return Err(format!("invalid character in entity-tag in {value:?}"));
            }
            i += 1;
        }
        if i >= bytes.len() {
            return Err(format!("unterminated entity-tag in {value:?}"));
        }
        let opaque = String::from_utf8_lossy(&bytes[start..i]).into_owned();
        i += 1;
        tags.push(EntityTag { weak, opaque });
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] != b',' {
            return Err(format!("expected ',' between entity-tags in {value:?}"));
        }
    }
    if tags.is_empty() {
        return Err("empty entity-tag list".to_owned());
    }
    Ok(EtagCondition::Tags(tags))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<EtagCondition>,
    pub if_none_match: Option<EtagCondition>,
}

impl Preconditions {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Problem> {
        Ok(Preconditions {
            if_match: condition_header(headers, header::IF_MATCH)?,
            if_none_match: condition_header(headers, header::IF_NONE_MATCH)?,
        })
    }

    pub fn from_strs(if_match: Option<&str>, if_none_match: Option<&str>) -> Result<Self, Problem> {
        let parse = |name: &str, v: Option<&str>| -> Result<Option<EtagCondition>, Problem> {
            v.map(|v| {
                parse_etag_condition(v).map_err(|e| {
                    Problem::new(ProblemType::InvalidPrecondition, format!("{name}: {e}"))
                })
            })
            .transpose()
        };
        Ok(Preconditions {
            if_match: parse("ifMatch", if_match)?,
            if_none_match: parse("ifNoneMatch", if_none_match)?,
        })
    }
}

fn condition_header(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Result<Option<EtagCondition>, Problem> {
    let values: Vec<_> = headers.get_all(&name).iter().collect();
    if values.is_empty() {
        return Ok(None);
    }
    let mut joined = String::new();
    for v in values {
        let s = v.to_str().map_err(|_| {
            Problem::new(
                ProblemType::InvalidPrecondition,
                format!("{name} is not ASCII"),
            )
        })?;
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(s);
    }
    parse_etag_condition(&joined)
        .map(Some)
        .map_err(|e| Problem::new(ProblemType::InvalidPrecondition, format!("{name}: {e}")))
}

/// True when the request's `Content-Type` essence is `expected` (parameters such as
/// `charset=utf-8` are allowed).
pub fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(v: &str) -> Result<String, Problem> {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
        idempotency_key(&h)
    }

    #[test]
    fn idempotency_key_must_be_an_sf_string() {
        assert_eq!(key("\"abc-123\"").unwrap(), "abc-123");
        assert_eq!(key("\"a\\\"b\"").unwrap(), "a\"b");
        assert!(key("abc").is_err(), "a token is not a string");
        assert!(key("\"\"").is_err(), "empty");
        assert!(key("\"abc").is_err(), "unterminated");
        assert!(key("42").is_err(), "integer");
        assert!(key(&format!("\"{}\"", "k".repeat(255))).is_ok());
        assert!(key(&format!("\"{}\"", "k".repeat(256))).is_err());
        assert!(idempotency_key(&HeaderMap::new()).is_err(), "missing");
    }

    #[test]
    fn etag_lists_parse_strictly() {
        assert_eq!(parse_etag_condition("*").unwrap(), EtagCondition::Any);
        let c = parse_etag_condition("\"1\", W/\"2\" ,\"a,b\"").unwrap();
        assert_eq!(
            c,
            EtagCondition::Tags(vec![
                EntityTag {
                    weak: false,
                    opaque: "1".into()
                },
                EntityTag {
                    weak: true,
                    opaque: "2".into()
                },
                EntityTag {
                    weak: false,
                    opaque: "a,b".into()
                },
            ])
        );
        assert!(c.matches_strong(Some("1")));
        assert!(
            !c.matches_strong(Some("2")),
            "weak tags never match strongly"
        );
        assert!(c.matches_weak(Some("2")));
        assert!(!c.matches_strong(None));
        for bad in ["3", "\"3", "\"3\" \"4\"", "", "W/3", "\"a\"b\""] {
            assert!(
                parse_etag_condition(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
