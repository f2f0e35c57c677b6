//! `reef servers`: the cluster's servers (`reef server`), and how many
//! copies every stream and bucket has and whether they are current.

use crate::client::{self, call, connect};
use anyhow::{bail, Result};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::servers::{ServerRecord, StreamHealth};

/// Every server, and every stream's copies.
pub async fn fetch(nats: &client::Nats) -> Result<(Vec<ServerRecord>, Vec<StreamHealth>)> {
    let client = connect(nats).await?;
    let ApiResponse::Servers { servers, streams } = call(&client, ApiRequest::ListServers).await?
    else {
        bail!("unexpected reply to server.list");
    };
    Ok((servers, streams))
}

/// The fewest copies any stream has (0 when there is none).
pub fn fewest_copies(streams: &[StreamHealth]) -> usize {
    streams.iter().map(|s| s.replicas).min().unwrap_or(0)
}

pub async fn servers(nats: &client::Nats, json: bool) -> Result<()> {
    let (servers, streams) = fetch(nats).await?;
    let problems: Vec<String> = streams.iter().filter_map(StreamHealth::problem).collect();
    if json {
        let value = serde_json::json!({
            "servers": servers.iter().map(|s| serde_json::json!({
                "name": s.name,
                "node": s.node.to_string(),
                "client": s.client,
                "route": s.route,
                "joined_at_ms": s.joined_at_ms,
            })).collect::<Vec<_>>(),
            "replicas": fewest_copies(&streams),
            "streams": streams.iter().map(|s| serde_json::json!({
                "name": s.name,
                "replicas": s.replicas,
                "leader": s.leader,
                "followers": s.followers.iter().map(|(server, current)| serde_json::json!({
                    "server": server,
                    "current": current,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "problems": problems,
        });
        return crate::views::print_json(&value);
    }
    let rows: Vec<Vec<String>> = servers
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.client.clone(),
                s.route.clone(),
                s.node.to_string(),
            ]
        })
        .collect();
    crate::views::print_table(&["NAME", "CLIENTS", "ROUTES", "NODE"], &rows);
    println!();
    println!(
        "{} streams and buckets, {} copies each{}",
        streams.len(),
        fewest_copies(&streams),
        match problems.is_empty() {
            true => ", all current".to_string(),
            false => format!(":\n  {}", problems.join("\n  ")),
        }
    );
    Ok(())
}
