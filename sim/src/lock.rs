//! The leader lock: one Web Lock per outbox. Every open tab asks for it; the holder leads (sends,
//! pulls, adopts what the others store) and the others follow. Web Locks grant in request order, so
//! when the holder dies the lock goes at once to the open tab that has waited longest; a tab that opens
//! while it is free takes it at open.
//!
//! A tab granted the lock is *promoting* until it has read the store and rebuilt its engine as an
//! active one ([`crate::rebuild`]): its read comes after the grant, and the grant after the previous
//! holder died, so nothing it sends is older than the previous leader's last commit.

use std::collections::VecDeque;

use crate::world::{Ev, World};

/// What a tab is to the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Waits for the lock; its engine is passive (it stores its own enqueues and mirrors the store).
    Follower,
    /// Holds the lock, and has not yet rebuilt its engine as an active one.
    Promoting,
    /// Holds the lock and runs an active engine: the only tab that sends.
    Leader,
}

#[derive(Debug, Default)]
pub struct Lock {
    pub holder: Option<usize>,
    /// Open tabs waiting for the lock, longest first.
    waiting: VecDeque<usize>,
}

impl World {
    /// A tab opens and asks for the lock: `true` when it was free and the tab now holds it.
    pub fn request_lock(&mut self, tab: usize) -> bool {
        if self.lock.holder.is_none() {
            self.lock.holder = Some(tab);
            true
        } else {
            self.lock.waiting.push_back(tab);
            false
        }
    }

    /// A tab died: it waits no more, and if it held the lock, the tab that waited longest gets it.
    pub fn release_lock(&mut self, tab: usize) {
        self.lock.waiting.retain(|t| *t != tab);
        if self.lock.holder != Some(tab) {
            return;
        }
        self.lock.holder = self.lock.waiting.pop_front();
        let Some(next) = self.lock.holder else {
            return;
        };
        self.stats.promotions += 1;
        self.tabs[next].role = Role::Promoting;
        let epoch = self.tabs[next].epoch;
        self.note(format!("tab {next} is granted the lock"));
        // Crash point: the new leader dies before it has read the store.
        self.crash_point(next);
        self.at(0, Ev::Granted { tab: next, epoch });
    }

    /// The lock's callback: the promotion joins the tab's serial queue (see [`crate::rebuild`]).
    pub fn granted(&mut self, tab: usize) -> Result<(), String> {
        if self.tabs[tab].role != Role::Promoting {
            return Ok(());
        }
        self.queue_task(tab, crate::rebuild::Task::Promote)
    }

    /// The tab that holds the lock and runs an active engine, if any.
    pub fn leader(&self) -> Option<usize> {
        self.lock
            .holder
            .filter(|t| self.tabs[*t].role == Role::Leader)
    }
}
