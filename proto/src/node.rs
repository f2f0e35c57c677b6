//! Nodes: what an agent tells the cluster about its machine, and the small
//! heartbeat it sends about once a second.

use crate::envelope::{Message, MessageKind};
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    /// Thousandths of a CPU core (a 4-core machine offers 4000).
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

/// One GPU of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The index the driver gives it (what `CUDA_VISIBLE_DEVICES` names).
    pub index: u32,
    pub vendor: String,
    pub model: String,
    pub vram_bytes: u64,
}

/// How far a node is trusted: dedicated servers run anything; contributed
/// machines (lent PCs and GPU rigs) get only work that asks for them or
/// accepts any node, never app replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrustClass {
    #[default]
    Dedicated,
    Contributed,
}

impl TrustClass {
    pub fn name(self) -> &'static str {
        match self {
            TrustClass::Dedicated => "dedicated",
            TrustClass::Contributed => "contributed",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        match input {
            "dedicated" => Ok(TrustClass::Dedicated),
            "contributed" => Ok(TrustClass::Contributed),
            _ => Err(format!(
                "invalid trust class {input:?}: expected dedicated or contributed"
            )),
        }
    }
}

/// Whether a node takes new work. Kept by the coordinator: an agent's
/// registration never changes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Eligibility {
    #[default]
    Eligible,
    /// Marked ineligible by an operator: keeps what it runs, gets nothing new.
    Ineligible,
    /// Being emptied: replicas move elsewhere (the new one healthy before the
    /// old stops); jobs may finish until the deadline, then are stopped.
    Draining { deadline_ms: u64 },
    /// Drained: empty, and gets nothing new until made eligible again.
    Drained,
}

impl Eligibility {
    pub fn name(self) -> &'static str {
        match self {
            Eligibility::Eligible => "eligible",
            Eligibility::Ineligible => "ineligible",
            Eligibility::Draining { .. } => "draining",
            Eligibility::Drained => "drained",
        }
    }
}

/// A node's self-description, sent on registration and kept in the nodes bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    /// Human name (`--name`); unique by convention, not used in subjects.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub resources: NodeResources,
    /// The agent's version.
    pub version: String,
    /// When this agent process started; changes on every agent restart.
    pub started_at_ms: u64,
    /// Set by the coordinator when it accepts the registration.
    pub registered_at_ms: u64,
    /// The node's X25519 public key: secrets for its apps are sealed to it.
    pub sealing_key: [u8; 32],
    pub gpus: Vec<Gpu>,
    pub trust: TrustClass,
    /// Set by the coordinator; what an agent sends is ignored.
    pub eligibility: Eligibility,
    /// Where other nodes reach this node's peer listener (mutual TLS, the
    /// certificate naming [`peer_name`]) to forward requests for apps they
    /// do not run. None: the node takes no forwarded requests.
    pub proxy_addr: Option<std::net::SocketAddr>,
    /// Whether work runs in the sandbox here (false: `--sandbox off`).
    #[serde(default)]
    pub sandbox: bool,
    /// Whether jobs that ask for the network (`reef run --network`) may run here.
    #[serde(default)]
    pub job_network: bool,
    /// Where clients reach this node's proxy over plain HTTP (None: it has
    /// no public listener, or its address is not known).
    #[serde(default)]
    pub public_http: Option<std::net::SocketAddr>,
    /// The PostgreSQL major versions installed here
    /// (`/usr/lib/postgresql/<N>/bin/postgres`), for managed Postgres.
    #[serde(default)]
    pub postgres_versions: Vec<u32>,
}

/// The name a node's certificate for the peer links carries, and the one
/// other nodes check when they connect to it: `<node id>.node.reef`.
pub fn peer_name(node: NodeId) -> String {
    format!("{node}.node.reef")
}

impl Message for NodeRecord {
    const KIND: MessageKind = MessageKind::NodeRecord;
}

/// Sent on `reef.hb.<node>` about once a second over core NATS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: NodeId,
    /// The agent process's start time, so a restart is noticed even between beats.
    pub started_at_ms: u64,
    /// Allocations the agent is running now.
    pub running: u32,
    pub sent_at_ms: u64,
    /// The machine's owner paused it (`reef agent pause`): no new work.
    #[serde(default)]
    pub paused: bool,
    /// The managed services it runs, and how each is.
    #[serde(default)]
    pub services: Vec<crate::services::ServiceHealth>,
    /// Each app's requests through this node's proxy since the agent
    /// started (cumulative), at most [`MAX_TRAFFIC_APPS`]: the dashboard's
    /// per-app chart.
    #[serde(default)]
    pub traffic: Vec<AppTraffic>,
}

/// The most apps one heartbeat reports traffic of.
pub const MAX_TRAFFIC_APPS: usize = 64;

/// One app's requests through one node's proxy since its agent started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppTraffic {
    pub app: String,
    pub requests: u64,
    /// Of those, answered with a 5xx status.
    pub errors: u64,
    /// Their latencies added up, in microseconds.
    pub latency_micros: u64,
}

impl Message for Heartbeat {
    const KIND: MessageKind = MessageKind::Heartbeat;
}

/// Checks a node name: 1-64 of `[A-Za-z0-9._-]`.
pub fn validate_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid node name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        ))
    }
}
