//! The fake IndexedDB: the writes of every group that committed, in order, and the records read back as
//! a restore reads them (through the in-flight mark of a batch of several ops).

use std::collections::{HashMap, HashSet};

use outbox_core::{BatchMark, OpId, OpRecord, Stored, Write, MARK_META_PREFIX};

#[derive(Default)]
pub struct Store {
    records: HashMap<OpId, OpRecord>,
    /// Meta values: the in-flight marks among them.
    meta: HashMap<String, String>,
}

impl Store {
    /// Applies a committed group's writes. Confirmed documents are the view's business
    /// (tests/view_model.rs).
    pub fn commit(&mut self, writes: &[Write]) {
        for write in writes {
            match write {
                Write::PutOp(record) => {
                    self.records.insert(record.id, record.clone());
                }
                Write::DeleteOp(id) => {
                    self.records.remove(id);
                }
                Write::PutMeta { key, value } => {
                    self.meta.insert(key.clone(), value.clone());
                }
                Write::DeleteMeta { key } => {
                    self.meta.remove(key);
                }
                Write::PutDoc(_) => {}
            }
        }
    }

    /// The stored record of `id`, read through any mark that names it.
    pub fn read(&self, id: &OpId) -> Option<OpRecord> {
        let mut record = self.records.get(id)?.clone();
        for mark in self.marks() {
            mark.ops.iter().for_each(|m| _ = m.fold(&mut record));
        }
        Some(record)
    }

    /// Every stored record, read through the marks.
    pub fn read_all(&self) -> Vec<OpRecord> {
        self.records.keys().filter_map(|id| self.read(id)).collect()
    }

    /// What a restore gets: the records as written and the marks, which the engine reads them through.
    pub fn stored(&self) -> Stored {
        Stored {
            records: self.records.values().cloned().collect(),
            marks: self.marks().collect(),
            ..Stored::default()
        }
    }

    /// The ids of the stored records.
    pub fn ids(&self) -> HashSet<OpId> {
        self.records.keys().copied().collect()
    }

    /// No record and no mark left.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.marks().next().is_none()
    }

    fn marks(&self) -> impl Iterator<Item = BatchMark> + '_ {
        self.meta
            .iter()
            .filter(|(k, _)| k.starts_with(MARK_META_PREFIX))
            .map(|(_, text)| BatchMark::from_text(text).expect("a mark parses"))
    }
}
