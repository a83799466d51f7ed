//! The status as the ops imply it, derived here independently of the engine's incremental counters: the
//! state table of `SyncState` (core/README.md), the earliest backoff, how many ops the running sync has
//! left to settle, and `last_error` belonging to a live op. One checker for the property tests
//! (`state_machine/status.rs`, `view_model.rs`) and the simulator (`sim/src/oracle.rs` includes this file).

use std::collections::HashMap;

use outbox_core::{OpRecord, OpState, Status, SyncState};

/// The engine's switches, which the ops cannot tell.
pub struct Switches {
    pub paused: bool,
    pub online: bool,
}

/// Checks every field of `status` that the ops determine; returns the ops left to settle.
///
/// `now` is the engine's clock when the caller knows it. Without it (the simulator, whose engines run on
/// skewed clocks) whether a backoff has just expired cannot be told, so a backing-off head may read as
/// `syncing` or `retrying`, and the deadline checks are skipped.
pub fn check_status(
    status: &Status,
    records: &[&OpRecord],
    now: Option<u64>,
    switches: &Switches,
) -> Result<usize, String> {
    let count = |f: fn(OpState) -> bool| records.iter().filter(|r| f(r.state)).count();
    let told = (
        status.pending,
        status.in_flight,
        status.failed,
        status.conflicts,
        status.unknown,
    );
    let counts = (
        count(|st| matches!(st, OpState::Pending | OpState::Backoff)),
        count(|st| st == OpState::Inflight),
        count(|st| st == OpState::Failed),
        count(|st| st == OpState::Conflict),
        count(|st| st == OpState::Unknown),
    );
    if told != counts {
        return Err(format!("status counts {told:?}, the ops {counts:?}"));
    }

    // Lanes in the engine's order (see `OpRecord::holds_lane_head`), and what each head is doing.
    let mut lanes: HashMap<(&str, &str), Vec<&OpRecord>> = HashMap::new();
    for r in records {
        lanes.entry(r.entity()).or_default().push(r);
    }
    let (mut moving, mut halted, mut to_settle) = (false, false, 0);
    let mut backoffs = Vec::new();
    for lane in lanes.values_mut() {
        lane.sort_by_key(|r| (!r.holds_lane_head(), r.seq, r.id));
        let head = lane[0];
        if !lane[1..]
            .iter()
            .all(|r| !r.state.is_halted() && r.state != OpState::Inflight)
        {
            return Err(format!(
                "only an entity's first op is sent or halted: {lane:?}"
            ));
        }
        if head.state.is_halted() {
            halted = true;
            continue;
        }
        // Everything in a lane that moves (or will, after its backoff) is to settle in this sync.
        to_settle += lane.len();
        let pending_backoff = head
            .next_attempt_at
            .filter(|at| now.is_none_or(|now| *at > now));
        match pending_backoff {
            _ if head.state == OpState::Inflight => moving = true,
            Some(at) => backoffs.push(at),
            // Ready, or its enqueue is being stored: it goes as soon as it may.
            None => moving = true,
        }
    }
    if let Some(now) = now {
        if status.next_attempt_at != backoffs.iter().copied().min() {
            return Err(format!(
                "earliest backoff {:?}, the ops {:?}",
                status.next_attempt_at,
                backoffs.iter().min()
            ));
        }
        if status.blocked_until.is_some_and(|t| t <= now) {
            return Err(format!("blocked until a time gone by: {status:?}"));
        }
    }
    let state = status.state;
    let fits = if status.storage_error.is_some() {
        state == SyncState::Stalled
    } else if switches.paused {
        state == SyncState::Paused
    } else if !switches.online {
        state == SyncState::Offline
    } else if status.blocked_until.is_some() {
        state == SyncState::Blocked
    } else if moving {
        state == SyncState::Syncing
    } else if !backoffs.is_empty() {
        match now {
            Some(_) => state == SyncState::Retrying,
            // Without the clock: syncing when a backoff has just expired, retrying (until the earliest)
            // when none has.
            None => {
                state == SyncState::Syncing
                    || (state == SyncState::Retrying
                        && status.next_attempt_at.is_some()
                        && status.next_attempt_at <= backoffs.iter().copied().max())
            }
        }
    } else if halted {
        state == SyncState::Error
    } else {
        state == SyncState::Idle && records.is_empty()
    };
    if !fits {
        return Err(format!(
            "the state table: {state:?} contradicts the ops (paused {}, online {}): {status:?}",
            switches.paused, switches.online
        ));
    }
    if status.online != switches.online {
        return Err(format!(
            "online {} while the switch is {}",
            status.online, switches.online
        ));
    }
    match status.progress {
        None if to_settle > 0 => {
            return Err(format!("{to_settle} ops to settle, but no sync runs"))
        }
        Some(p) if p.current > p.total || p.total - p.current != to_settle => {
            return Err(format!("progress {p:?}, but {to_settle} ops to settle"));
        }
        _ => {}
    }
    // Whatever the order, lastError is some live op's error, and there is one exactly when one holds it.
    let errors: Vec<_> = records
        .iter()
        .filter_map(|r| r.last_error.as_ref())
        .collect();
    match &status.last_error {
        None if !errors.is_empty() => Err("an op holds an error, lastError is null".into()),
        Some(e) if !errors.contains(&e) => Err(format!("lastError {e:?} belongs to no live op")),
        _ => Ok(to_settle),
    }
}
