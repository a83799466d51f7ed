//! The JSON shapes ops take on their way out, shared by the push body, the custom transport and the
//! op snapshots the JS API returns.

use outbox_core::{Json, OpId, OpKind, OpRecord, SendOp};
use serde_json::Value;

use crate::convert::ObjectWriter;

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

/// The members an op shows wherever the app sees it (a transport's batch, a route's argument, an op
/// snapshot), in this order.
struct OpMembers<'a> {
    id: OpId,
    idempotency_key: String,
    collection: &'a str,
    key: &'a str,
    kind: &'a OpKind,
    payload: &'a Json,
    base_version: Option<&'a str>,
}

impl OpMembers<'_> {
    fn write(&self, o: &mut ObjectWriter) {
        o.string("id", &self.id.to_string())
            .string("idempotencyKey", &self.idempotency_key)
            .string("collection", self.collection)
            .string("key", self.key)
            .string("op", kind_name(self.kind));
        if let OpKind::Custom { name } = self.kind {
            o.string("name", name);
        }
        // The value as the app's text, so its keys keep the app's order.
        if *self.kind != OpKind::Delete {
            o.json("value", self.payload.text());
        }
        if let Some(v) = self.base_version {
            o.string("baseVersion", &api_version(v));
        }
    }
}

/// An op as the app's transport and `route` function see it (JSON text).
pub fn send_op_text(op: &SendOp) -> String {
    let mut out = String::new();
    let mut o = ObjectWriter::open(&mut out);
    OpMembers {
        id: op.id,
        idempotency_key: op.idempotency_key.to_string(),
        collection: &op.collection,
        key: &op.key,
        kind: &op.kind,
        payload: &op.payload,
        base_version: op.base_version.as_deref(),
    }
    .write(&mut o);
    if op.create_only {
        o.json("createOnly", "true");
    }
    o.json("attempt", &op.attempt.to_string()).close();
    out
}

/// An op as the app inspects it through `pending()`, `failed()` and `conflicts()` (JSON text).
pub fn snapshot_text(record: &OpRecord) -> String {
    let mut out = String::new();
    let mut o = ObjectWriter::open(&mut out);
    OpMembers {
        id: record.id,
        idempotency_key: record.idempotency_key.to_string(),
        collection: &record.collection,
        key: &record.key,
        kind: &record.kind,
        payload: &record.payload,
        base_version: record.base_version.as_deref(),
    }
    .write(&mut o);
    o.value(
        "state",
        &serde_json::to_value(record.state).unwrap_or(Value::Null),
    )
    .json("attempts", &record.attempts.to_string())
    .json("createdAt", &record.created_at.to_string());
    if record.create_only {
        o.json("createOnly", "true");
    }
    // The server may have applied an earlier attempt (a lost answer): a failed op with this set may
    // in fact be on the server, and its retry keeps the key so it cannot apply twice.
    o.json("maybeApplied", &record.maybe_applied.to_string());
    if let Some(at) = record.next_attempt_at {
        o.json("nextAttemptAt", &at.to_string());
    }
    if let Some(e) = &record.last_error {
        o.value("lastError", &crate::events::op_error_json(e));
    }
    if let Some(doc) = &record.server_doc {
        o.value("serverDoc", doc);
    }
    if let Some(version) = &record.server_version {
        o.string("serverVersion", &api_version(version));
    }
    o.close();
    out
}

/// A `POST {base}/push` body (docs/PROTOCOL.md): `{"ops":[...]}`, each payload copied in as its text.
pub fn push_body(ops: &[SendOp]) -> String {
    let payloads: usize = ops.iter().map(|op| op.payload.text().len()).sum();
    let mut out = String::with_capacity(16 + ops.len() * 200 + payloads);
    out.push_str("{\"ops\":[");
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut entry = ObjectWriter::open(&mut out);
        entry
            .string("id", &op.id.to_string())
            .string("method", method(&op.kind).unwrap_or("POST"))
            .string("collection", &op.collection)
            .string("key", &op.key)
            .string("idempotencyKey", &op.idempotency_key.to_string());
        if let Some(version) = &op.base_version {
            entry.string("ifMatch", &if_match(version));
        }
        if op.create_only {
            entry.string("ifNoneMatch", "*");
        }
        if op.kind != OpKind::Delete {
            entry.json("body", op.payload.text());
        }
        entry.close();
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn send_op(kind: Value, payload: &str, base_version: Value, create_only: bool) -> SendOp {
        let mut op: SendOp = serde_json::from_value(json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "idempotency_key": "00000000-0000-0000-0000-0000000000ff",
            "collection": "notes",
            "key": "a \"quoted\" key",
            "kind": kind,
            "payload": null,
            "base_version": base_version,
            "create_only": create_only,
            "attempt": 1,
        }))
        .unwrap();
        op.payload = outbox_core::Json::from_text(payload.to_owned()).unwrap();
        op
    }

    #[test]
    fn a_push_body_carries_each_payload_as_the_apps_text() {
        let put = send_op(
            json!({ "type": "put" }),
            r#"{"z":1,"a":[1e+21]}"#,
            Value::Null,
            true,
        );
        let delete = send_op(json!({ "type": "delete" }), "null", json!("\"3\""), false);
        let body = push_body(&[put, delete]);
        assert_eq!(
            body,
            concat!(
                r#"{"ops":[{"id":"00000000-0000-0000-0000-000000000001","method":"PUT","collection":"notes","#,
                r#""key":"a \"quoted\" key","idempotencyKey":"00000000-0000-0000-0000-0000000000ff","#,
                r#""ifNoneMatch":"*","body":{"z":1,"a":[1e+21]}},"#,
                r#"{"id":"00000000-0000-0000-0000-000000000001","method":"DELETE","collection":"notes","#,
                r#""key":"a \"quoted\" key","idempotencyKey":"00000000-0000-0000-0000-0000000000ff","#,
                r#""ifMatch":"\"3\""}]}"#
            )
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["ops"][1]["ifMatch"], json!("\"3\""));
    }
}
