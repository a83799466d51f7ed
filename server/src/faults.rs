//! Fault injection and rate limiting for tests. Off unless configured with `--faults` or
//! `POST /_admin/faults`.
//!
//! Reproducibility: every probabilistic decision is drawn from one PRNG seeded with
//! `FaultConfig::seed`, in request-arrival order. The same seed and the same sequence of requests
//! therefore produce the same faults. Re-posting a config reseeds the PRNG.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Process the request normally.
    None,
    /// 500 before anything is done.
    Error500,
    /// 503 before anything is done (with `Retry-After` if `retryAfter503Secs` is set).
    Error503,
    /// 429 with `Retry-After` before anything is done.
    Error429,
    /// Process and commit the request, then close the connection without answering.
    LostAck,
    /// Hold the request for `stallMs` without doing anything, then close the connection.
    Stall,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultConfig {
    pub seed: u64,
    pub error500_percent: f64,
    pub error503_percent: f64,
    pub retry_after503_secs: Option<u64>,
    pub error429_percent: f64,
    pub retry_after429_secs: u64,
    pub lost_ack_percent: f64,
    pub stall_percent: f64,
    pub stall_ms: u64,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// Forced outcomes for the next requests, consumed one per request before any random draw.
    pub sequence: Vec<FaultKind>,
    /// Only requests with these methods are subject to faults and latency (all when absent).
    pub methods: Option<Vec<String>>,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            error500_percent: 0.0,
            error503_percent: 0.0,
            retry_after503_secs: None,
            error429_percent: 0.0,
            retry_after429_secs: 1,
            lost_ack_percent: 0.0,
            stall_percent: 0.0,
            stall_ms: 30_000,
            latency_ms: 0,
            latency_jitter_ms: 0,
            sequence: Vec::new(),
            methods: None,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window and client.
    pub limit: u64,
    pub window_secs: u64,
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), String> {
        let pcts = [
            ("error500Percent", self.error500_percent),
            ("error503Percent", self.error503_percent),
            ("error429Percent", self.error429_percent),
            ("lostAckPercent", self.lost_ack_percent),
            ("stallPercent", self.stall_percent),
        ];
        for (name, p) in pcts {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{name} must be between 0 and 100"));
            }
        }
        if pcts.iter().map(|(_, p)| p).sum::<f64>() > 100.0 {
            return Err("the fault percentages add up to more than 100".into());
        }
        if let Some(rl) = &self.rate_limit {
            if rl.limit == 0 || rl.window_secs == 0 {
                return Err("rateLimit.limit and rateLimit.windowSecs must be positive".into());
            }
        }
        Ok(())
    }
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub kind: FaultKind,
    pub latency: Duration,
}

/// The rate-limit verdict for one request, with what the headers should say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitState {
    pub limit: u64,
    pub window_secs: u64,
    pub remaining: u64,
    pub reset_secs: u64,
    pub allowed: bool,
}

struct Inner {
    config: FaultConfig,
    rng: fastrand::Rng,
    sequence: VecDeque<FaultKind>,
    counts: HashMap<FaultKind, u64>,
    considered: u64,
    windows: HashMap<String, (Instant, u64)>,
}

pub struct Faults {
    inner: Mutex<Inner>,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Faults {
        Faults {
            inner: Mutex::new(Inner::fresh(config)),
        }
    }

