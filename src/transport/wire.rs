//! The JSON shapes ops take on their way out, shared by the push body, the custom transport and the
//! op snapshots the JS API returns.

use outbox_core::{OpKind, OpRecord, SendOp};
use serde_json::{json, Map, Value};

/// The JS/JSON name of an op kind.
pub fn kind_name(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::Put => "put",
        OpKind::Patch => "patch",
        OpKind::Delete => "delete",
        OpKind::Custom { .. } => "custom",
    }
}

/// The HTTP method of an op kind in docs/PROTOCOL.md. Custom ops have none: they need a route.
pub fn method(kind: &OpKind) -> Option<&'static str> {
    match kind {
        OpKind::Put => Some("PUT"),
        OpKind::Patch => Some("PATCH"),
        OpKind::Delete => Some("DELETE"),
        OpKind::Custom { .. } => None,
    }
}

/// A version as an `If-Match` value. Versions are the server's ETags, quotes included (`"3"`); a bare
/// version an app passed in (`3`) is quoted so it is still a valid entity-tag.
pub fn if_match(version: &str) -> String {
    if version.starts_with('"') || version.starts_with("W/\"") {
        version.to_owned()
    } else {
        format!("\"{version}\"")
    }
}

/// A version as the JS API shows it: the opaque string inside a strong ETag (`"3"` → `3`). The quotes
/// are HTTP's syntax, not part of the version; the engine keeps the ETag form because that is what it
/// compares and sends. Anything else (a weak tag the server sent) is shown as it came.
pub fn api_version(etag: &str) -> String {
    match etag.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.to_owned(),
        _ => etag.to_owned(),
    }
}

/// A version the app gave (`3`, `abc`) as the ETag the engine speaks (`"3"`); `None` if it cannot be
/// one: empty, or not visible ASCII without `"` (RFC 9110 §8.8.3 `etagc`).
pub fn etag_from_api(version: &str) -> Option<String> {
    let ok = !version.is_empty()
        && version
            .bytes()
            .all(|b| b != b'"' && (0x21..=0x7e).contains(&b));
    ok.then(|| format!("\"{version}\""))
}

/// An op as the app's transport and `route` function see it.
pub fn send_op_json(op: &SendOp) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(op.id.to_string()));
    o.insert(
        "idempotencyKey".into(),
        json!(op.idempotency_key.to_string()),
    );
    o.insert("collection".into(), json!(op.collection));
    o.insert("key".into(), json!(op.key));
    o.insert("op".into(), json!(kind_name(&op.kind)));
    if let OpKind::Custom { name } = &op.kind {
        o.insert("name".into(), json!(name));
    }
    if op.kind != OpKind::Delete {
        o.insert("value".into(), Value::clone(&op.payload));
    }
    if let Some(v) = &op.base_version {
        o.insert("baseVersion".into(), json!(api_version(v)));
    }
    if op.create_only {
        o.insert("createOnly".into(), json!(true));
    }
    o.insert("attempt".into(), json!(op.attempt));
    Value::Object(o)
}

/// An op as the app inspects it through `pending()`, `failed()` and `conflicts()`.
pub fn snapshot_json(record: &OpRecord) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(record.id.to_string()));
    o.insert(
        "idempotencyKey".into(),
        json!(record.idempotency_key.to_string()),
    );
    o.insert("collection".into(), json!(record.collection));
    o.insert("key".into(), json!(record.key));
    o.insert("op".into(), json!(kind_name(&record.kind)));
    if let OpKind::Custom { name } = &record.kind {
        o.insert("name".into(), json!(name));
    }
    if record.kind != OpKind::Delete {
        o.insert("value".into(), Value::clone(&record.payload));
    }
    if let Some(v) = &record.base_version {
        o.insert("baseVersion".into(), json!(api_version(v)));
    }
    o.insert(
        "state".into(),
        serde_json::to_value(record.state).unwrap_or(Value::Null),
    );
    o.insert("attempts".into(), json!(record.attempts));
    o.insert("createdAt".into(), json!(record.created_at));
    if record.create_only {
        o.insert("createOnly".into(), json!(true));
    }
    // The server may have applied an earlier attempt (a lost answer): a failed op with this set may
    // in fact be on the server, and its retry keeps the key so it cannot apply twice.
    o.insert("maybeApplied".into(), json!(record.maybe_applied));
    if let Some(at) = record.next_attempt_at {
        o.insert("nextAttemptAt".into(), json!(at));
    }
    if let Some(e) = &record.last_error {
        o.insert("lastError".into(), crate::events::op_error_json(e));
    }
    if let Some(doc) = &record.server_doc {
        o.insert("serverDoc".into(), doc.clone());
    }
    if let Some(version) = &record.server_version {
        o.insert("serverVersion".into(), json!(api_version(version)));
    }
    Value::Object(o)
}

/// One entry of a `POST {base}/push` body (docs/PROTOCOL.md).
pub fn push_entry(op: &SendOp) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(op.id.to_string()));
    o.insert("method".into(), json!(method(&op.kind).unwrap_or("POST")));
    o.insert("collection".into(), json!(op.collection));
    o.insert("key".into(), json!(op.key));
    o.insert(
        "idempotencyKey".into(),
        json!(op.idempotency_key.to_string()),
    );
    if let Some(v) = &op.base_version {
        o.insert("ifMatch".into(), json!(if_match(v)));
    }
    if op.create_only {
        o.insert("ifNoneMatch".into(), json!("*"));
    }
    if op.kind != OpKind::Delete {
        o.insert("body".into(), Value::clone(&op.payload));
    }
    Value::Object(o)
}
