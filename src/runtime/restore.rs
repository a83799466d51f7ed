//! Restoring the engine from the store: at open, and when a tab re-reads what the others wrote.
//!
//! One transaction reads the meta records, the op records in parts, the confirmed documents and the
//! sync history ([`crate::store::Part`]). Each op record is parsed and admitted into the engine
//! ([`Restoring::admit`]) as its part arrives, while IndexedDB reads the next part. What depends on the
//! order of the ops is done once the last has arrived ([`Restoring::finish`]). So the records never sit
//! in a list of their own: they go straight into the engine's op table. The meta values come first,
//! since admitting a record needs the marks and the clock mark they hold. The op count comes next, before
//! any record: from then on, and after each part, the caller hears how far the restore has come
//! ([`Restoring::status`]), so an app can show a long restore as it goes (`options.onStatus`).

use std::cell::RefCell;

use outbox_core::{
    BatchMark, Config, ConfirmedDoc, CoreError, Engine, Restoring, StoredMeta, CLOCK_META_KEY,
    MARK_META_PREFIX, RETENTION_META_KEY,
};
use wasm_bindgen::JsValue;

use super::input::{decode_docs, decode_records, parse_record};
use super::quarantine::Quarantined;
use super::Meta;
use crate::clock;
use crate::error::Result;
use crate::store::{IdbStore, Part};

/// Where a restore stands while it reads the op records.
enum Admitting {
    /// Every record so far read and admitted.
    Records(Box<Restoring>),
    /// A record could not be read: the records are read again with their keys, so that it can be set
    /// aside by its key ([`decode_records`]).
    Unreadable,
    /// A record was refused by the engine (a second record of one op): the restore fails.
    Refused(CoreError),
}

/// What a restore's read has taken in so far.
struct Read {
    /// The meta values a restore needs.
    stored: StoredMeta,
    /// The other meta values, by name.
    meta: Meta,
    admitting: Admitting,
    docs: Vec<ConfirmedDoc>,
    history: Vec<JsValue>,
    /// How many op records the store holds.
    total: usize,
}

/// Hears how a restore goes: the restore so far, and how many records the store holds.
pub(super) type OnProgress<'a> = &'a dyn Fn(&Restoring, usize);

/// What a restore read from the store, as of one snapshot.
pub(super) struct Restored {
    pub engine: Engine,
    /// The records set aside as unreadable.
    pub quarantined: Vec<Quarantined>,
    /// The meta values other than those the engine takes (the pull cursor, the client id).
    pub meta: Meta,
    /// The stored history entries, oldest first, as stored (`history::read_entries` reads them).
    pub history: Vec<JsValue>,
}

/// The engine restored from `store` at engine time `now`, and the rest of what the same read found.
/// `progress` hears how it goes: once the records are counted, and after each part of them.
pub(super) async fn restore_stored(
    store: &IdbStore,
    config: &Config,
    now: u64,
    progress: OnProgress<'_>,
) -> Result<Restored> {
    let start = |stored: &StoredMeta| {
        Engine::restoring(config.clone(), clock::randomness(), stored.clone(), now)
    };
    let read = RefCell::new(Read {
        stored: StoredMeta::default(),
        meta: Meta::new(),
        // Replaced by the meta records, which come first.
        admitting: Admitting::Unreadable,
        docs: Vec::new(),
        history: Vec::new(),
        total: 0,
    });
    store
        .read_for_restore(|part| {
            let read = &mut *read.borrow_mut();
            match part {
                // First, and again should the read start over: everything taken in so far is dropped.
                Part::Meta(entries) => {
                    (read.stored, read.meta) = split_meta(entries);
                    read.admitting = match start(&read.stored) {
                        Ok(restoring) => Admitting::Records(Box::new(restoring)),
                        Err(error) => Admitting::Refused(error),
                    };
                }
                Part::Count(count) => {
                    read.total = count;
                    if let Admitting::Records(restoring) = &mut read.admitting {
                        restoring.reserve(count);
                        progress(restoring, count);
                    }
                }
                Part::Values(values) => {
                    let Admitting::Records(restoring) = &mut read.admitting else {
                        return;
                    };
                    let mut next = None;
                    for value in values.iter() {
                        match parse_record(value.as_string().as_deref()) {
                            Ok(record) => match restoring.admit(record) {
                                Ok(()) => continue,
                                Err(error) => next = Some(Admitting::Refused(error)),
                            },
                            Err(_) => next = Some(Admitting::Unreadable),
                        }
                        break;
                    }
                    match next {
                        Some(next) => read.admitting = next,
                        None => progress(restoring, read.total),
                    }
                }
                Part::Docs(docs) => read.docs = decode_docs(docs.to_vec()),
                Part::History(entries) => read.history = entries.to_vec(),
            }
        })
        .await?;
    let Read {
        stored,
        meta,
        admitting,
        docs,
        history,
        total: _,
    } = read.into_inner();
    let (restoring, quarantined) = match admitting {
        Admitting::Records(restoring) => (*restoring, Vec::new()),
        Admitting::Refused(error) => return Err(error.into()),
        Admitting::Unreadable => {
            let (records, quarantined) = decode_records(store.load_op_entries().await?);
            let mut restoring = start(&stored)?;
            restoring.reserve(records.len());
            for record in records {
                restoring.admit(record)?;
            }
            (restoring, quarantined)
        }
    };
    Ok(Restored {
        engine: restoring.finish(docs),
        quarantined,
        meta,
        history,
    })
}

/// The meta values a restore needs (the server's stated retention, the clock mark, the marks of pushes
/// in flight), and the others by name.
fn split_meta(entries: Vec<(JsValue, JsValue)>) -> (StoredMeta, Meta) {
    let mut stored = StoredMeta::default();
    let mut meta = Meta::new();
    for (key, value) in entries {
        let (Some(key), Some(value)) = (key.as_string(), value.as_string()) else {
            continue;
        };
        if key == RETENTION_META_KEY {
            stored.stated_retention_ms = value.parse().ok();
        } else if key == CLOCK_META_KEY {
            stored.clock_mark = value.parse().ok();
        } else if key.starts_with(MARK_META_PREFIX) {
            // One that cannot be read is left as it is: it names no op this engine could fold it into.
            stored.marks.extend(BatchMark::from_text(&value));
        } else {
            meta.push((key, value));
        }
    }
    (stored, meta)
}
