//! The status is exactly what the ops imply: after every step, each field of `status()` is derived again
//! from the engine's ops (lanes by seq, each head's state and backoff), the model's switches (online,
//! paused) and the errors the model saw announced, and compared (`support/status_rules.rs`):
//!
//! * counts per state;
//! * the state by the table of `SyncState` (stalled, paused, offline, blocked, syncing, retrying, error,
//!   idle), and `next_attempt_at` as the earliest backoff of a lane head;
//! * progress: present exactly while some op is left to settle (pending or in flight, not behind a
//!   halted head), `total - current` is that number, and `current` never goes back within a sync;
//! * `last_error`: the error of the live op that was announced (retry scheduled, failed, conflict,
//!   unknown) most recently; after a restore, in seq order of the stored records;
//! * `drained` is told exactly when a sync ends (the progress goes from some to none).

use std::cell::Cell;

use outbox_core::{OpError, Progress};

use super::*;

#[path = "../support/status_rules.rs"]
mod status_rules;

/// What the status check remembers between steps.
#[derive(Debug, Default)]
pub(super) struct StatusModel {
    /// The op -> when its current error was announced (a counter).
    errors: HashMap<OpId, u64>,
    clock: u64,
    /// The progress seen at the last check, for monotony within a sync.
    last_progress: Cell<Option<Progress>>,
    /// A `drained` event came since the last check.
    drained: Cell<bool>,
}

impl StatusModel {
    fn note(&mut self, id: OpId) {
        self.clock += 1;
        self.errors.insert(id, self.clock);
    }

    /// An event moved an op's error: it met one, or it left the engine.
    pub(super) fn on_event(&mut self, event: &Event) {
        match event {
            Event::RetryScheduled { id, .. }
            | Event::Failed { id, .. }
            | Event::Unknown { id, .. }
            | Event::Conflict { id, .. } => self.note(*id),
            Event::Acked { id, .. } | Event::Discarded { id, .. } => {
                self.errors.remove(id);
            }
            Event::Drained => self.drained.set(true),
            _ => {}
        }
    }

    /// A restore: the engine knows the stored records only, and orders their errors by seq.
    pub(super) fn restart(&mut self, store: &[OpRecord]) {
        self.errors.clear();
        self.last_progress.set(None);
        self.drained.set(false);
        let mut with_error: Vec<&OpRecord> =
            store.iter().filter(|r| r.last_error.is_some()).collect();
        with_error.sort_by_key(|r| r.seq);
        for record in with_error {
            self.note(record.id);
        }
    }
}

impl Sim {
    /// Derives the status from the ops and compares it with `status()`.
    pub(super) fn check_status(&self) {
        let s = self.engine.status();
        let records: Vec<&OpRecord> = self.engine.ops().collect();
        let switches = status_rules::Switches {
            paused: self.paused,
            online: self.online,
        };
        if let Err(e) = status_rules::check_status(&s, &records, Some(self.now), &switches) {
            panic!("{e}");
        }

        let model = &self.status_model;
        if let (Some(last), Some(p)) = (model.last_progress.get(), s.progress) {
            assert!(
                p.current >= last.current,
                "progress went back: {last:?} -> {p:?}"
            );
        }
        let drained = model.drained.replace(false);
        let ended = model.last_progress.get().is_some() && s.progress.is_none();
        assert_eq!(drained, ended, "drained is told exactly when a sync ends");
        model.last_progress.set(s.progress);

        let mut newest: Option<(u64, &OpError)> = None;
        for r in &records {
            if let Some(error) = &r.last_error {
                let at = *model
                    .errors
                    .get(&r.id)
                    .unwrap_or_else(|| panic!("op {} holds an error never announced", r.id));
                if newest.is_none_or(|(t, _)| at > t) {
                    newest = Some((at, error));
                }
            }
        }
        assert_eq!(
            s.last_error.as_ref(),
            newest.map(|(_, e)| e),
            "lastError is the newest error of a live op"
        );
    }
}
