//! The app: what a user of the library does to the outbox, at random. Then, when the budget is spent,
//! the settling phase: faults stop, every tab comes back, the app settles every held op, and the
//! final state is checked against the server.

use outbox_core::{NewOp, OpId, OpKind, OpState};
use serde_json::{json, Value};

use crate::command::{Command, Resolution};
use crate::oracle::Fate;
use crate::profile::{HOUR, UNVERSIONED, VERSIONED};
use crate::world::{Ev, World};

impl World {
    pub fn app_step(&mut self) -> Result<(), String> {
        if self.budget == 0 {
            return Ok(());
        }
        let alive: Vec<usize> = (0..self.tabs.len())
            .filter(|t| self.tabs[*t].alive)
            .collect();
        if let Some(&tab) = alive.get(self.rng.usize(..alive.len().max(1))) {
            self.act(tab)?;
        }
        // Mostly a steady stream; now and then the user goes away for a long time.
        let gap = match self.rng.u32(..1000) {
            0..10 => self.rng.u64(HOUR..60 * HOUR),
            10..60 => self.rng.u64(10_000..600_000),
            _ => self.rng.u64(1..400),
        };
        self.at(gap, Ev::App);
        Ok(())
    }

    fn act(&mut self, tab: usize) -> Result<(), String> {
        let roll = self.rng.u32(..1000);
        if roll < self.profile.crash {
            let delay = self.rng.u64(..3);
            self.at(delay, Ev::Crash { tab });
            return Ok(());
        }
        match self.rng.u32(..100) {
            0..50 => self.enqueue(tab)?,
            50..55 => self.foreign_write(),
            55..62 => {
                if let Some(id) = self.pick(
                    tab,
                    &[
                        OpState::Failed,
                        OpState::Conflict,
                        OpState::Backoff,
                        OpState::Unknown,
                    ],
                ) {
                    self.command(tab, Command::Retry(id))?;
                }
            }
            62..65 => self.command(tab, Command::RetryAll)?,
            65..70 => {
                let states = [
                    OpState::Pending,
                    OpState::Backoff,
                    OpState::Failed,
                    OpState::Conflict,
                    OpState::Unknown,
                ];
                if let Some(id) = self.pick(tab, &states) {
                    self.command(tab, Command::Discard(id))?;
                }
            }
            70..76 => {
                if let Some(id) = self.pick(tab, &[OpState::Conflict, OpState::Unknown]) {
                    let how = match self.rng.u32(..3) {
                        0 => Resolution::Discard,
                        1 => Resolution::KeepLocal,
                        _ => Resolution::Merge,
                    };
                    self.command(tab, Command::Resolve(id, how))?;
                }
            }
            76..80 => self.command(tab, Command::TogglePause)?,
            80..88 => {
                let online = !self.tabs[tab].online;
                self.set_online(tab, online)?;
            }
            88..94 => self.command(tab, Command::Pull)?,
            _ => self.command(tab, Command::Drain)?,
        }
        Ok(())
    }

    fn enqueue(&mut self, tab: usize) -> Result<(), String> {
        self.budget -= 1;
        self.stats.ops += 1;
        let collection = if self.rng.bool() {
            VERSIONED
        } else {
            UNVERSIONED
        };
        let key = format!("k{}", self.rng.u32(..self.profile.keys));
        let kind = match self.rng.u32(..100) {
            0..60 => OpKind::Put,
            60..85 => OpKind::Patch,
            _ => OpKind::Delete,
        };
        let bad = kind != OpKind::Delete && self.rng.u32(..100) < 3;
        let mut payload = if kind == OpKind::Delete {
            Value::Null
        } else {
            crate::payload::random(&mut self.rng)
        };
        if bad {
            payload["bad"] = json!(true);
        }
        let new = NewOp {
            collection: collection.into(),
            key: key.clone(),
            kind: kind.clone(),
            payload: payload.into(),
            base_version: None,
        };
        let now = self.now(tab);
        // The ops of the entity this tab shows: the new op must reach the server after them.
        let after: Vec<OpId> = self.tabs[tab]
            .engine()
            .ops_for(collection, &key)
            .iter()
            .map(|r| r.id)
            .collect();
        let (id, fx) = self.tabs[tab]
            .engine()
            .enqueue(new, now)
            .map_err(|e| format!("enqueue refused: {e}"))?;
        self.oracle
            .enqueued(tab, id, (collection.into(), key), kind, bad, after);
        self.run_enqueue(tab, id, fx)
    }

