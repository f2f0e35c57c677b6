//! The conversation between the coordinator and an agent: commands go to the
//! node on its JetStream subject, events come back on the events stream.

use crate::alloc::AllocState;
use crate::app::InstanceAssignment;
use crate::envelope::{Message, MessageKind};
use crate::ids::{AllocId, InstanceId, JobId, NodeId};
use crate::job::JobSpec;
use serde::{Deserialize, Serialize};

/// Work for one node, published on `reef.assign.<node>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentCommand {
    /// Run this allocation. Redelivery of the same allocation id has no effect.
    Run(Box<Assignment>),
    /// Stop this allocation (SIGTERM to its process group, then SIGKILL).
    Stop { alloc: AllocId, job: JobId },
    /// Start an app instance. Redelivery of the same instance id has no effect.
    Deploy(Box<InstanceAssignment>),
    /// Drain and stop an app instance. With `forget_app`, the node's proxy
    /// also forgets the app once none of its instances is left (it was
    /// destroyed, so its hosts answer 404, not 503).
    StopInstance {
        instance: InstanceId,
        forget_app: bool,
    },
    /// Run the release's `post_deploy` hook beside this instance: every
    /// replica of the release is healthy.
    PostDeploy { instance: InstanceId },
}

impl AgentCommand {
    /// The node the command is for; an agent refuses commands for other nodes.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            AgentCommand::Run(a) => Some(a.node),
            AgentCommand::Deploy(a) => Some(a.node),
            AgentCommand::Stop { .. }
            | AgentCommand::StopInstance { .. }
            | AgentCommand::PostDeploy { .. } => None,
        }
    }
}

impl Message for AgentCommand {
    const KIND: MessageKind = MessageKind::AgentCommand;
}

/// One job placed on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub alloc: AllocId,
    pub job: JobId,
    pub node: NodeId,
    pub spec: JobSpec,
    /// Indices of the node's GPUs reserved for this run.
    pub gpus: Vec<u32>,
    pub issued_at_ms: u64,
}

/// A state change of an allocation, reported by the agent that runs it on
/// `reef.events.<node>.<alloc>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocEvent {
    pub alloc: AllocId,
    pub job: JobId,
    pub node: NodeId,
    /// 1, 2, 3... per allocation; the coordinator applies each number once.
    pub seq: u32,
    pub state: AllocState,
    pub at_ms: u64,
    /// Lines of output shipped (stdout, stderr), set on terminal events so a
    /// reader knows when it has seen all of them.
    pub output_lines: Option<(u64, u64)>,
    /// What it used, on terminal events (None: not measured).
    #[serde(default)]
    pub usage: Option<crate::alloc::Usage>,
    /// What it produced, on an `exited` event (None: not measured).
    #[serde(default)]
    pub result: Option<crate::job::JobResult>,
}

impl Message for AllocEvent {
    const KIND: MessageKind = MessageKind::AllocEvent;
}
