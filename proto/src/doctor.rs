//! What `reef doctor` asks every node, and what a node answers: its clock,
//! version, free disk, whether it sandboxes work, where clients reach its
//! proxy, and whether it reaches the addresses it was asked to try (the
//! other nodes' public ports). Asked by an admin on core NATS
//! (`reef.doctor.<node>`); each node may only answer on its own subject.

use crate::envelope::{Message, MessageKind};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The most addresses one request asks a node to try.
pub const MAX_PROBES: usize = 256;

/// Try these addresses (a TCP connection each) and report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorRequest {
    pub probe: Vec<SocketAddr>,
}

impl Message for DoctorRequest {
    const KIND: MessageKind = MessageKind::DoctorRequest;
}

/// One address tried: how long the connection took, or why it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub addr: SocketAddr,
    pub error: Option<String>,
    pub millis: u32,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    pub node: crate::NodeId,
    /// The agent's reef version.
    pub version: String,
    /// Its clock when it answered.
    pub now_ms: u64,
    /// Where clients reach its proxy: plain HTTP, then HTTPS (none on a
    /// node that serves no apps).
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub data_dir: String,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    /// Whether work runs in the sandbox, and how (or why not).
    pub sandboxed: bool,
    pub sandbox: String,
    pub probes: Vec<Probe>,
}

impl Message for DoctorReport {
    const KIND: MessageKind = MessageKind::DoctorReport;
}
