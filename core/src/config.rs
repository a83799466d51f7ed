//! Engine configuration.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::outcome::{Rule, DEFAULT_RULES, KEY_IN_FLIGHT_PROBLEM_TYPE};
use crate::retry::RetryPolicy;

/// Engine configuration. Every field has a default, so a JS caller can pass a partial object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Most ops in one batch.
    pub max_ops: usize,
    /// Most approximate payload bytes in one batch. An op bigger than this is sent alone.
    pub max_bytes: usize,
    /// Most batches (requests) in flight at once: the global concurrency limit.
    pub max_in_flight: usize,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// The classification table, first match wins ([`DEFAULT_RULES`] by default).
    pub rules: Vec<Rule>,
    /// Problem `type`s that mean "this idempotency key is still being processed" (a 409 to retry).
    pub key_in_flight_problem_types: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_ops: 50,
            max_bytes: 256 * 1024,
            max_in_flight: 2,
            retry: RetryPolicy::default(),
            rules: DEFAULT_RULES.to_vec(),
            key_in_flight_problem_types: vec![KEY_IN_FLIGHT_PROBLEM_TYPE.to_string()],
        }
    }
}

impl Config {
    /// Checks the limits make sense (a zero limit would stall the engine forever).
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.max_ops == 0 {
            return Err(CoreError::InvalidConfig("max_ops must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(CoreError::InvalidConfig("max_bytes must be at least 1"));
        }
        if self.max_in_flight == 0 {
            return Err(CoreError::InvalidConfig("max_in_flight must be at least 1"));
        }
        if self.retry.cap_ms < self.retry.base_ms {
            return Err(CoreError::InvalidConfig(
                "retry.cap_ms must be >= retry.base_ms",
            ));
        }
        Ok(())
    }
}
