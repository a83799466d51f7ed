//! Retry policy: exponential backoff with full jitter, bounded by optional attempt and age limits.

use serde::{Deserialize, Serialize};

/// How transient failures are retried.
///
/// The delay before retry *n* (1-based) is `uniform(0, min(cap, base * 2^(n-1)))` — "full jitter",
/// which spreads a crowd of clients that failed together so they do not return together — but never
/// less than `floor_ms`. A server's `Retry-After` is a floor on top of it: we never retry sooner than
/// the server asked, except that no wait the server asks for is longer than `max_server_wait_ms`.
///
/// Rate limits (429, 503 with `Retry-After`, an exhausted quota) wait `max(Retry-After, equal jitter
/// over the window of the n-th rate limit in a row)`: a server that answers `Retry-After: 0`, or a
/// date in the past, or nothing at all, still sees the client back off further each time.
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
    /// The shortest wait after any answer that asks to wait, so a zero draw of the jitter or a
    /// `Retry-After: 0` can never make the client resend at once, in a loop.
    pub floor_ms: u64,
    /// The longest wait a server's `Retry-After` or rate-limit reset can impose. A longer one (a
    /// misconfigured "10 years") is cut to this; the server answers again if it still means it.
    pub max_server_wait_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 1_000,
            cap_ms: 60_000,
            max_attempts: None,
            max_age_ms: None,
            floor_ms: 100,
            max_server_wait_ms: 3_600_000,
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

    /// A full-jitter delay for retry number `attempts`, drawn from `rng`, at least `floor_ms`.
    pub fn jittered_delay_ms(&self, attempts: u32, rng: &mut fastrand::Rng) -> u64 {
        rng.u64(0..=self.window_ms(attempts)).max(self.floor_ms)
    }

    /// The wait after the `streak`-th rate limit in a row (1-based) when the server's own hint is
    /// `server_ms`: "equal jitter" (`window/2 + uniform(0, window/2)`), so it grows with the streak and
    /// is never near zero, and never shorter than what the server asked (capped at
    /// `max_server_wait_ms`).
    pub fn rate_limit_delay_ms(
        &self,
        streak: u32,
        server_ms: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> u64 {
        let window = self.window_ms(streak);
        let own = window / 2 + rng.u64(0..=window / 2);
        own.max(self.cap_server_wait(server_ms).unwrap_or(0))
            .max(self.floor_ms)
    }

    /// A server's requested wait, cut to `max_server_wait_ms`.
    pub fn cap_server_wait(&self, server_ms: Option<u64>) -> Option<u64> {
        server_ms.map(|ms| ms.min(self.max_server_wait_ms))
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
            floor_ms: 0,
            ..RetryPolicy::default()
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
    fn no_wait_is_shorter_than_the_floor() {
        let p = RetryPolicy {
            floor_ms: 50,
            ..policy()
        };
        let mut rng = fastrand::Rng::with_seed(3);
        assert!((0..500).all(|_| p.jittered_delay_ms(1, &mut rng) >= 50));
        assert!((0..500).all(|_| p.rate_limit_delay_ms(1, Some(0), &mut rng) >= 50));
    }

    #[test]
    fn rate_limit_waits_grow_with_the_streak_even_when_the_server_says_zero() {
        let p = policy();
        let mut rng = fastrand::Rng::with_seed(4);
        for streak in 1..8u32 {
            let window = p.window_ms(streak);
            for _ in 0..50 {
                let d = p.rate_limit_delay_ms(streak, Some(0), &mut rng);
                assert!(d >= window / 2 && d <= window, "streak {streak}: {d}");
            }
        }
        // The server's own wait wins when it is longer, up to the cap.
        assert_eq!(p.rate_limit_delay_ms(1, Some(30_000), &mut rng), 30_000);
        let capped = RetryPolicy {
            max_server_wait_ms: 5_000,
            ..policy()
        };
        assert_eq!(
            capped.rate_limit_delay_ms(1, Some(u64::MAX), &mut rng),
            5_000
        );
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
