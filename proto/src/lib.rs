//! The reef wire protocol: every type that crosses NATS, every subject name, and
//! the versioned envelope they travel in. No I/O lives here, so every rule in
//! this crate is tested without a server.
//!
//! - [`subjects`]: subject, stream, bucket and consumer names, in one place.
//! - [`envelope`]: the versioned, size-limited postcard envelope, with room for a
//!   signature.
//! - [`ids`]: job, allocation and node identifiers (uuid v7).
//! - [`job`]: job specifications, their validation, and job records.
//! - [`alloc`]: allocations and their state machine.
//! - [`app`]: releases, app records and instances.
//! - [`certs`]: TLS certificates in the cluster, and ACME challenge answers.
//! - [`node`]: node descriptions and heartbeats.
//! - [`app_routes`]: where each app's healthy instances can be reached.
//! - [`seal`]: signed commands, and the checks an agent makes on them.
//! - [`leader`]: the coordinator leadership lease.
//! - [`agent`]: what the coordinator tells an agent, and what an agent reports.
//! - [`api`]: the request/reply API the CLI speaks.
//! - [`doctor`]: what `reef doctor` asks each node, and its answer.
//! - [`roles`]: who may call which API verb.
//! - [`servers`]: the cluster's servers and how many copies of its state they keep.
//! - [`services`]: the managed services an app asks for (`[services.postgres]`), where each runs.
//! - [`members`]: who holds a credential of the cluster, and revocations.
//! - [`manifest`]: `Reef.toml`, parsed and validated into an app spec.
//! - [`units`]: parsing and printing of sizes and durations.
//! - [`Report`]: an error with its chain of causes, for logs and people.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod agent;
pub mod alloc;
pub mod api;
pub mod app;
pub mod app_routes;
pub mod audit;
pub mod backup;
pub mod certs;
pub mod cron;
pub mod doctor;
pub mod envelope;
pub mod events;
pub mod ids;
pub mod job;
pub mod leader;
pub mod log_batch;
pub mod maintenance;
pub mod manifest;
pub mod members;
pub mod node;
pub mod notify;
mod report;
pub mod roles;
pub mod route_domain;
pub mod seal;
pub mod servers;
pub mod services;
pub mod subjects;
pub mod units;

pub use envelope::{decode, encode, peek_kind, DecodeError, EncodeError, Message, MessageKind};
pub use ids::{AllocId, InstanceId, JobId, NodeId};
pub use report::Report;

/// Milliseconds since the Unix epoch, the one clock format on the wire.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
