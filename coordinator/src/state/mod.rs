//! What the leader keeps in memory between messages. Each piece changes
//! only through its own methods, so who changes what is a search for the
//! method: `Cluster::commit_instance`, `release_instance` and
//! `refresh_instance` are the only writers of the live instances, for one.
//!
//! - `cluster`: registered nodes, live allocations and instances with the
//!   resources they hold, pending jobs, replicated groups.
//! - `route_book`: the routes the leader wrote.
//! - `converger`: the reconciler's memory between passes.

pub(crate) mod cluster;
pub(crate) mod converger;
pub(crate) mod route_book;
