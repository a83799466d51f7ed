//! Our own tabs never conflict with each other: the chains of our recent acks.
//!
//! In one tab, an op queued behind another op of its entity moves to the state that op's ack produced
//! (`follow_acked_version`). Across tabs, an op made in one tab on the state before another tab's op
//! was acked reaches the leader after that ack; it moves along the same chain of our own acks
//! ([`Engine::follow_earlier_ack`]), or our own writes come back to it as a conflict.
//!
//! The chain must outlive the leader that acked: the next leader after a crash may read that op from
//! the store, or adopt it from a message, knowing nothing of the acks before it. So every confirmed
//! document the engine stores carries its entity's recent chain ([`ConfirmedDoc::acks`]): an ack and its
//! chain are one write. A restore follows each stored chain for the ops it read, and remembers the
//! most recent chains for the ops still to come ([`Engine::restore_ack_chains`]).

use super::*;
use crate::view::AckLink;

/// How many entities' recent acks an engine remembers for adoption: far more than can be acked in the
/// moments a follower's op takes to reach the leader.
const RECENT_ENTITIES: usize = 4096;
/// How many acks of one entity are remembered: a chain of our own writes an adopted op may follow.
const ACKS_PER_ENTITY: usize = 8;

/// The recent acks of one entity, oldest first.
#[derive(Debug)]
struct EntityAcks {
    collection: Arc<str>,
    key: Arc<str>,
    acks: Vec<AckLink>,
}

/// The recent acks of recently acked entities; the entity acked longest ago is forgotten first.
#[derive(Debug, Default)]
pub(super) struct RecentAcks {
    by_lane: FastMap<u64, EntityAcks>,
    order: VecDeque<u64>,
}

impl RecentAcks {
    /// The chain of the entity `(collection, key)`, whose lane hash is `hash`, oldest first.
    fn chain(&self, hash: u64, collection: &str, key: &str) -> &[AckLink] {
        match self.by_lane.get(&hash) {
            Some(e) if (&*e.collection, &*e.key) == (collection, key) => &e.acks,
            _ => &[],
        }
    }

    /// Adds `links` (oldest first) to the chain of the entity, keeping the newest.
    fn extend(&mut self, hash: u64, collection: &Arc<str>, key: &Arc<str>, links: Vec<AckLink>) {
        let entity = self.by_lane.entry(hash).or_insert_with(|| EntityAcks {
            collection: collection.clone(),
            key: key.clone(),
            acks: Vec::new(),
        });
        if (&*entity.collection, &*entity.key) != (&**collection, &**key) {
            // Another entity with the same hash: the newer one is remembered.
            *entity = EntityAcks {
                collection: collection.clone(),
                key: key.clone(),
                acks: Vec::new(),
            };
        }
        if entity.acks.is_empty() {
            self.order.push_back(hash);
        }
        entity.acks.extend(links);
        let over = entity.acks.len().saturating_sub(ACKS_PER_ENTITY);
        entity.acks.drain(..over);
        while self.order.len() > RECENT_ENTITIES {
            if let Some(old) = self.order.pop_front() {
                self.by_lane.remove(&old);
            }
        }
    }
}

impl Engine {
    /// Remembers what an ack produced, for the adoption of ops made on the same state in other tabs.
    pub(super) fn remember_ack(&mut self, acked: &OpRecord, result: &Confirmed) {
        let hash = self.lanes.hash(&acked.collection, &acked.key);
        let link = AckLink {
            base: acked.base_version.clone(),
            create_only: acked.create_only,
            version: result.version.clone(),
            deleted: result.doc.is_none(),
            at: self.now,
        };
        (self.recent_acks).extend(hash, &acked.collection, &acked.key, vec![link]);
    }

    /// The confirmed document of an entity as stored: with the chain of our recent acks of it.
    pub(super) fn stored_doc(
        &self,
        collection: &str,
        key: &str,
        state: &Confirmed,
    ) -> ConfirmedDoc {
        let hash = self.lanes.hash(collection, key);
        ConfirmedDoc {
            acks: self.recent_acks.chain(hash, collection, key).to_vec(),
            ..confirmed_doc(collection, key, state)
        }
    }

