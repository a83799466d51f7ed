//! What the app was told, and the invariants checked against it and against the server's ledger.

use std::collections::{HashMap, HashSet};

use outbox_core::{OpId, OpKind};
use uuid::Uuid;

use crate::server::{Applied, Entity, Server};

/// The status the ops imply: the same checker as the core's property tests.
#[path = "../../core/tests/support/status_rules.rs"]
pub mod status_rules;

/// Where an op stands, as far as the app knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its enqueue has not resolved yet.
    Enqueuing,
    /// The enqueue resolved: the op is durable and live.
    Live,
    /// The enqueue rejected: it must leave no trace.
    Rejected,
    /// Acknowledged by the server.
    Acked,
    /// Dropped by server-wins after a conflict: it must not have been applied.
    Dropped,
    /// The app discarded it.
    Discarded,
}

#[derive(Clone, Debug)]
pub struct OpModel {
    pub tab: usize,
    pub entity: Entity,
    pub kind: OpKind,
    pub fate: Fate,
    /// The payload is one the server refuses for good.
    pub bad: bool,
    /// The app resent it after its outcome became unknown: it accepted that it may apply twice.
    pub risk_accepted: bool,
    /// Keys under which the op was declared unknown: never to be sent again.
    pub unknown_keys: HashSet<Uuid>,
    /// The ops of its entity the enqueuing tab showed when the app made it: it must reach the
    /// server after each of them.
    pub after: Vec<OpId>,
}

#[derive(Default)]
pub struct Oracle {
    pub ops: HashMap<OpId, OpModel>,
    /// Ops per entity, in enqueue order.
    pub lanes: HashMap<Entity, Vec<OpId>>,
}

impl Oracle {
    pub fn enqueued(
        &mut self,
        tab: usize,
        id: OpId,
        entity: Entity,
        kind: OpKind,
        bad: bool,
        after: Vec<OpId>,
    ) {
        self.lanes.entry(entity.clone()).or_default().push(id);
        self.ops.insert(
            id,
            OpModel {
                tab,
                entity,
                kind,
                fate: Fate::Enqueuing,
                bad,
                risk_accepted: false,
                unknown_keys: HashSet::new(),
                after,
            },
        );
    }

    pub fn op(&mut self, id: &OpId) -> &mut OpModel {
        self.ops.get_mut(id).expect("the oracle knows every op")
    }

    /// The server applied an op: at most once (unless the app accepted the risk), and only after every
    /// earlier op of its entity was applied or gone without effect. "Earlier" is the order the app saw:
    /// the ops its tab showed on the entity when it made this one (in one tab, every earlier op not yet
    /// settled). Ops two tabs made at once, neither seeing the other's, have no order the app could
    /// rely on; the leader puts them in the one lane order every tab shows.
    pub fn check_applied(&self, applied: &Applied, server: &Server) -> Result<(), String> {
        let model = &self.ops[&applied.op];
        let times = server.ledger.get(&applied.op).map_or(0, Vec::len);
        if times > 1 && !model.risk_accepted {
            return Err(format!(
                "op {} applied {times} times, under {:?}",
                applied.op, server.ledger[&applied.op]
            ));
        }
        if matches!(model.fate, Fate::Rejected | Fate::Enqueuing) {
            return Err(format!(
                "op {} applied although its enqueue was {:?}",
                applied.op, model.fate
            ));
        }
        for earlier in &model.after {
            let e = &self.ops[earlier];
            let settled = server.ledger.contains_key(earlier)
                || matches!(
                    e.fate,
                    Fate::Rejected | Fate::Dropped | Fate::Discarded | Fate::Acked
                );
            if !settled {
                return Err(format!(
                    "op {} applied before the earlier op {earlier} ({:?}) of {:?}",
                    applied.op, e.fate, applied.entity
                ));
            }
        }
        Ok(())
    }

    /// The engine reports an op acked: the server must have applied it (a delete may instead have
    /// found its goal reached).
    pub fn check_acked(&self, id: &OpId, server: &Server) -> Result<(), String> {
        let model = &self.ops[id];
        if model.kind != OpKind::Delete && !server.ledger.contains_key(id) {
            return Err(format!("op {id} acked but never applied"));
        }
        Ok(())
    }

    /// The engine dropped an op (server-wins), or failed one it says cannot have been applied.
    pub fn check_not_applied(&self, id: &OpId, server: &Server, what: &str) -> Result<(), String> {
        // Resent after its outcome became unknown: an earlier application may stand, as the app
        // accepted.
        if server.ledger.contains_key(id) && !self.ops[id].risk_accepted {
            return Err(format!(
                "op {id} reported {what} although the server applied it"
            ));
        }
        Ok(())
    }
}
