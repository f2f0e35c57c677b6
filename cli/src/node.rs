//! `reef node drain|eligible|ineligible|rm`: taking nodes in and out of service.

use crate::client::{self, call, connect};
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use reef_proto::api::{ApiRequest, ApiResponse, NodeStatus};
use reef_proto::node::Eligibility;
use reef_proto::units::parse_duration;
use std::time::Duration;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Empty a node: app replicas move elsewhere (each new one healthy before
    /// the old one stops), jobs may finish until the deadline. Waits until the
    /// node is empty.
    Drain {
        /// Node name or id.
        node: String,
        /// How long jobs may keep running before they are stopped.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        deadline: Duration,
        /// Return once the drain has started.
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Let a node take new work again (also ends a drain).
    Eligible {
        /// Node name or id.
        node: String,
    },
    /// Keep a node's current work but give it nothing new.
    Ineligible {
        /// Node name or id.
        node: String,
    },
    /// Forget a node that is down or empty.
    Rm {
        /// Node name or id.
        node: String,
    },
}

/// How often `drain` looks at the node while it waits.
const POLL: Duration = Duration::from_millis(250);

pub async fn node(nats: &client::Nats, command: NodeCommand) -> Result<()> {
    let client = connect(nats).await?;
    let (request, name) = match &command {
        NodeCommand::Drain { node, deadline, .. } => (
            ApiRequest::DrainNode {
                node: node.clone(),
                deadline_ms: deadline.as_millis().min(u128::from(u64::MAX)) as u64,
            },
            node,
        ),
        NodeCommand::Eligible { node } => (
            ApiRequest::SetEligible {
                node: node.clone(),
                eligible: true,
            },
            node,
        ),
        NodeCommand::Ineligible { node } => (
            ApiRequest::SetEligible {
                node: node.clone(),
                eligible: false,
            },
            node,
        ),
        NodeCommand::Rm { node } => (ApiRequest::RemoveNode(node.clone()), node),
    };
    call(&client, request).await?;
    match command {
        NodeCommand::Drain { detach: false, .. } => wait_drained(&client, name).await,
        NodeCommand::Drain { detach: true, .. } => {
            println!("draining {name}");
            Ok(())
        }
        NodeCommand::Eligible { .. } => {
            println!("{name} takes new work");
            Ok(())
        }
        NodeCommand::Ineligible { .. } => {
            println!("{name} gets no new work");
            Ok(())
        }
        NodeCommand::Rm { .. } => {
            println!("{name} removed");
            Ok(())
        }
    }
}

/// Waits until the coordinator reports the node drained, printing what is left as it changes.
async fn wait_drained(client: &client::Conn, name: &str) -> Result<()> {
    let mut last_left = None;
    loop {
        let node = find(client, name).await?;
        match node.record.eligibility {
            Eligibility::Drained => {
                println!("{} drained: it runs nothing", node.record.name);
                return Ok(());
            }
            Eligibility::Draining { .. } => {
                if last_left != Some(node.allocations) {
                    println!(
                        "{}: {} left",
                        node.record.name,
                        crate::views::counted(
                            node.allocations as usize,
                            "allocation",
                            "allocations"
                        )
                    );
                    last_left = Some(node.allocations);
                }
            }
            other => bail!(
                "the drain of {} ended without emptying it: it is now {}",
                node.record.name,
                other.name()
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn find(client: &client::Conn, name: &str) -> Result<NodeStatus> {
    let ApiResponse::Nodes(nodes) = call(client, ApiRequest::ListNodes).await? else {
        return Err(anyhow!("unexpected reply from the coordinator"));
    };
    nodes
        .into_iter()
        .find(|n| n.record.name == name || n.record.id.to_string() == name)
        .ok_or_else(|| anyhow!("node {name:?} is no longer listed"))
}
