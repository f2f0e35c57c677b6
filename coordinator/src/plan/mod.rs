//! Decisions as pure functions of plain data: no I/O, no clock read (time
//! comes in as an argument), each tested exhaustively in a sibling
//! `*_tests.rs` (property tests where the inputs are many). The drivers in
//! `crate::drive` read what a decision needs, call it, then write.
//!
//! - `scheduler`: where a job or a replica goes.
//! - `reconcile`: what closes the gap between an app's desired replicas and
//!   the instances that run.
//! - `transitions`: what an event does to its allocation, its job and an
//!   instance.
//! - `replacement`: which instances a new release replaces, and the next
//!   batch of a rolling update.
//! - `rollout_failure`: a rolling update's reaction to a failed replica.
//! - `node_loss`: what a lost node's work becomes.
//! - `drain`: one step of a drain at a given time.
//! - `retention`: what the leader deletes, and when.
//! - `route_table`: an app's entry in the routes bucket.
//! - `verdict`, `replication`: replicated jobs' copies and verdicts.
//! - `job_query`: which jobs a page of `job.list` holds.
//! - `lease`: the leader lease, for a follower and for the holder.
//! - `node_trust`: what a node's credential vouches for.
//! - `replicas`: which streams need more or fewer copies for the servers.
//! - `cron`: which ticks of a periodic job are due, and what becomes of each.
//! - `app_crons`: what a deploy does to an app's `[[cron]]` periodic jobs.
//! - `services`: which node runs an app's managed service (then pinned
//!   there), its port, and what `reef status` says of it.
//! - `metrics`: the cluster's gauges from the leader's view, and what keeps
//!   a waiting job waiting.

pub(crate) mod app_crons;
pub(crate) mod backups;
pub(crate) mod cron;
pub(crate) mod drain;
pub(crate) mod job_query;
pub(crate) mod lease;
pub(crate) mod metrics;
pub(crate) mod node_loss;
pub(crate) mod node_trust;
pub(crate) mod reconcile;
pub(crate) mod replacement;
pub(crate) mod replicas;
pub(crate) mod replication;
pub(crate) mod retention;
pub(crate) mod rollout_failure;
pub(crate) mod route_table;
pub mod scheduler;
pub(crate) mod services;
pub(crate) mod transitions;
pub(crate) mod verdict;

#[cfg(test)]
pub(crate) mod fixtures;
