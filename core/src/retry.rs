//! Retry policy: exponential backoff with full jitter, bounded by optional attempt and age limits.

use serde::{Deserialize, Serialize};

/// How transient failures are retried.
///
/// The delay before retry *n* (1-based) is `uniform(0, min(cap, base * 2^(n-1)))` — "full jitter",
/// which spreads a crowd of clients that failed together so they do not return together. A server's
/// `Retry-After` is a floor on top of it: we never retry sooner than the server asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Base delay in ms.
    pub base_ms: u64,
    /// Upper bound of the jitter window in ms.
    pub cap_ms: u64,
    /// Give up (op becomes failed) after this many attempts. `None`: retry without limit.
    pub max_attempts: Option<u32>,
    /// Give up once the op is older than this (ms since enqueue or last manual retry). `None`: no limit.
    pub max_age_ms: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 1_000,
            cap_ms: 60_000,
            max_attempts: None,
            max_age_ms: None,
        }
    }
}

/// What to do after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retry at this engine time.
    At(u64),
    /// The limits are used up: fail the op.
    GiveUp,
}

impl RetryPolicy {
    /// The upper bound of the jitter window before retry number `attempts` (1-based).
    pub fn window_ms(&self, attempts: u32) -> u64 {
        let exp = attempts.saturating_sub(1).min(63);
        self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms)
    }

    /// A full-jitter delay for retry number `attempts`, drawn from `rng`.
    pub fn jittered_delay_ms(&self, attempts: u32, rng: &mut fastrand::Rng) -> u64 {
        rng.u64(0..=self.window_ms(attempts))
    }

    /// Decides whether and when to retry after the `attempts`-th failure, at engine time `now`.
    ///
    /// `server_floor` is the earliest time the server allows (from `Retry-After`); the result is never
    /// before it. `age_origin` is when the op was enqueued or last retried by the app.
    pub fn decide(
        &self,
        attempts: u32,
        age_origin: u64,
        now: u64,
        server_floor: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> RetryDecision {
        if self.max_attempts.is_some_and(|max| attempts >= max) {
            return RetryDecision::GiveUp;
        }
        let at = now.saturating_add(self.jittered_delay_ms(attempts, rng));
        let at = at.max(server_floor.unwrap_or(0));
        if self
            .max_age_ms
            .is_some_and(|max| at.saturating_sub(age_origin) > max)
        {
            return RetryDecision::GiveUp;
        }
        RetryDecision::At(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_ms: 100,
            cap_ms: 1_000,
            max_attempts: None,
            max_age_ms: None,
        }
    }

    #[test]
    fn window_doubles_then_caps() {
        let p = policy();
        let windows: Vec<u64> = (1..=6).map(|a| p.window_ms(a)).collect();
        assert_eq!(windows, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(
            p.window_ms(u32::MAX),
            1_000,
            "no overflow at huge attempt counts"
        );
    }

    #[test]
    fn full_jitter_stays_in_window_and_actually_varies() {
        let p = policy();
        let mut rng = fastrand::Rng::with_seed(7);
        let draws: Vec<u64> = (0..200).map(|_| p.jittered_delay_ms(3, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d <= 400));
        assert!(
            draws.iter().any(|d| *d < 100),
            "full jitter reaches near zero"
        );
        assert!(
            draws.iter().any(|d| *d > 300),
            "and near the top of the window"
        );
    }

    #[test]
    fn same_seed_same_delays() {
        let p = policy();
        let a: Vec<u64> = {
            let mut rng = fastrand::Rng::with_seed(42);
            (1..10).map(|n| p.jittered_delay_ms(n, &mut rng)).collect()
        };
        let mut rng = fastrand::Rng::with_seed(42);
        let b: Vec<u64> = (1..10).map(|n| p.jittered_delay_ms(n, &mut rng)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn never_sooner_than_the_server_asked() {
        let p = policy();
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..50 {
            match p.decide(1, 0, 10_000, Some(15_000), &mut rng) {
                RetryDecision::At(at) => assert!(at >= 15_000),
                RetryDecision::GiveUp => panic!("no limits set"),
            }
        }
    }

    #[test]
    fn unlimited_by_default() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(matches!(
            p.decide(10_000, 0, u64::MAX / 2, None, &mut rng),
            RetryDecision::At(_)
        ));
    }

    #[test]
    fn max_attempts_gives_up() {
        let p = RetryPolicy {
            max_attempts: Some(3),
            ..policy()
        };
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(matches!(
            p.decide(2, 0, 0, None, &mut rng),
            RetryDecision::At(_)
        ));
        assert_eq!(p.decide(3, 0, 0, None, &mut rng), RetryDecision::GiveUp);
    }

    #[test]
    fn max_age_gives_up_when_the_next_attempt_would_be_too_old() {
        let p = RetryPolicy {
            max_age_ms: Some(5_000),
            ..policy()
        };
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(matches!(
            p.decide(1, 0, 1_000, None, &mut rng),
            RetryDecision::At(_)
        ));
        assert_eq!(p.decide(1, 0, 6_000, None, &mut rng), RetryDecision::GiveUp);
        // A server floor past the age limit also means giving up rather than waiting forever.
        assert_eq!(
            p.decide(1, 0, 1_000, Some(9_000), &mut rng),
            RetryDecision::GiveUp
        );
    }
}
