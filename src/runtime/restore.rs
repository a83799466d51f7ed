//! Restoring the engine from the store: at open, and when a tab re-reads what the others wrote.
//!
//! One transaction reads the meta records, the op records in parts, the confirmed documents and the
//! sync history ([`crate::store::Part`]). Each op record is parsed and admitted into the engine
//! ([`Restoring::admit`]) as its part arrives, while IndexedDB reads the next part. What depends on the
//! order of the ops is done once the last has arrived ([`Restoring::finish`]). So the records never sit
//! in a list of their own: they go straight into the engine's op table. The meta values come first,
//! since admitting a record needs the marks and the clock mark they hold. When the first part has
//! arrived, before any record is parsed, and after each part, the caller hears how far the restore has
//! come ([`Restoring::status`]), so an app can show a long restore as it goes (`options.onStatus`). How
//! many records there are is estimated from the parts read (they are of about one size), exact after
//! the last: the store's `count()` would cost a tenth of the restore ([`crate::store::Part`]).

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
    tally: Tally,
}

/// How far a restore's read has come.
#[derive(Default)]
struct Tally {
    /// How many op records the store holds: estimated from the parts read so far, exact after the last.
    total: usize,
    /// The op records read so far, and in how many parts.
    records: usize,
    parts: usize,
    /// What `progress` was last told: `(records, total)`.
    shown: Option<(usize, usize)>,
}

/// Hears how a restore goes: the restore so far, and how many records the store holds (estimated
/// until the last part).
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
/// `progress` hears how it goes: when the first part of the records has arrived, and after each part.
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
        tally: Tally::default(),
    });
    store
        .read_for_restore(|part| {
            let read = &mut *read.borrow_mut();
            match part {
                // First, and again should the read start over: everything taken in so far is dropped.
                Part::Meta(entries) => {
                    read.tally = Tally::default();
                    (read.stored, read.meta) = split_meta(entries);
                    read.admitting = match start(&read.stored) {
                        Ok(restoring) => Admitting::Records(Box::new(restoring)),
                        Err(error) => Admitting::Refused(error),
                    };
                }
                Part::Values { values, parts_left } => {
                    let Admitting::Records(restoring) = &mut read.admitting else {
                        return;
                    };
                    let len = values.length() as usize;
                    let tally = &mut read.tally;
                    if tally.parts == 0 {
                        // Before the first record is parsed: this part is about one in so many. The
                        // op table is sized for an eighth more (a few percent off would otherwise
                        // grow it once more near the end).
                        tally.total = len * (parts_left + 1);
                        restoring.reserve(tally.total + tally.total / 8);
                        tally.show(restoring, progress);
                    }
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
                        None => {
                            tally.records += len;
                            tally.parts += 1;
                            tally.total = tally.records + parts_left * tally.records / tally.parts;
                            tally.show(restoring, progress);
                        }
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
        ..
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

impl Tally {
    /// Tells `progress` how far the restore has come, if that changed since it was last told.
    fn show(&mut self, restoring: &Restoring, progress: OnProgress<'_>) {
        let now = (self.records, self.total);
        if self.shown != Some(now) {
            self.shown = Some(now);
            progress(restoring, self.total);
        }
    }
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