    /// Another user of the app writes through another client.
    fn foreign_write(&mut self) {
        let collection = if self.rng.bool() {
            VERSIONED
        } else {
            UNVERSIONED
        };
        let entity = (
            collection.to_owned(),
            format!("k{}", self.rng.u32(..self.profile.keys)),
        );
        let doc = (self.rng.u32(..4) != 0).then(|| crate::payload::random(&mut self.rng));
        self.server.foreign_write(&entity, doc);
    }

    fn set_online(&mut self, tab: usize, online: bool) -> Result<(), String> {
        self.tabs[tab].online = online;
        self.tabs[tab].sync.online_untold = false;
        let now = self.now(tab);
        let fx = self.tabs[tab].engine().set_online(online, now);
        self.run(tab, fx)
    }

    pub fn pull(&mut self, tab: usize) {
        let (epoch, since) = (self.tabs[tab].epoch, self.tabs[tab].cursor);
        self.tabs[tab].pulling += 1;
        let latency = self.rng.u64(2..40);
        self.at(latency, Ev::PullPage { tab, epoch, since });
    }

    /// A random op of the tab in one of `states`.
    fn pick(&mut self, tab: usize, states: &[OpState]) -> Option<OpId> {
        let mut ids: Vec<OpId> = self.tabs[tab]
            .engine()
            .ops()
            .filter(|r| states.contains(&r.state))
            .map(|r| r.id)
            .collect();
        ids.sort();
        (!ids.is_empty()).then(|| ids[self.rng.usize(..ids.len())])
    }

    /// Runs events until none is left (faults have stopped, so it ends), within the time the policy
    /// allows: the longest server wait, backoffs, timeouts. A deadline the clock pushed out of reach
    /// (a clock set back between loads) would freeze the queue far longer.
    fn quiesce(&mut self) -> Result<(), String> {
        let policy = &self.profile.config.retry;
        let bound = 2 * policy.max_server_wait_ms
            + 30 * policy.cap_ms
            + 4 * self.profile.timeout_ms
            + 600_000;
        let start = self.time;
        let mut guard = 0u64;
        while !self.settled() && self.step()? {
            guard += 1;
            if guard > 5_000_000 || self.time - start > bound {
                return Err(format!(
                    "the outbox did not settle within {} s of the faults stopping ({})",
                    bound / 1000,
                    self.unsettled()
                ));
            }
        }
        Ok(())
    }

    /// Nothing moves any more: no op waits or is in flight, no write or send is queued. (The engine
    /// still wakes now and then to mark its clock while it holds ops.)
    fn settled(&self) -> bool {
        if self.multi() && !self.calm() {
            return false;
        }
        let halted =
            |s: OpState| matches!(s, OpState::Failed | OpState::Conflict | OpState::Unknown);
        self.tabs.iter().all(|t| {
            t.is_idle()
                && t.engine.as_ref().is_none_or(|e| {
                    // Whatever still waits sits behind a lane head only the app can move.
                    e.status().in_flight == 0
                        && e.ops().filter(|r| !halted(r.state)).all(|r| {
                            e.ops_for(&r.collection, &r.key)
                                .first()
                                .is_some_and(|head| halted(head.state))
                        })
                })
        })
    }

    /// What keeps the outbox from settling, for the report.
    fn unsettled(&self) -> String {
        let mut what = Vec::new();
        if self.multi() && !self.calm() {
            what.push(format!(
                "not calm: in transit {}, orphaned {}, leader {:?}",
                self.in_transit,
                self.orphaned_commands.len(),
                self.leader()
            ));
        }
        for (i, t) in self.tabs.iter().enumerate() {
            if let Some(e) = t.engine.as_ref() {
                let s = e.status();
                what.push(format!(
                    "tab {i} ({:?}, passive {}): idle {}, queue idle {}, commit {}, outstanding {}, \
                     unconfirmed {}, tasks {} running {}, state {:?}, paused {}/{}, pending {}, in \
                     flight {}",
                    t.role,
                    e.is_passive(),
                    t.is_idle(),
                    t.queue.is_idle(),
                    t.commit_active,
                    t.outstanding.len(),
                    t.unconfirmed.len(),
                    t.sync.tasks.len(),
                    t.sync.task_running,
                    s.state,
                    e.is_paused(),
                    t.paused,
                    s.pending,
                    s.in_flight
                ));
            }
        }
        what.join("; ")
    }

