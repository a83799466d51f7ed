//! Transports: how a batch the core wants sent reaches the server, and how the answer comes back as the
//! core's transport-neutral [`Reply`].
//!
//! - [`FetchTransport`] speaks docs/PROTOCOL.md over `fetch`.
//! - [`CustomTransport`] hands the batch to the app's own `transport(batch)` function.

mod custom;
mod fetch;
mod wire;

use outbox_core::{Batch, Reply};

pub use custom::CustomTransport;
pub use fetch::call_async;
pub use fetch::FetchTransport;
pub use wire::snapshot_json;

/// What happened to a send.
pub enum SendOutcome {
    /// The server (or the app's transport) answered.
    Reply(Reply),
    /// No answer: a network error, a timeout, or the app's transport threw. The op may or may not have
    /// been applied, so the core retries it with the same idempotency key.
    NoAnswer(String),
}

/// The configured transport.
pub enum Transport {
    /// docs/PROTOCOL.md over fetch.
    Fetch(FetchTransport),
    /// The app's function.
    Custom(CustomTransport),
}

impl Transport {
    /// Sends one batch.
    pub async fn send(&self, batch: &Batch) -> SendOutcome {
        match self {
            Transport::Fetch(t) => t.send(batch).await,
            Transport::Custom(t) => t.send(batch).await,
        }
    }

    /// True when the transport can deliver `custom` ops (the built-in protocol has no such method
    /// unless `route` maps them).
    pub fn supports_custom_ops(&self) -> bool {
        match self {
            Transport::Fetch(t) => t.has_route(),
            Transport::Custom(_) => true,
        }
    }
}
