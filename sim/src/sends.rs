//! Who sends, and how often each op is sent.
//!
//! One sender per outbox: a request leaves only from the tab that holds the lock and runs an active
//! engine, and never while another live tab is the one that sent last (a dead leader's requests may
//! still be on the wire, which is real; it sends nothing new).
//!
//! Every send of an op is counted, and each resend is put down to its cause: an injected fault (the
//! previous request was lost, its answer lost, answered 5xx, 429, 401, a bare or in-use 409, it
//! stalled, or its leader died with it in flight), or an answer that asks for one (a conflict to
//! resend over, a failure the app retried). A resend with neither — the op sent again while its
//! request is still out, as two tabs sending one queue do — is a violation, faults or not.
//!
//! The ops a leader had in flight when it died are resent by the next leader under the same keys.

use std::collections::HashMap;

use outbox_core::{Batch, OpId};
use uuid::Uuid;

use crate::lock::Role;
use crate::world::{Fault, World};

#[derive(Debug, Default)]
pub struct SendLog {
    /// Each op's latest request.
    latest: HashMap<OpId, u64>,
    /// The (tab, epoch) that sent last.
    sender: Option<(usize, u64)>,
    /// Ops in flight when their leader died, and the key their next send must carry.
    resend_keys: HashMap<OpId, Uuid>,
}

impl SendLog {
    /// The app retried, resolved or discarded the op: a new key may be right now.
    pub fn app_resent(&mut self, id: &OpId) {
        self.resend_keys.remove(id);
    }
}

impl World {
    /// Checks and counts a request leaving from `tab`, before it is listed as `req`.
    pub fn check_sender(&mut self, tab: usize, req: u64, batch: &Batch) -> Result<(), String> {
        // A promoting tab runs its active engine from the moment it installs it (already paused as
        // the last leader said, and told the online state): it may send from then on.
        let active = self.tabs[tab]
            .engine
            .as_ref()
            .is_some_and(|e| !e.is_passive());
        if self.lock.holder != Some(tab) || self.tabs[tab].role == Role::Follower || !active {
            return Err(format!(
                "tab {tab} ({:?}) sent batch {} while tab {:?} holds the lock",
                self.tabs[tab].role, batch.id, self.lock.holder
            ));
        }
        let me = (tab, self.tabs[tab].epoch);
        if let Some((other, epoch)) = self.sends.sender {
            if (other, epoch) != me && self.alive(other, epoch) {
                return Err(format!(
                    "tab {tab} sent batch {} while tab {other}, which sent before, is alive",
                    batch.id
                ));
            }
        }
        self.sends.sender = Some(me);
        let faultless = self.profile.is_faultless();
        for op in &batch.ops {
            self.stats.op_sends += 1;
            if faultless {
                self.stats.faultless_op_sends += 1;
            }
            if let Some(key) = self.sends.resend_keys.remove(&op.id) {
                if key != op.idempotency_key {
                    return Err(format!(
                        "op {} was in flight when its leader died and is resent under a new key \
                         {} (was {key})",
                        op.id, op.idempotency_key
                    ));
                }
            }
            let Some(previous) = self.sends.latest.insert(op.id, req) else {
                self.stats.ops_sent += 1;
                if faultless {
                    self.stats.faultless_ops_sent += 1;
                }
                continue;
            };
            let p = &self.requests[&previous];
            let in_use = p.reply.as_ref().is_some_and(|reply| {
                let response = match &reply.results {
                    Some(results) => results.iter().find(|r| r.id == op.id).map(|r| &r.response),
                    None => Some(&reply.response),
                };
                response.is_some_and(|r| matches!(r.status, 401 | 409 | 429 | 500..))
            });
            let still_out = !p.answered
                && self.alive(p.tab, p.epoch)
                && self.tabs[p.tab].outstanding.contains(&p.batch.id);
            if still_out {
                return Err(format!(
                    "op {} sent again in batch {} while its request in batch {} is still out",
                    op.id, batch.id, p.batch.id
                ));
            }
            if p.fault != Fault::None || !p.answered || in_use {
                self.stats.fault_resends += 1;
                if faultless {
                    return Err(format!(
                        "op {} resent without any fault injected (previous request {previous})",
                        op.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// A leader dies: what it had in flight must go out again under the same keys.
    pub fn leader_died(&mut self, tab: usize, epoch: u64) {
        for request in self.requests.values() {
            if request.tab == tab
                && request.epoch == epoch
                && !request.answered
                && self.tabs[tab].outstanding.contains(&request.batch.id)
            {
                for op in &request.batch.ops {
                    self.sends.resend_keys.insert(op.id, op.idempotency_key);
                }
            }
        }
    }
}
