//! Engine configuration.

use std::collections::HashMap;

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
    /// Per-collection settings; a collection not listed gets `default_collection`.
    pub collections: HashMap<String, CollectionConfig>,
    /// The settings of every collection not listed in `collections`.
    pub default_collection: CollectionConfig,
    /// How long the server is assumed to remember an idempotency key (ms), until it says otherwise with
    /// an `Idempotency-Retention` header (docs/PROTOCOL.md §4); a shorter stated retention wins. An op
    /// that may have been applied is never resent under its key past this time after its first send
    /// (less a tenth as a margin): see [`crate::OpState::Unknown`].
    pub idempotency_retention_ms: u64,
}

/// What to do when the server holds a newer version than the one an op was made against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictStrategy {
    /// Drop the local op and keep the server's document; the app gets a `conflict` event to show.
    #[default]
    ServerWins,
    /// Rebase the op onto the server's version and send it again, under a new idempotency key (it is a
    /// new request). If the server answers with the same version again, the op is held instead, so a
    /// misbehaving server cannot make it loop.
    ClientWins,
    /// Hold the op in `conflict` with both versions until the app resolves it.
    Manual,
}

/// Settings of one collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectionConfig {
    /// How conflicts are resolved.
    pub conflict: ConflictStrategy,
    /// Ops without a base version take the entity's confirmed version, so conflicts are detected by
    /// default. `false` sends them unconditional (last write wins on the server).
    pub versioned: bool,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            conflict: ConflictStrategy::ServerWins,
            versioned: true,
        }
    }
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
            collections: HashMap::new(),
            default_collection: CollectionConfig::default(),
            idempotency_retention_ms: 24 * 3_600_000,
        }
    }
}

impl Config {
    /// The settings of `collection`.
    pub fn collection(&self, collection: &str) -> CollectionConfig {
        self.collections
            .get(collection)
            .copied()
            .unwrap_or(self.default_collection)
    }

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