    /// Another tab made `record` on a state one of our acked ops started from, and the record got here
    /// after that ack. In one tab it would have queued behind that op and moved to the state the ack
    /// produced (`follow_acked_version`), then to the state of each of our later acks; so it moves now
    /// along the same chain of our own acks, or our own writes come back to it as a conflict. It
    /// follows only a chain that ends at the entity's confirmed state: anything else there is someone
    /// else's change, and a real conflict. Ops two tabs made at the same moment on the same state are
    /// ordered as the leader sent them: the later one is applied over the earlier, as in one tab.
    /// Returns whether the record moved.
    pub(super) fn follow_earlier_ack(&self, record: &mut OpRecord) -> bool {
        let hash = self.lanes.hash(&record.collection, &record.key);
        let chain = self
            .recent_acks
            .chain(hash, &record.collection, &record.key);
        let confirmed = self.view.confirmed(&record.collection, &record.key);
        follow_chain(chain, confirmed.map(|c| &c.version), record)
    }

    /// A restore's part of the chains ([`ConfirmedDoc::acks`] of the documents it read, by entity):
    /// each op read on a state before one of them follows it now, whatever its age (the chain must
    /// end at the confirmed state, so a change of anyone else's since stops it), and its new
    /// precondition is stored before anything is sent. The most recent chains are remembered for
    /// the ops other tabs have yet to post.
    pub(super) fn restore_ack_chains(
        &mut self,
        mut chains: Vec<(Arc<str>, Arc<str>, Vec<AckLink>)>,
    ) {
        for (collection, key, links) in &chains {
            let hash = self.lanes.hash(collection, key);
            let ops = &self.ops;
            let Some(lane) = self.lanes.get(hash, |head| {
                let r = &ops[&head].record;
                (&*r.collection, &*r.key) == (&**collection, &**key)
            }) else {
                continue;
            };
            let ids: Vec<OpId> = lane.iter().collect();
            let version = self
                .view
                .confirmed(collection, key)
                .map(|c| c.version.clone());
            for id in ids {
                let entry = self.ops.get_mut(&id).expect("lane op exists");
                if follow_chain(links, version.as_ref(), &mut entry.record) {
                    self.deferred.push(Effect::Persist(entry.record.clone()));
                }
            }
        }
        // Oldest first, so the newest are the last forgotten.
        crate::order::sort_by_key(&mut chains, |(_, _, links)| {
            (0, links.last().map_or(0, |l| l.at), 0)
        });
        let skip = chains.len().saturating_sub(RECENT_ENTITIES);
        for (collection, key, links) in chains.into_iter().skip(skip) {
            let hash = self.lanes.hash(&collection, &key);
            self.recent_acks.extend(hash, &collection, &key, links);
        }
    }
}

/// Moves `record` along `chain` (our acks of its entity, oldest first) from the state it was made on,
/// if the chain leads from there to `confirmed` (the entity's confirmed version). Only an op whose
/// precondition the engine derived and that was never sent moves. Returns whether it moved.
fn follow_chain(
    chain: &[AckLink],
    confirmed: Option<&Option<String>>,
    record: &mut OpRecord,
) -> bool {
    let Some(confirmed) = confirmed else {
        return false;
    };
    if chain.is_empty() || !record.auto_base || record.attempts > 0 {
        return false;
    }
    let mut state = (record.base_version.clone(), record.create_only);
    let mut reached: Option<&AckLink> = None;
    for _ in 0..chain.len() {
        let next = chain
            .iter()
            .rev()
            .find(|ack| (&ack.base, ack.create_only) == (&state.0, state.1));
        let Some(ack) = next else {
            break;
        };
        reached = Some(ack);
        state = settling::precondition_after(&record.kind, &ack.version, !ack.deleted);
        if ack.version == *confirmed {
            break;
        }
    }
    if reached.is_none_or(|r| r.version != *confirmed) {
        return false;
    }
    let moved = (state.0 != record.base_version) || (state.1 != record.create_only);
    (record.base_version, record.create_only) = state;
    moved
}
