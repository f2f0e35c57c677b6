//! The leader's I/O: its loop (`term`) and the drivers it calls. Each
//! driver reads what a decision needs, calls the pure function in
//! `crate::plan`, then writes and publishes what it decided; none decides
//! inside a compare-and-set closure or between two publishes.
//!
//! - `term`: a term as leader, its loop and its tick.
//! - `checkpoint`: where a term starts, and what the leader writes for the
//!   next one.
//! - `election`: the leader lease in KV, around `plan::lease`.
//! - `departures`: the servers' disconnect advisories.
//! - `dispatch`: placements turned into allocations and assignments, and
//!   every command to a node (sealed, retried until JetStream has it).
//! - `events`: allocation and instance events applied.
//! - `instances`: starting and stopping app instances, and their events.
//! - `node_loss`: a lost node's work, after `plan::node_loss`.
//! - `node_status`: the nodes as `node.list` shows them, for every
//!   coordinator to answer from.
//! - `drain`: drain steps, after `plan::drain`.
//! - `rolling_update`: rolling updates and their reaction to a failure.
//! - `converge`: the reconciler's driver.
//! - `routes_writer`: the routes bucket.
//! - `replication`: replicated jobs' verdicts.
//! - `retention`: deleting what had its time, after `plan::retention`.
//! - `replicas`: every stream's copies, as the servers call for.
//! - `cron`: periodic jobs' ticks, claimed then carried out.

pub(crate) mod backups;
pub(crate) mod checkpoint;
pub(crate) mod converge;
pub(crate) mod cron;
pub(crate) mod departures;
pub(crate) mod dispatch;
pub(crate) mod drain;
pub(crate) mod election;
pub(crate) mod events;
pub(crate) mod instances;
pub(crate) mod node_loss;
pub(crate) mod node_status;
pub(crate) mod notify;
pub(crate) mod replicas;
pub(crate) mod replication;
pub(crate) mod retention;
pub(crate) mod rolling_update;
pub(crate) mod routes_writer;
pub(crate) mod term;

use crate::certs;
use crate::state::cluster::Cluster;
use crate::state::converger::Converger;
use crate::state::route_book::RouteBook;
use crate::store;
use crate::Authority;
use crate::StoreConfig;
use std::collections::{BTreeSet, HashSet};

/// The leader: everything one term keeps. Its methods live in the drivers
/// of this folder and the handlers of `crate::api`; its in-memory state
/// (`cluster`, `routes`, `converger`) changes only through their own
/// methods in `crate::state`.
pub(crate) struct Coordinator {
    pub(crate) client: async_nats::Client,
    pub(crate) store: store::Store,
    pub(crate) cluster: Cluster,
    /// Nodes heard in heartbeats but not (yet) in this coordinator's view.
    pub(crate) unknown_nodes: HashSet<reef_proto::NodeId>,
    /// Each node's credential key, to know whose connection closed.
    pub(crate) node_keys: std::collections::HashMap<String, reef_proto::NodeId>,
    /// Allocations recorded in KV whose assignment may not be in the stream yet.
    pub(crate) unsent: BTreeSet<reef_proto::AllocId>,
    /// Commands for nodes that could not be published yet: (node, message id, command).
    pub(crate) queued: Vec<(reef_proto::NodeId, String, reef_proto::agent::AgentCommand)>,
    /// Messages that failed to decode or validate, dropped.
    pub(crate) malformed: u64,
    pub(crate) cluster_key: Option<std::sync::Arc<reef_secrets::ClusterKey>>,
    /// When this coordinator started leading: nodes never heard since then
    /// count as silent from this moment.
    pub(crate) started: std::time::Instant,
    /// The prefix of this coordinator's own API subject, where followers relay requests.
    pub(crate) relay_prefix: String,
    /// Assignments published and not yet acknowledged by JetStream.
    pub(crate) acks: tokio::task::JoinSet<(
        reef_proto::AllocId,
        Result<(), async_nats::jetstream::context::PublishError>,
    )>,
    /// Shared with this term's certificate manager.
    pub(crate) certs: certs::Handle,
    /// Where backups and restores go to this term's backups task.
    pub(crate) backups: Option<tokio::sync::mpsc::Sender<backups::Work>>,
    /// The routes bucket as this leader wrote it.
    pub(crate) routes: RouteBook,
    /// The reconciler's memory between passes.
    pub(crate) converger: Converger,
    /// The key node credentials must be signed by (`Config::node_issuer`).
    pub(crate) node_issuer: Option<String>,
    pub(crate) authority: Option<std::sync::Arc<Authority>>,
    /// When join tokens were last swept.
    pub(crate) token_sweep: std::time::Instant,
    /// When the replicas of the streams were last matched to the servers.
    pub(crate) replicas_sized: Option<std::time::Instant>,
    /// How to make streams and buckets again if they vanish.
    pub(crate) store_config: StoreConfig,
    /// The sequence number of the last command sealed; starts from the
    /// clock in microseconds at each term, so numbers stay unique across
    /// leaders.
    pub(crate) command_seq: u64,
    /// Allocations this leader's drains asked to stop, so that a drain
    /// past its deadline asks each once.
    pub(crate) drain_stops: HashSet<reef_proto::AllocId>,
    /// What is deleted when, and the pass under way.
    pub(crate) retention: retention::Retention,
    /// When the checkpoint was last written.
    pub(crate) checkpointed: Option<std::time::Instant>,
    /// The node statuses as last written for `node.list`.
    pub(crate) node_statuses: node_status::Published,
    /// Answers the read-only verbs off the loop.
    pub(crate) reads: crate::api::reads::Reads,
    /// Where each call goes into the audit log.
    pub(crate) audit: crate::api::audit::Audit,
    /// What `/metrics` reports.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Where the cluster's events go (`reef events`).
    pub(crate) events: crate::cluster_events::ClusterEvents,
    /// The periodic jobs and when each next needs the leader.
    pub(crate) crons: cron::Crons,
}
