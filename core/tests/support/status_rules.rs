//! The status as the ops imply it, derived here independently of the engine's incremental counters: the
//! state table of `SyncState` (core/README.md), the earliest backoff, and how many ops the running sync
//! has left to settle. Shared by the property tests (`state_machine/status.rs`, `view_model.rs`).

use std::collections::HashMap;

use outbox_core::{OpRecord, OpState, Status, SyncState};

/// The engine's switches, which the ops cannot tell.
pub struct Switches {
    pub paused: bool,
    pub online: bool,
}

/// Checks every field of `status` that the ops determine; returns the ops left to settle.
pub fn check_status(
    status: &Status,
    records: &[&OpRecord],
    now: u64,
    switches: &Switches,
) -> usize {
    let count = |f: fn(OpState) -> bool| records.iter().filter(|r| f(r.state)).count();
    assert_eq!(
        (
            status.pending,
            status.in_flight,
            status.failed,
            status.conflicts,
            status.unknown
        ),
        (
            count(|st| matches!(st, OpState::Pending | OpState::Backoff)),
            count(|st| st == OpState::Inflight),
            count(|st| st == OpState::Failed),
            count(|st| st == OpState::Conflict),
            count(|st| st == OpState::Unknown),
        ),
        "counts per state"
    );

    // Lanes in seq order, and what each head is doing.
    let mut lanes: HashMap<(&str, &str), Vec<&OpRecord>> = HashMap::new();
    for r in records {
        lanes.entry(r.entity()).or_default().push(r);
    }
    let (mut moving, mut halted, mut to_settle) = (false, false, 0);
    let mut backoffs = Vec::new();
    for lane in lanes.values_mut() {
        lane.sort_by_key(|r| r.seq);
        let head = lane[0];
        assert!(
            lane[1..]
                .iter()
                .all(|r| !r.state.is_halted() && r.state != OpState::Inflight),
            "only an entity's first op is sent or halted"
        );
        if head.state.is_halted() {
            halted = true;
            continue;
        }
        // Everything in a lane that moves (or will, after its backoff) is to settle in this sync.
        to_settle += lane.len();
        match head.next_attempt_at.filter(|at| *at > now) {
            _ if head.state == OpState::Inflight => moving = true,
            Some(at) => backoffs.push(at),
            // Ready, or its enqueue is being stored: it goes as soon as it may.
            None => moving = true,
        }
    }
    assert_eq!(
        status.next_attempt_at,
        backoffs.iter().copied().min(),
        "earliest backoff"
    );
    let expected = if status.storage_error.is_some() {
        SyncState::Stalled
    } else if switches.paused {
        SyncState::Paused
    } else if !switches.online {
        SyncState::Offline
    } else if status.blocked_until.is_some() {
        SyncState::Blocked
    } else if moving {
        SyncState::Syncing
    } else if !backoffs.is_empty() {
        SyncState::Retrying
    } else if halted {
        SyncState::Error
    } else {
        assert!(records.is_empty(), "idle with ops");
        SyncState::Idle
    };
    assert_eq!(status.state, expected, "the state table: {status:?}");
    assert_eq!(status.online, switches.online);
    assert!(
        status.blocked_until.is_none_or(|t| t > now),
        "blocked until a time gone by"
    );
    match status.progress {
        None => assert_eq!(to_settle, 0, "ops to settle, but no sync runs"),
        Some(p) => {
            assert!(p.current <= p.total);
            assert_eq!(p.total - p.current, to_settle, "progress: {p:?}");
        }
    }
    // Whatever the order, lastError is some live op's error, and there is one exactly when one holds it.
    let errors: Vec<_> = records
        .iter()
        .filter_map(|r| r.last_error.as_ref())
        .collect();
    match &status.last_error {
        None => assert!(errors.is_empty(), "an op holds an error, lastError is null"),
        Some(e) => assert!(errors.contains(&e), "lastError {e:?} belongs to no live op"),
    }
    to_settle
}
