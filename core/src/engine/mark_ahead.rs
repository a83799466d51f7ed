//! Marking the next sends ahead: one request per op without a commit on the way to each request.
//!
//! With one op per request (`max_ops == 1`), every send used to rewrite its op's record (the in-flight
//! mark) and wait for that commit, which waited for the commit running before it: with four requests in
//! flight, each answer's next request sat behind one or two commits. Now, while requests are in
//! flight, the engine marks the next ones ahead, in one [`BatchMark`] for the ops that will go next:
//! each with the attempt its send will count and its key's horizon, exactly what a send's own mark
//! would say. When a slot frees, the next op goes with no write of its own, and the `EffectQueue`
//! holds it only for its own writes (the mark ahead, long durable by then), not for the ack that freed
//! the slot.
//!
//! A mark ahead of an op that never leaves says it may have: a restore then reads it as sent
//! ([`crate::MarkedOp::fold`]) and resends it under its key, which the server has never seen (its
//! first application). That costs an attempt, or, when the restore comes after the key's horizon, an
//! unknown, as for an op in flight at the crash. A mark ahead is used only while fresh
//! ([`AHEAD_FRESH_MS`]): an op that leaves much later gets a mark of its own, so its horizon counts
//! from its real send.
//!
//! A mark ahead is deleted once each op it names has left it: sent under it and settled (its record
//! then written as it is), sent under a mark of its own, marked ahead again, or gone from the queue.

use super::*;

/// How long a mark ahead stands for its op's send.
const AHEAD_FRESH_MS: u64 = 5_000;

/// An op's part of a mark ahead.
#[derive(Debug)]
pub(super) struct Ahead {
    /// The mark's name: the first op id of its [`BatchMark`].
    name: OpId,
    /// The attempt the op's send will count.
    attempts: u32,
    /// The horizon the mark gave the op's key.
    horizon: u64,
    /// When the mark was made.
    at: u64,
    /// The op left under it.
    sent: bool,
}

impl Engine {
    /// Whether the op about to be sent alone as attempt `attempts` may leave under its mark ahead
    /// (with no write of its own); if not, it leaves its mark ahead. Sets the horizon the mark gave.
    pub(super) fn send_under_mark_ahead(&mut self, id: OpId, attempts: u32, alone: bool) -> bool {
        let now = self.now;
        let Some(entry) = self.ops.get_mut(&id) else {
            return false;
        };
        match entry.ahead.as_deref_mut() {
            Some(a)
                if alone
                    && a.attempts == attempts
                    && now.saturating_sub(a.at) <= AHEAD_FRESH_MS =>
            {
                a.sent = true;
                entry.record.horizon.get_or_insert(a.horizon);
                true
            }
            _ => {
                entry.ahead = None;
                false
            }
        }
    }

    /// Marks ahead the ops that will be sent next, while requests are in flight: as many as may fly at
    /// once, less those marked ahead already.
    pub(super) fn mark_ahead(&mut self, fx: &mut Vec<Effect>) {
        if self.config.max_ops != 1 || self.batches.is_empty() {
            return;
        }
        let now = self.now;
        let horizon = now.saturating_add(self.safe_retention_ms());
        let mut marked = 0;
        let mut ops = Vec::new();
        for &id in self.ready.values() {
            if marked + ops.len() >= self.config.max_in_flight {
                break;
            }
            let entry = &self.ops[&id];
            let attempts = entry.record.attempts.saturating_add(1);
            let fresh = entry.ahead.as_deref().is_some_and(|a| {
                a.attempts == attempts && now.saturating_sub(a.at) <= AHEAD_FRESH_MS
            });
            if fresh {
                marked += 1;
            } else if entry.durable && self.past_memory(id) == Memory::Remembered {
                ops.push(MarkedOp(
                    id,
                    attempts,
                    entry.record.horizon.unwrap_or(horizon),
                ));
            }
        }
        // Named by an op that names no other mark ahead, so no two share a meta key.
        let Some(first) = ops
            .iter()
            .position(|m| !self.marks_ahead.iter().any(|(name, _)| *name == m.0))
        else {
            return;
        };
        ops.swap(0, first);
        let name = ops[0].0;
        for &MarkedOp(id, attempts, horizon) in &ops {
            let entry = self.ops.get_mut(&id).expect("a ready op exists");
            entry.ahead = Some(Box::new(Ahead {
                name,
                attempts,
                horizon,
                at: now,
                sent: false,
            }));
        }
        self.marks_ahead
            .push((name, ops.iter().map(|m| m.0).collect()));
        fx.push(Effect::PersistMark(BatchMark { ops }));
    }

    /// A single-op batch settled: if it left under a mark ahead, its record is written as it now is
    /// (unless this call writes it already), and it leaves the mark.
    pub(super) fn settled_ahead(&mut self, id: OpId, fx: &mut Vec<Effect>) {
        let Some(entry) = self.ops.get_mut(&id) else {
            return;
        };
        if !entry.ahead.as_deref().is_some_and(|a| a.sent) {
            return;
        }
        entry.ahead = None;
        self.write_as_it_is(id, fx);
    }

    /// Deletes each mark ahead that no op stands on any more, after the writes that replaced it: run
    /// at the end of every call. An op given up before it left (unknown, failed) leaves its mark here.
    pub(super) fn drop_spent_marks_ahead(&mut self, fx: &mut Vec<Effect>) {
        let ops = &mut self.ops;
        self.marks_ahead.retain_mut(|(name, ids)| {
            ids.retain(|id| {
                let Some(entry) = ops.get_mut(id) else {
                    return false;
                };
                if entry.record.state.is_halted() {
                    entry.ahead = None;
                }
                entry.ahead.as_deref().is_some_and(|a| a.name == *name)
            });
            if ids.is_empty() {
                fx.push(Effect::DeleteMark(*name));
            }
            !ids.is_empty()
        });
    }

    /// Forgets the marks ahead (a change of role: whoever leads next reads them from the store, folds
    /// them in and deletes them, so this engine must never send on them).
    pub(super) fn forget_marks_ahead(&mut self) {
        for (_, ids) in std::mem::take(&mut self.marks_ahead) {
            for id in ids {
                if let Some(entry) = self.ops.get_mut(&id) {
                    entry.ahead = None;
                }
            }
        }
    }
}
