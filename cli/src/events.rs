//! `reef events [-f]`: what happened in the cluster (nodes up, down and
//! drained; deploys started, healthy, failed and reverted; instances that
//! crashed; certificates issued or failed; periodic runs that failed),
//! read from the cluster events stream.

use crate::client;
use anyhow::{anyhow, bail, Context, Result};
use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures::StreamExt;
use reef_proto::events::{ClusterEvent, EventKind};
use reef_proto::{decode, subjects};
use std::time::Duration;

/// How long reading the stored events may stall before it is an error.
const BACKLOG_WAIT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct EventsArgs {
    /// Only events at most this old (`0` for every event kept).
    #[arg(long, default_value = "24h", value_parser = crate::audit::parse_since)]
    since: Duration,
    /// Only events of this kind (repeatable): node.up, node.down,
    /// node.drained, deploy.started, deploy.healthy, deploy.failed,
    /// deploy.reverted, instance.crashed, cert.issued, cert.failed,
    /// cron.failed.
    #[arg(long = "kind", value_name = "KIND", value_parser = EventKind::parse)]
    kinds: Vec<EventKind>,
    /// Keep following: print each event as it happens, until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn events(nats: &client::Nats, args: EventsArgs) -> Result<()> {
    let client = client::connect(nats).await?;
    let js = jetstream::new(client.client.clone());
    let stream = js
        .get_stream(subjects::CLUSTER_EVENTS_STREAM)
        .await
        .map_err(|e| {
            anyhow!("could not open the events stream (has a coordinator ever run?): {e}")
        })?;
    let deliver_policy = if args.since.is_zero() {
        consumer::DeliverPolicy::All
    } else {
        let since = u64::try_from(args.since.as_millis()).unwrap_or(u64::MAX);
        let start = reef_proto::now_ms().saturating_sub(since);
        let start = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start) * 1_000_000)
            .map_err(|e| anyhow!("--since: {e}"))?;
        consumer::DeliverPolicy::ByStartTime { start_time: start }
    };
    let filter = match args.kinds.as_slice() {
        [one] => one.subject(),
        _ => subjects::CLUSTER_EVENTS_WILDCARD.to_string(),
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            ..Default::default()
        })
        .await
        .context("could not read the events stream")?;
    let backlog = consumer.cached_info().num_pending;
    let mut messages = consumer
        .messages()
        .await
        .context("could not read the events stream")?;
    let wanted = |event: &ClusterEvent| args.kinds.is_empty() || args.kinds.contains(&event.kind);
    let mut printed = 0u64;
    for _ in 0..backlog {
        let msg = tokio::time::timeout(BACKLOG_WAIT, messages.next())
            .await
            .map_err(|_| anyhow!("timed out reading the events stream"))?;
        let Some(msg) = msg else { break };
        let msg = msg.context("reading the events stream failed")?;
        if let Some(event) = parse(&msg.payload) {
            if wanted(&event) {
                print(&event, args.json)?;
                printed += 1;
            }
        }
    }
    if !args.follow {
        if printed == 0 && !args.json {
            eprintln!("no events match (reef events -f follows new ones)");
        }
        return Ok(());
    }
    while let Some(msg) = messages.next().await {
        let msg = msg.context("reading the events stream failed")?;
        if let Some(event) = parse(&msg.payload) {
            if wanted(&event) {
                print(&event, args.json)?;
            }
        }
    }
    bail!("the events stream ended")
}

/// An event, or None (with a note) for bytes that are not one.
fn parse(payload: &[u8]) -> Option<ClusterEvent> {
    match decode::<ClusterEvent>(payload) {
        Ok(event) => Some(event),
        Err(e) => {
            eprintln!("skipped an event that does not decode: {e}");
            None
        }
    }
}

fn print(event: &ClusterEvent, json: bool) -> Result<()> {
    use std::io::Write;
    let line = if json {
        serde_json::json!({
            "at_ms": event.at_ms,
            "kind": event.kind.name(),
            "target": event.target,
            "message": event.message,
        })
        .to_string()
    } else {
        format!(
            "{}  {:<16}  {}  {}",
            reef_proto::cron::tick_text(event.at_ms),
            event.kind.name(),
            event.target,
            event.message
        )
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    // Followed live, each event shows as it comes, even through a pipe.
    out.flush()?;
    Ok(())
}