    /// The settling phase and the final checks.
    pub fn settle(&mut self) -> Result<(), String> {
        self.healed = true;
        for tab in 0..self.tabs.len() {
            if !self.tabs[tab].alive {
                self.reopen(tab)?;
            }
        }
        // A command the app forwarded before (a pause, say) lands before the app settles.
        let start = self.time;
        while self.multi() && !self.calm() && self.time - start < 3_600_000 && self.step()? {}
        for tab in 0..self.tabs.len() {
            if !self.tabs[tab].online {
                self.set_online(tab, true)?;
            }
            if self.tabs[tab].paused {
                self.tabs[tab].paused = false;
                let now = self.now(tab);
                let fx = self.tabs[tab].engine().resume(now);
                self.run(tab, fx)?;
            }
        }
        self.quiesce()?;
        // The app settles what is held, as a user clicking through the failed and conflicted items.
        // A lane can hold thousands of ops; each round settles its head.
        for round in 0..1_000_000 {
            let mut acted = false;
            // The app's commands go to the leader, which holds the queue.
            let leader = self.leader().ok_or("no leader after settling")?;
            for tab in [leader] {
                let held: Vec<(OpId, OpState)> = self.tabs[tab]
                    .engine()
                    .ops()
                    .filter(|r| {
                        matches!(
                            r.state,
                            OpState::Failed | OpState::Conflict | OpState::Unknown
                        )
                    })
                    .map(|r| (r.id, r.state))
                    .collect();
                for (id, state) in held {
                    acted = true;
                    let bad = self.oracle.ops[&id].bad;
                    let now = self.now(tab);
                    // Two rounds of retrying; what still fails then (a patch of a deleted document)
                    // is let go.
                    let give_up = bad || round >= 2;
                    match state {
                        OpState::Failed if !give_up => self.retry(tab, id, now, false)?,
                        OpState::Conflict if !give_up => {
                            let payload = self.tabs[tab]
                                .engine()
                                .op(id)
                                .expect("held")
                                .payload
                                .clone();
                            let fx = self.tabs[tab]
                                .engine()
                                .resolve(id, payload, None, now)
                                .map_err(|e| e.to_string())?;
                            self.sends.app_resent(&id);
                            self.run(tab, fx)?;
                        }
                        _ => self.discard(tab, id, false)?,
                    }
                }
            }
            self.quiesce()?;
            if !acted {
                break;
            }
        }
        let leader = self.leader().ok_or("no leader after settling")?;
        self.pull(leader);
        self.quiesce()?;
        self.final_checks()
    }

    fn final_checks(&mut self) -> Result<(), String> {
        if self.multi() {
            if !self.calm() {
                return Err("the tabs did not calm down after settling".into());
            }
            for tab in 0..self.tabs.len() {
                self.check_mirror(tab)?;
            }
        }
        for (t, tab) in self.tabs.iter().enumerate() {
            let Some(engine) = tab.engine.as_ref() else {
                return Err(format!("tab {t} is not open after settling"));
            };
            let left: Vec<_> = engine.ops().map(|r| (r.id, r.state)).collect();
            if !left.is_empty() {
                let some: Vec<_> = left.iter().take(5).collect();
                return Err(format!(
                    "tab {t} still holds {} ops after settling, such as {some:?}",
                    left.len()
                ));
            }
        }
        if let Some(id) = self.store.op_ids().next() {
            return Err(format!("the store still holds op {id} after settling"));
        }
        if let Some(mark) = self.store.marks().next() {
            return Err(format!(
                "the store still holds the mark of a settled batch after settling: {mark:?}"
            ));
        }
        for (id, model) in &self.oracle.ops {
            let applied = self.server.ledger.get(id).map_or(0, Vec::len);
            let ok = match model.fate {
                Fate::Acked => {
                    applied == 1
                        || (model.kind == OpKind::Delete && applied == 0)
                        || model.risk_accepted
                }
                Fate::Dropped => applied == 0 || model.risk_accepted,
                Fate::Rejected => applied == 0,
                Fate::Discarded => applied <= 1 || model.risk_accepted,
                Fate::Live | Fate::Enqueuing => false,
            };
            if !ok {
                return Err(format!(
                    "op {id} ended {:?} applied {applied} times",
                    model.fate
                ));
            }
        }
        let entities: Vec<_> = self.server.entities().cloned().collect();
        for entity in entities {
            let server = self.server.state(&entity);
            for (t, tab) in self.tabs.iter().enumerate() {
                let held = tab
                    .engine
                    .as_ref()
                    .expect("alive")
                    .confirmed(&entity.0, &entity.1);
                if held != server {
                    return Err(format!(
                        "tab {t} confirms {held:?} for {entity:?}; the server holds {server:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}
