//! What one seed simulates: the engine's configuration, the server's retention, and how often each
//! fault strikes. Drawn from the seed, so a seed names a whole scenario.

use outbox_core::{CollectionConfig, Config, ConflictStrategy, RetryPolicy};

pub const HOUR: u64 = 3_600_000;

/// The collections ops go to: one versioned with a per-seed conflict strategy, one unversioned.
pub const VERSIONED: &str = "v";
pub const UNVERSIONED: &str = "u";

#[derive(Clone, Debug)]
pub struct Profile {
    pub config: Config,
    /// One request per op (`PUT /docs/...`), or pushes of up to `max_ops`.
    pub push: bool,
    pub server_ttl_ms: u64,
    /// The server states its retention (`Idempotency-Retention`).
    pub states_retention: bool,
    pub timeout_ms: u64,
    /// Per request, in percent.
    pub lost_request: u32,
    pub lost_response: u32,
    pub error_500: u32,
    pub error_503: u32,
    pub rate_limited: u32,
    pub auth_401: u32,
    pub bare_409: u32,
    pub stall: u32,
    /// Per commit, in percent.
    pub commit_failure: u32,
    /// Per app step, in per mille.
    pub crash: u32,
    /// Keys per collection: few, so lanes hold several ops and entities are shared.
    pub keys: u32,
}

impl Profile {
    pub fn draw(rng: &mut fastrand::Rng) -> Profile {
        let push = rng.bool();
        let server_ttl_ms = [HOUR, 6 * HOUR, 24 * HOUR, 48 * HOUR][rng.usize(..4)];
        let states_retention = rng.u32(..100) < 70;
        // The client must not rely on a longer retention than the server keeps unless the server says
        // so (docs/PROTOCOL.md §4): its statement, once heard, shortens the client's.
        let client_retention_ms = if states_retention {
            server_ttl_ms / 2 + rng.u64(..=server_ttl_ms * 3 / 2)
        } else {
            server_ttl_ms / 2 + rng.u64(..=server_ttl_ms / 2)
        };
        let strategy = [
            ConflictStrategy::ServerWins,
            ConflictStrategy::ClientWins,
            ConflictStrategy::Manual,
        ][rng.usize(..3)];
        let mut collections = std::collections::HashMap::new();
        collections.insert(
            VERSIONED.to_owned(),
            CollectionConfig {
                conflict: strategy,
                versioned: true,
            },
        );
        collections.insert(
            UNVERSIONED.to_owned(),
            CollectionConfig {
                conflict: ConflictStrategy::Manual,
                versioned: false,
            },
        );
        let base_ms = [50, 200, 1_000][rng.usize(..3)];
        let config = Config {
            max_ops: if push { rng.usize(1..6) } else { 1 },
            max_in_flight: rng.usize(1..4),
            retry: RetryPolicy {
                base_ms,
                cap_ms: base_ms * [4, 16, 60][rng.usize(..3)],
                max_attempts: if rng.u32(..4) == 0 {
                    Some(rng.u32(2..8))
                } else {
                    None
                },
                max_age_ms: None,
                floor_ms: [10, 100][rng.usize(..2)],
                max_server_wait_ms: [60_000, HOUR][rng.usize(..2)],
            },
            collections,
            idempotency_retention_ms: client_retention_ms,
            ..Config::default()
        };
        let faulty = rng.u32(..10) != 0;
        let pct = |rng: &mut fastrand::Rng, max: u32| if faulty { rng.u32(..=max) } else { 0 };
        Profile {
            config,
            push,
            server_ttl_ms,
            states_retention,
            timeout_ms: 15_000,
            lost_request: pct(rng, 8),
            lost_response: pct(rng, 10),
            error_500: pct(rng, 8),
            error_503: pct(rng, 6),
            rate_limited: pct(rng, 6),
            auth_401: pct(rng, 3),
            bare_409: pct(rng, 2),
            stall: pct(rng, 3),
            commit_failure: pct(rng, 4),
            crash: if faulty { rng.u32(5..40) } else { 0 },
            keys: rng.u32(2..6),
        }
    }

    /// No fault of any kind strikes: no request goes wrong, no commit fails, no tab crashes.
    pub fn is_faultless(&self) -> bool {
        [
            self.lost_request,
            self.lost_response,
            self.error_500,
            self.error_503,
            self.rate_limited,
            self.auth_401,
            self.bare_409,
            self.stall,
            self.commit_failure,
            self.crash,
        ]
        .iter()
        .all(|p| *p == 0)
    }

    /// The most retention the client may count on: its own setting less a tenth (a server's statement
    /// only shortens it).
    pub fn safe_retention_ms(&self) -> u64 {
        let retention = self.config.idempotency_retention_ms;
        retention - retention / 10
    }

    /// The margin the client keeps below the retention: how far the clock may be set back unnoticed.
    pub fn clock_margin_ms(&self) -> u64 {
        let retention = self.config.idempotency_retention_ms.min(self.server_ttl_ms);
        retention / 10
    }
}
