//! Transports: how a batch the core wants sent reaches the server, and how the answer comes back as the
//! core's transport-neutral [`Reply`].
//!
//! - [`FetchTransport`] speaks docs/PROTOCOL.md over `fetch`.
//! - [`CustomTransport`] hands the batch to the app's own `transport(batch)` function.

mod custom;
mod fetch;
mod http;
pub(crate) mod wire;

use outbox_core::{Batch, Reply};

pub use custom::CustomTransport;
pub use fetch::FetchTransport;
pub use wire::snapshot_text;

/// What happened to a send.
pub enum SendOutcome {
    /// The server (or the app's transport) answered.
    Reply(Reply),
    /// No answer: a network error, a timeout, or the app's transport threw. The op may or may not have
    /// been applied, so the core retries it with the same idempotency key.
    NoAnswer(String),
}

/// Why a request brought no answer.
pub enum Failure {
    /// The network failed or the request timed out: the op may have been applied; retried.
    NoAnswer(String),
    /// The request could not be made because of the app's input or callback: nothing was sent.
    Refused(String),
}

impl Failure {
    /// The words of either, for callers that report both alike.
    pub fn into_message(self) -> String {
        match self {
            Failure::NoAnswer(m) | Failure::Refused(m) => m,
        }
    }
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

    /// True for the built-in transport without a `route`: requests follow docs/PROTOCOL.md, and so must
    /// the names in them.
    pub fn speaks_protocol(&self) -> bool {
        matches!(self, Transport::Fetch(t) if !t.has_route())
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
