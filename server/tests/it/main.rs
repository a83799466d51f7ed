//! Integration tests: the real `outbox-server` binary over HTTP on 127.0.0.1.

#[macro_use]
mod common;
mod docs;
mod faults;
mod idempotency;
mod instances;
mod migrations;
mod preconditions;
mod pull;
mod restart;
mod retention;
