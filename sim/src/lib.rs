//! `outbox-sim`: a deterministic simulation of outbox-sync that tries to break exactly-once.
//!
//! It drives the real engine ([`outbox_core::Engine`]) through the real effect order
//! ([`outbox_core::EffectQueue`]) against a model server with idempotency replay and expiry, a
//! durable store that records only what committed, faults on every request, failed commits, crashes
//! between any two events, clocks that jump forward and back at reloads, and one or more tabs on one
//! store. Everything is drawn from one seed, so a failure replays exactly.
//!
//! Checked at every step (see [`oracle`] and [`tab`]): no op applied twice under any key; per-entity
//! order on the server; a request only ever carries durable state; an op declared unknown is never
//! resent under its key, and nothing unconditional is resent past the server's memory; the body
//! under one key never changes; a resolved enqueue is never lost and a rejected one never comes
//! back; no send before a rate limit's wait; the confirmed state never older than what the server
//! delivered, and the stored one never regresses. At the end, after faults stop and the app settles
//! what is held: every op is acked, dropped, discarded or rejected — visibly — with the number of
//! applications that fate allows, and every tab confirms exactly the server's documents.

mod app;
pub mod broadcast;
mod checks;
pub mod command;
pub mod lock;
mod net;
pub mod oracle;
mod payload;
pub mod profile;
pub mod rebuild;
pub mod sends;
pub mod server;
pub mod store;
pub mod tab;
pub mod world;

/// What one run did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ops: u64,
    pub events: u64,
    pub requests: u64,
    pub applied: u64,
    pub acked: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub unknown: u64,
    pub crashes: u64,
    pub commit_failures: u64,
    /// Tabs granted the lock after its holder died.
    pub promotions: u64,
    /// Messages posted between tabs.
    pub messages: u64,
    /// Engines rebuilt from the store (followers' refreshes and promotions).
    pub rebuilds: u64,
    /// Ops the leader adopted from other tabs, and how many of them only its scan found.
    pub adopted: u64,
    pub adopted_by_scan: u64,
    /// Op sends (an op in a request), ops sent at least once, and resends caused by a fault.
    pub op_sends: u64,
    pub ops_sent: u64,
    pub fault_resends: u64,
    /// The same in seeds with no fault at all.
    pub faultless_op_sends: u64,
    pub faultless_ops_sent: u64,
    /// The leader's reads of the store for adoption: on a message whose `after` names an op it does
    /// not know, and its scans.
    pub adopt_reads: u64,
    pub scan_reads: u64,
    /// Ops of its own a rebuild carried over from the old engine (the read missed them).
    pub carried_over: u64,
    /// Follower reads dropped because the tab was promoted meanwhile.
    pub dropped_reads: u64,
    /// Conflicts whose only cause is our own tabs' earlier acks, counted (not failed) only with
    /// `SIM_COUNT_OWN_CONFLICTS=1`.
    pub own_tab_conflicts: u64,
    /// Single-op sends that left on a mark ahead of them, with no write of their own.
    pub sent_marked_ahead: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.ops += other.ops;
        self.events += other.events;
        self.requests += other.requests;
        self.applied += other.applied;
        self.acked += other.acked;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.unknown += other.unknown;
        self.crashes += other.crashes;
        self.commit_failures += other.commit_failures;
        self.promotions += other.promotions;
        self.messages += other.messages;
        self.rebuilds += other.rebuilds;
        self.adopted += other.adopted;
        self.adopted_by_scan += other.adopted_by_scan;
        self.op_sends += other.op_sends;
        self.ops_sent += other.ops_sent;
        self.fault_resends += other.fault_resends;
        self.faultless_op_sends += other.faultless_op_sends;
        self.faultless_ops_sent += other.faultless_ops_sent;
        self.own_tab_conflicts += other.own_tab_conflicts;
        self.adopt_reads += other.adopt_reads;
        self.scan_reads += other.scan_reads;
        self.carried_over += other.carried_over;
        self.dropped_reads += other.dropped_reads;
        self.sent_marked_ahead += other.sent_marked_ahead;
    }

    /// Sends per op sent: all of them, and without the resends faults caused.
    pub fn sends_per_op(&self) -> (f64, f64) {
        let ops = self.ops_sent.max(1) as f64;
        (
            self.op_sends as f64 / ops,
            (self.op_sends - self.fault_resends) as f64 / ops,
        )
    }
}

/// A broken invariant, with what led to it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub seed: u64,
    /// The seed's scenario.
    pub profile: String,
    pub message: String,
    pub trace: Vec<String>,
}

/// Runs one seed: `ops` enqueues over `tabs` tabs, then the settling phase and the final checks.
pub fn run_seed(seed: u64, ops: usize, tabs: usize) -> Result<Stats, Violation> {
    run_seed_with(seed, ops, tabs, |_| {})
}

/// [`run_seed`], with the world's switches (`count_own_conflicts`) set by `configure`.
pub fn run_seed_with(
    seed: u64,
    ops: usize,
    tabs: usize,
    configure: impl FnOnce(&mut world::World),
) -> Result<Stats, Violation> {
    let mut world = world::World::new(seed, ops, tabs);
    configure(&mut world);
    let result = (|| {
        while world.budget > 0 {
            if !world.step()? {
                break;
            }
        }
        world.settle()
    })();
    match result {
        Ok(()) => Ok(world.stats),
        Err(message) => Err(Violation {
            seed,
            profile: format!("{:?}", world.profile),
            message,
            trace: world.trace.clone(),
        }),
    }
}

/// The one-line command that replays a seed.
pub fn replay_command(seed: u64, ops: usize, tabs: usize) -> String {
    format!("SIM_SEED={seed} SIM_OPS={ops} SIM_TABS={tabs} cargo run --release -p outbox-sim")
}

/// Runs `seeds` seeds from `first`, on `threads` threads; stops at the first violation.
pub fn run_many(
    first: u64,
    seeds: u64,
    ops: usize,
    tabs: usize,
    threads: usize,
) -> Result<Stats, Violation> {
    let (stats, mut violations) = run_seeds(first, seeds, ops, tabs, threads, true);
    match violations.is_empty() {
        true => Ok(stats),
        false => Err(violations.remove(0)),
    }
}

/// Runs every seed (`stop_at_first`: stops at the first violation); returns the figures of the seeds
/// that passed and the violations, by seed.
pub fn run_seeds(
    first: u64,
    seeds: u64,
    ops: usize,
    tabs: usize,
    threads: usize,
    stop_at_first: bool,
) -> (Stats, Vec<Violation>) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let next = Arc::new(AtomicU64::new(first));
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(Mutex::new(Stats::default()));
    let failures: Arc<Mutex<Vec<Violation>>> = Arc::default();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (next, stop, total, failures) =
                (next.clone(), stop.clone(), total.clone(), failures.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= first + seeds || stop.load(Ordering::SeqCst) {
                    break;
                }
                match run_seed(seed, ops, tabs) {
                    Ok(stats) => total.lock().unwrap().add(&stats),
                    Err(v) => {
                        if stop_at_first {
                            stop.store(true, Ordering::SeqCst);
                        }
                        failures.lock().unwrap().push(v);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a simulation thread panicked");
    }
    let mut violations = std::mem::take(&mut *failures.lock().unwrap());
    violations.sort_by_key(|v| v.seed);
    if stop_at_first {
        violations.truncate(1);
    }
    let stats = total.lock().unwrap().clone();
    (stats, violations)
}
