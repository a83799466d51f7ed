//! The model of IndexedDB: what is durable. Shared by every tab of the origin.
//!
//! Records are kept as the JSON text the runtime writes, and read back by parsing it, so a restore in
//! the simulation goes through exactly the serialisation a reload does (the float round trip among
//! it). A group commits atomically: all of its writes or none.
//!
//! With several tabs the store is read after nearly every commit; what a load parses is kept until
//! the next commit (parsing the same text again gives the same values).

use std::cell::RefCell;
use std::collections::BTreeMap;

use outbox_core::{
    BatchMark, ConfirmedDoc, OpId, OpRecord, Stored, Write, CLOCK_META_KEY, MARK_META_PREFIX,
    RETENTION_META_KEY,
};

use crate::server::Entity;

/// The pull cursor's meta key (the runtime's `CURSOR`).
pub const CURSOR: &str = "pull_cursor";

#[derive(Debug, Default)]
pub struct Store {
    ops: BTreeMap<OpId, String>,
    docs: BTreeMap<Entity, String>,
    meta: BTreeMap<String, String>,
    pub commits: u64,
    /// True time of the last commit.
    pub last_commit_at: u64,
    /// The parsed records and documents as of the commit count they were parsed at.
    parsed: RefCell<Option<Parsed>>,
}

/// A load's parsed records and documents, and the commit count they are of.
type Parsed = (u64, Vec<OpRecord>, Vec<ConfirmedDoc>);

impl Store {
    /// Commits a group. `Err` names a stored document that the group would make older.
    pub fn commit(&mut self, writes: &[Write], now: u64) -> Result<(), String> {
        self.last_commit_at = now;
        for write in writes {
            if let Write::PutDoc(doc) = write {
                let entity = (doc.collection.clone(), doc.key.clone());
                if let Some(held) = self.doc(&entity) {
                    let (old, new) = (version(&held), version(doc));
                    if new < old {
                        return Err(format!(
                            "stored version {new} of {entity:?} over version {old}"
                        ));
                    }
                }
            }
        }
        for write in writes {
            match write {
                Write::PutOp(record) => {
                    let text = serde_json::to_string(record).expect("records serialize");
                    self.ops.insert(record.id, text);
                }
                Write::DeleteOp(id) => {
                    self.ops.remove(id);
                }
                Write::PutDoc(doc) => {
                    let text = serde_json::to_string(doc).expect("docs serialize");
                    self.docs
                        .insert((doc.collection.clone(), doc.key.clone()), text);
                }
                Write::PutMeta { key, value } => {
                    self.meta.insert(key.clone(), value.clone());
                }
                Write::DeleteMeta { key } => {
                    self.meta.remove(key);
                }
            }
        }
        self.commits += 1;
        Ok(())
    }

    /// What a reload reads, parsed from the stored text.
    pub fn load(&self) -> (Stored, Option<String>) {
        let mut parsed = self.parsed.borrow_mut();
        if parsed.as_ref().is_none_or(|(at, _, _)| *at != self.commits) {
            *parsed = Some((
                self.commits,
                self.ops.values().map(|t| parse(t)).collect(),
                self.docs.values().map(|t| parse(t)).collect(),
            ));
        }
        let (_, records, docs) = parsed.as_ref().expect("parsed above");
        let stored = Stored {
            records: records.clone(),
            docs: docs.clone(),
            stated_retention_ms: self
                .meta
                .get(RETENTION_META_KEY)
                .and_then(|v| v.parse().ok()),
            clock_mark: self.meta.get(CLOCK_META_KEY).and_then(|v| v.parse().ok()),
            marks: self.marks().collect(),
        };
        (stored, self.meta.get(CURSOR).cloned())
    }

    /// The record of `id` as a restore reads it: through the mark of the batch it was sent in, if that
    /// batch's answer was never applied.
    pub fn record(&self, id: &OpId) -> Option<OpRecord> {
        let mut record: OpRecord = parse(self.ops.get(id)?);
        for marked in self.marks().flat_map(|m| m.ops) {
            marked.fold(&mut record);
        }
        Some(record)
    }

    /// The attempts the op's own record counts, without any mark.
    pub fn own_attempts(&self, id: &OpId) -> Option<u32> {
        self.ops
            .get(id)
            .map(|text| parse::<OpRecord>(text).attempts)
    }

    /// The ops whose stored reading `writes` change: those written, and those of a mark they drop.
    pub fn touched_by(&self, writes: &[Write]) -> Vec<OpId> {
        let mut ids = Vec::new();
        for write in writes {
            match write {
                Write::PutOp(record) => ids.push(record.id),
                Write::DeleteMeta { key } => {
                    if let Some(text) = self.meta.get(key) {
                        let mark = BatchMark::from_text(text).expect("a stored mark parses");
                        ids.extend(mark.ops.iter().map(|m| m.0));
                    }
                }
                _ => {}
            }
        }
        ids
    }

    /// The batches' in-flight marks ([`outbox_core::BatchMark`]), parsed from their meta values.
    pub fn marks(&self) -> impl Iterator<Item = BatchMark> + '_ {
        self.meta
            .range(MARK_META_PREFIX.to_owned()..)
            .take_while(|(k, _)| k.starts_with(MARK_META_PREFIX))
            .map(|(_, v)| BatchMark::from_text(v).expect("a stored mark parses"))
    }

    pub fn doc(&self, entity: &Entity) -> Option<ConfirmedDoc> {
        self.docs.get(entity).map(|t| parse(t))
    }

    pub fn op_ids(&self) -> impl Iterator<Item = &OpId> {
        self.ops.keys()
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).expect("what was stored parses back")
}

/// The integer version of a stored document (0 when it has none).
pub fn version(doc: &ConfirmedDoc) -> u64 {
    doc.version
        .as_deref()
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or(0)
}
