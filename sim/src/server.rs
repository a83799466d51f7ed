//! The model server: docs/PROTOCOL.md reduced to what decides exactly-once.
//!
//! Documents with integer versions and tombstones; idempotency records keyed by key, replayed before
//! preconditions, **expiring** after the TTL; keys in flight answered 409; `If-Match` /
//! `If-None-Match: *` against the live document; only 2xx recorded. It also keeps the ledger the
//! checks read: which op (the simulator knows the op behind every request) was applied under which
//! key, and the first body sent under each key.

use std::collections::{HashMap, HashSet};

use outbox_core::{ConfirmedDoc, OpId, OpKind, Response, SendOp};
use serde_json::{json, Value};
use uuid::Uuid;

/// An entity: (collection, key).
pub type Entity = (String, String);

const PROBLEMS: &str = "https://outbox-sync.dev/problems/";

#[derive(Clone, Debug)]
struct Doc {
    version: u64,
    live: bool,
    doc: Value,
}

#[derive(Clone, Debug)]
struct KeyRecord {
    fingerprint: String,
    stored_at: u64,
    response: Response,
    op: OpId,
}

/// One application of an op's effect.
#[derive(Clone, Debug)]
pub struct Applied {
    pub op: OpId,
    pub key: Uuid,
    pub entity: Entity,
}

/// The server's answer to one op, and what it did.
pub struct Processed {
    pub response: Response,
    pub applied: Option<Applied>,
}

/// See the module docs.
pub struct Server {
    pub ttl_ms: u64,
    docs: HashMap<Entity, Doc>,
    keys: HashMap<Uuid, KeyRecord>,
    processing: HashSet<Uuid>,
    /// The first body seen under each key.
    bodies: HashMap<Uuid, String>,
    /// op -> the keys it was applied under.
    pub ledger: HashMap<OpId, Vec<Uuid>>,
    /// entity -> the position of its latest change, for pull.
    changed_at: HashMap<Entity, u64>,
    next_change: u64,
    /// Writes by other clients, per entity.
    pub foreign: HashMap<Entity, u64>,
}

/// The body text the runtime sends for an op (the fetch transport's `payload.text()`).
pub fn body_text(op: &SendOp) -> Option<String> {
    (op.kind != OpKind::Delete).then(|| op.payload.text().to_owned())
}

impl Server {
    pub fn new(ttl_ms: u64) -> Server {
        Server {
            ttl_ms,
            docs: HashMap::new(),
            keys: HashMap::new(),
            processing: HashSet::new(),
            bodies: HashMap::new(),
            ledger: HashMap::new(),
            changed_at: HashMap::new(),
            next_change: 1,
            foreign: HashMap::new(),
        }
    }

    /// A request for `op` arrives: it either starts processing (`Ok`) or is answered at once (409: the
    /// same key is still being processed).
    pub fn begin(&mut self, op: &SendOp) -> Result<(), Response> {
        if !self.processing.insert(op.idempotency_key) {
            return Err(
                problem(409, "idempotency-key-in-use", None).with_header("Retry-After", "1")
            );
        }
        Ok(())
    }

