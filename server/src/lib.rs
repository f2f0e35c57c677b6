//! What makes a machine a server of a reef cluster, below the coordinator
//! and the agent it also runs:
//!
//! - [`natsd`]: its nats-server, supervised (restarted when it dies,
//!   stopped at any moment, start-up included).
//! - [`topology`]: the cluster's servers as this one knows them, and what
//!   its nats-server must be made of that (standalone or clustered, routes).
//! - [`snapshot`]: JetStream's exact snapshot and restore of a stream.
//! - [`migrate`]: the one-time move of a single server's state into a NATS
//!   cluster, when the second server joins.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod migrate;
pub mod natsd;
pub mod snapshot;
pub mod topology;