    pub fn set(&self, config: FaultConfig) {
        *self.lock() = Inner::fresh(config);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Value {
        let inner = self.lock();
        let mut injected = serde_json::Map::new();
        for kind in [
            FaultKind::Error500,
            FaultKind::Error503,
            FaultKind::Error429,
            FaultKind::LostAck,
            FaultKind::Stall,
        ] {
            let name = serde_json::to_value(kind).unwrap_or(Value::Null);
            let name = name.as_str().unwrap_or_default().to_owned();
            injected.insert(name, json!(inner.counts.get(&kind).copied().unwrap_or(0)));
        }
        json!({
            "config": inner.config,
            "pendingSequence": inner.sequence,
            "considered": inner.considered,
            "injected": injected,
        })
    }

    pub fn applies_to(&self, method: &str) -> bool {
        let inner = self.lock();
        match &inner.config.methods {
            None => true,
            Some(ms) => ms.iter().any(|m| m.eq_ignore_ascii_case(method)),
        }
    }

    pub fn decide(&self) -> Decision {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.considered += 1;
        let c = &inner.config;
        let kind = match inner.sequence.pop_front() {
            Some(kind) => kind,
            None => {
                let total = c.error500_percent
                    + c.error503_percent
                    + c.error429_percent
                    + c.stall_percent
                    + c.lost_ack_percent;
                if total <= 0.0 {
                    FaultKind::None
                } else {
                    let r = inner.rng.f64() * 100.0;
                    let bands = [
                        (FaultKind::Error500, c.error500_percent),
                        (FaultKind::Error503, c.error503_percent),
                        (FaultKind::Error429, c.error429_percent),
                        (FaultKind::Stall, c.stall_percent),
                        (FaultKind::LostAck, c.lost_ack_percent),
                    ];
                    let mut acc = 0.0;
                    let mut picked = FaultKind::None;
                    for (kind, p) in bands {
                        acc += p;
                        if r < acc {
                            picked = kind;
                            break;
                        }
                    }
                    picked
                }
            }
        };
        let jitter = if c.latency_jitter_ms > 0 {
            inner.rng.u64(0..=c.latency_jitter_ms)
        } else {
            0
        };
        let latency = Duration::from_millis(c.latency_ms + jitter);
        if kind != FaultKind::None {
            *inner.counts.entry(kind).or_default() += 1;
        }
        Decision { kind, latency }
    }

    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// Fixed-window counter per client scope.
    pub fn rate_limit(&self, scope: &str) -> Option<RateLimitState> {
        let mut inner = self.lock();
        let rl = inner.config.rate_limit.clone()?;
        let window = Duration::from_secs(rl.window_secs);
        let now = Instant::now();
        let entry = inner.windows.entry(scope.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        let elapsed = now.duration_since(entry.0);
        let reset_secs = (window - elapsed).as_secs_f64().ceil().max(1.0) as u64;
        let allowed = entry.1 < rl.limit;
        if allowed {
            entry.1 += 1;
        }
        Some(RateLimitState {
            limit: rl.limit,
            window_secs: rl.window_secs,
            remaining: rl.limit - entry.1,
            reset_secs,
            allowed,
        })
    }
}

impl Inner {
    fn fresh(config: FaultConfig) -> Inner {
        Inner {
            rng: fastrand::Rng::with_seed(config.seed),
            sequence: config.sequence.iter().copied().collect(),
            counts: HashMap::new(),
            considered: 0,
            windows: HashMap::new(),
            config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions() {
        let config = FaultConfig {
            seed: 9,
            error500_percent: 20.0,
            error503_percent: 20.0,
            lost_ack_percent: 20.0,
            latency_jitter_ms: 50,
            ..FaultConfig::default()
        };
        let run = |c: &FaultConfig| {
            let f = Faults::new(c.clone());
            (0..200).map(|_| f.decide()).collect::<Vec<_>>()
        };
        let a = run(&config);
        assert_eq!(a, run(&config));
        let other = FaultConfig {
            seed: 10,
            ..config.clone()
        };
        assert_ne!(a, run(&other));
        let none = a.iter().filter(|d| d.kind == FaultKind::None).count();
        assert!(
            (60..=140).contains(&none),
            "about 40% should pass, got {none}/200"
        );
    }

    #[test]
    fn sequence_comes_first() {
        let f = Faults::new(FaultConfig {
            sequence: vec![FaultKind::LostAck, FaultKind::Error503],
            ..FaultConfig::default()
        });
        assert_eq!(f.decide().kind, FaultKind::LostAck);
        assert_eq!(f.decide().kind, FaultKind::Error503);
        assert_eq!(f.decide().kind, FaultKind::None);
    }

    #[test]
    fn rejects_impossible_percentages() {
        let c = FaultConfig {
            error500_percent: 60.0,
            error503_percent: 60.0,
            ..FaultConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