    /// Processing of `op` ends at `now`: the answer, and the effect it had. `Err` is a violation the
    /// client caused (a changed body under one key, a resend past the retention).
    pub fn finish(&mut self, op: &SendOp, now: u64) -> Result<Processed, String> {
        self.processing.remove(&op.idempotency_key);
        let body = body_text(op);
        let text = body.clone().unwrap_or_default();
        match self.bodies.get(&op.idempotency_key) {
            Some(first) if *first != text => {
                return Err(format!(
                    "op {} sent two different bodies under key {}: {first} / {text}",
                    op.id, op.idempotency_key
                ))
            }
            Some(_) => {}
            None => {
                self.bodies.insert(op.idempotency_key, text.clone());
            }
        }
        let entity: Entity = (op.collection.to_string(), op.key.to_string());
        let fingerprint = format!("{:?} {:?} {text}", op.kind, entity);
        if let Some(record) = self.keys.get(&op.idempotency_key).cloned() {
            if now < record.stored_at.saturating_add(self.ttl_ms) {
                if record.fingerprint != fingerprint {
                    return Ok(Processed {
                        response: problem(422, "idempotency-key-reused", None),
                        applied: None,
                    });
                }
                return Ok(Processed {
                    response: record.response.with_header("Idempotent-Replayed", "true"),
                    applied: None,
                });
            }
            // Expired: the key means nothing any more. A client must never get here with an op that
            // nothing else stops from applying twice.
            self.keys.remove(&op.idempotency_key);
            if op.base_version.is_none() {
                return Err(format!(
                    "op {} was resent under key {} after the server forgot it (applied at {}, now {now})",
                    op.id, op.idempotency_key, record.stored_at
                ));
            }
        }
        let current = self.docs.get(&entity).cloned();
        let live = current.as_ref().filter(|d| d.live);
        if let Some(text) = &body {
            if serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("bad").cloned())
                == Some(json!(true))
            {
                return Ok(Processed {
                    response: problem(422, "invalid-request", None),
                    applied: None,
                });
            }
        }
        if let Some(expected) = &op.base_version {
            if live.is_none_or(|d| etag(d.version) != *expected) {
                return Ok(Processed {
                    response: conflict(current.as_ref()),
                    applied: None,
                });
            }
        }
        if op.create_only && live.is_some() {
            return Ok(Processed {
                response: conflict(current.as_ref()),
                applied: None,
            });
        }
        let version = current.as_ref().map_or(0, |d| d.version) + 1;
        let (status, next) = match op.kind {
            OpKind::Put | OpKind::Custom { .. } => {
                let status = if live.is_some() { 200 } else { 201 };
                (
                    status,
                    Doc {
                        version,
                        live: true,
                        doc: op.payload.value(),
                    },
                )
            }
            OpKind::Patch => {
                let Some(live) = live else {
                    return Ok(Processed {
                        response: missing(current.as_ref()),
                        applied: None,
                    });
                };
                let mut doc = live.doc.clone();
                json_patch::merge(&mut doc, &op.payload.value());
                (
                    200,
                    Doc {
                        version,
                        live: true,
                        doc,
                    },
                )
            }
            OpKind::Delete => {
                if live.is_none() {
                    return Ok(Processed {
                        response: missing(current.as_ref()),
                        applied: None,
                    });
                }
                (
                    204,
                    Doc {
                        version,
                        live: false,
                        doc: Value::Null,
                    },
                )
            }
        };
        let mut response = Response::status(status).with_header("ETag", etag(version));
        if next.live {
            response = response.with_body(next.doc.clone());
        }
        self.docs.insert(entity.clone(), next);
        self.changed_at.insert(entity.clone(), self.next_change);
        self.next_change += 1;
        self.keys.insert(
            op.idempotency_key,
            KeyRecord {
                fingerprint,
                stored_at: now,
                response: response.clone(),
                op: op.id,
            },
        );
        self.ledger
            .entry(op.id)
            .or_default()
            .push(op.idempotency_key);
        Ok(Processed {
            response,
            applied: Some(Applied {
                op: op.id,
                key: op.idempotency_key,
                entity,
            }),
        })
    }

    /// Another client writes an entity: a put of `doc`, or a delete (`None`).
    pub fn foreign_write(&mut self, entity: &Entity, doc: Option<Value>) {
        let current = self.docs.get(entity);
        if doc.is_none() && current.is_none_or(|d| !d.live) {
            return;
        }
        let version = current.map_or(0, |d| d.version) + 1;
        let next = match doc {
            Some(doc) => Doc {
                version,
                live: true,
                doc,
            },
            None => Doc {
                version,
                live: false,
                doc: Value::Null,
            },
        };
        self.docs.insert(entity.clone(), next);
        self.changed_at.insert(entity.clone(), self.next_change);
        self.next_change += 1;
        *self.foreign.entry(entity.clone()).or_default() += 1;
    }

    /// The op a key was applied for, if the server still remembers it.
    pub fn remembers(&self, key: &Uuid) -> Option<OpId> {
        self.keys.get(key).map(|r| r.op)
    }

    /// Changes after `cursor`, state-based and in order of their latest change.
    pub fn pull(&self, cursor: u64, limit: usize) -> (Vec<ConfirmedDoc>, u64, bool) {
        let mut changed: Vec<(u64, &Entity)> = self
            .changed_at
            .iter()
            .filter(|(_, at)| **at > cursor)
            .map(|(e, at)| (*at, e))
            .collect();
        changed.sort();
        let has_more = changed.len() > limit;
        changed.truncate(limit);
        let next = changed.last().map_or(cursor, |(at, _)| *at);
        let docs = changed
            .into_iter()
            .map(|(_, e)| self.state(e).expect("changed entities exist"))
            .collect();
        (docs, next, has_more)
    }

    /// The current state of an entity, as pull reports it.
    pub fn state(&self, entity: &Entity) -> Option<ConfirmedDoc> {
        self.docs.get(entity).map(|d| ConfirmedDoc {
            collection: entity.0.clone(),
            key: entity.1.clone(),
            version: Some(etag(d.version)),
            doc: if d.live { d.doc.clone() } else { Value::Null }.into(),
            deleted: !d.live,
            acks: Vec::new(),
        })
    }

    /// Every entity the server knows.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.docs.keys()
    }
}

pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn state_json(doc: Option<&Doc>) -> Value {
    match doc {
        None => Value::Null,
        Some(d) => json!({
            "version": d.version,
            "etag": etag(d.version),
            "deleted": !d.live,
            "doc": if d.live { d.doc.clone() } else { Value::Null },
        }),
    }
}

fn problem(status: u16, kind: &str, current: Option<Value>) -> Response {
    let mut body = json!({ "type": format!("{PROBLEMS}{kind}"), "title": kind, "status": status });
    if let Some(current) = current {
        body["current"] = current;
    }
    Response::status(status)
        .with_header("Content-Type", "application/problem+json")
        .with_body(body)
}

fn conflict(current: Option<&Doc>) -> Response {
    let mut r = problem(412, "version-conflict", Some(state_json(current)));
    if let Some(d) = current {
        r = r.with_header("ETag", etag(d.version));
    }
    r
}

fn missing(current: Option<&Doc>) -> Response {
    match current {
        None => problem(404, "not-found", Some(Value::Null)),
        Some(d) => problem(410, "gone", Some(state_json(Some(d)))),
    }
}
