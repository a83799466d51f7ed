//! The app's commands other than enqueue. They act on the outbox's queue, which the leader runs: in
//! the leader's tab they are done at once; a follower forwards them to the leader (after a message's
//! delay), and if there is no leader at that moment they wait for the next one. The follower picks the
//! op from its own mirror, which may be behind: an op the leader has settled meanwhile, or one in
//! another state, makes the forwarded command a no-op, as it would be in the runtime.
//!
//! The leader runs a forwarded command in its serial queue and answers once what it wrote is durable;
//! the follower rebuilds before the command's promise settles ([`crate::rebuild`]). A command whose
//! leader died before answering is not sent again here (the runtime sends it to the next leader).
//!
//! Pause is the outbox's, held by the leader: a follower's pause or resume toggles the leader's
//! switch. Followers hear it in the leader's status, and a tab promoted next applies the last status
//! it heard (a reload in one tab still ends it).

use outbox_core::{CoreError, OpId, OpState};
use serde_json::json;

use crate::broadcast::MESSAGE_DELAY_MS;
use crate::lock::Role;
use crate::oracle::Fate;
use crate::rebuild::{Forward, Task};
use crate::world::{Ev, World};

#[derive(Clone, Debug)]
pub enum Command {
    Retry(OpId),
    RetryAll,
    Discard(OpId),
    Resolve(OpId, Resolution),
    TogglePause,
    Drain,
    Pull,
}

/// How the app's resolver settles a held op.
#[derive(Clone, Copy, Debug)]
pub enum Resolution {
    /// Let the server's state stand.
    Discard,
    /// Keep the local change.
    KeepLocal,
    /// Merge the local change into the server's document.
    Merge,
}

impl World {
    /// The app in `tab` gives a command.
    pub fn command(&mut self, tab: usize, cmd: Command) -> Result<(), String> {
        if self.tabs[tab].role == Role::Leader {
            return self.execute(tab, cmd, false);
        }
        self.in_transit += 1;
        let delay = self.rng.u64(1..MESSAGE_DELAY_MS);
        let forward = Forward {
            cmd,
            from: (tab, self.tabs[tab].epoch),
        };
        self.at(delay, Ev::Forwarded { forward });
        Ok(())
    }

    /// A follower's command reaches the leader's side: it joins the leader's serial queue, or waits
    /// for the next leader.
    pub fn forwarded(&mut self, forward: Forward) -> Result<(), String> {
        match self.leader() {
            Some(leader) => self.queue_task(leader, Task::Answer(forward)),
            None => {
                self.orphaned_commands.push_back(forward);
                Ok(())
            }
        }
    }

    /// Does `cmd` in the leader's engine. A forwarded command may name an op the leader settled
    /// meanwhile or that is in flight now: the engine refuses it, and nothing happens.
    pub fn execute(&mut self, tab: usize, cmd: Command, forwarded: bool) -> Result<(), String> {
        let now = self.now(tab);
        match cmd {
            Command::Retry(id) => {
                if self.tabs[tab].engine().op(id).map(|r| r.state) == Some(OpState::Unknown) {
                    self.oracle.op(&id).risk_accepted = true;
                }
                self.retry(tab, id, now, forwarded)
            }
            Command::RetryAll => {
                self.tabs[tab].rate_limited_until = 0;
                let halted: Vec<OpId> = self.tabs[tab]
                    .engine()
                    .ops()
                    .filter(|r| r.state.is_halted())
                    .map(|r| r.id)
                    .collect();
                for id in halted {
                    self.sends.app_resent(&id);
                }
                let fx = self.tabs[tab].engine().retry_all(now);
                self.run(tab, fx)
            }
            Command::Discard(id) => self.discard(tab, id, forwarded),
            Command::Resolve(id, how) => self.resolve(tab, id, how, forwarded),
            Command::TogglePause => {
                let paused = !self.tabs[tab].paused;
                self.tabs[tab].paused = paused;
                let fx = if paused {
                    self.tabs[tab].engine().pause(now)
                } else {
                    self.tabs[tab].engine().resume(now)
                };
                self.run(tab, fx)
            }
            Command::Drain => {
                let fx = self.tabs[tab].engine().drain(now);
                self.run(tab, fx)
            }
            Command::Pull => {
                self.pull(tab);
                Ok(())
            }
        }
    }

    /// The app's explicit retry of one op, which lifts the server's wait too (`Engine::retry`).
    pub fn retry(&mut self, tab: usize, id: OpId, now: u64, forwarded: bool) -> Result<(), String> {
        self.tabs[tab].rate_limited_until = 0;
        let fx = match self.tabs[tab].engine().retry(id, now) {
            Ok(fx) => fx,
            Err(e) => return refused(e, forwarded),
        };
        self.sends.app_resent(&id);
        self.run(tab, fx)
    }

    pub fn discard(&mut self, tab: usize, id: OpId, forwarded: bool) -> Result<(), String> {
        let now = self.now(tab);
        let fx = match self.tabs[tab].engine().discard(id, now) {
            Ok(fx) => fx,
            Err(e) => return refused(e, forwarded),
        };
        self.oracle.op(&id).fate = Fate::Discarded;
        self.sends.app_resent(&id);
        self.run(tab, fx)
    }

    /// Settles a held op the way an app's resolver would: keep the local change, merge, or let the
    /// server's stand.
    fn resolve(
        &mut self,
        tab: usize,
        id: OpId,
        how: Resolution,
        forwarded: bool,
    ) -> Result<(), String> {
        let now = self.now(tab);
        let Some(record) = self.tabs[tab].engine().op(id).cloned() else {
            return refused(CoreError::UnknownOp(id), forwarded);
        };
        if record.state == OpState::Unknown {
            self.oracle.op(&id).risk_accepted = true;
        }
        let payload = match how {
            Resolution::Discard => return self.discard(tab, id, forwarded),
            Resolution::KeepLocal => record.payload.clone(),
            Resolution::Merge => {
                let mut merged = record.server_doc.clone().unwrap_or(json!({}));
                if let (Some(m), Some(p)) =
                    (merged.as_object_mut(), record.payload.value().as_object())
                {
                    m.extend(p.clone());
                }
                merged.into()
            }
        };
        let fx = match self.tabs[tab].engine().resolve(id, payload, None, now) {
            Ok(fx) => fx,
            Err(e) => return refused(e, forwarded),
        };
        self.sends.app_resent(&id);
        self.run(tab, fx)
    }
}

/// A refused command: the app's own pick in the leader must never be refused; a forwarded one may
/// come too late.
fn refused(error: CoreError, forwarded: bool) -> Result<(), String> {
    if forwarded {
        Ok(())
    } else {
        Err(error.to_string())
    }
}
