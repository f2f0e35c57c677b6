//! `reef audit`: who changed what, and which calls were refused.

use crate::client::{self, call, connect};
use crate::views;
use anyhow::{bail, Result};
use clap::Args;
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::audit::{AuditEntry, AuditQuery, Outcome, DEFAULT_LIMIT, MAX_LIMIT};
use reef_proto::units::parse_duration;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Args)]
pub struct AuditArgs {
    /// Only entries at most this old (`0` for every entry kept).
    #[arg(long, default_value = "24h", value_parser = parse_since)]
    since: Duration,
    /// Only the calls of this user (or node id).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Only the calls of this verb (`app.deploy`, `job.submit`, ...).
    #[arg(long)]
    verb: Option<String>,
    /// The newest this many entries.
    #[arg(long, default_value_t = DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn audit(nats: &client::Nats, args: AuditArgs) -> Result<()> {
    let query = AuditQuery {
        since_ms: args.since.as_millis().min(u128::from(u64::MAX)) as u64,
        user: args.user,
        verb: args.verb,
        limit: args.limit,
    };
    // Said here, before anything is sent, as the coordinator would say it.
    if let Err(e) = query.validate() {
        bail!("{e}");
    }
    let client = connect(nats).await?;
    let ApiResponse::Audit { entries, truncated } =
        call(&client, ApiRequest::ListAudit(query)).await?
    else {
        bail!("unexpected reply from the coordinator");
    };
    if args.json {
        return views::print_json(&json!({
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
            "truncated": truncated,
        }));
    }
    if entries.is_empty() {
        eprintln!("no audit entries match");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                reef_proto::cron::tick_text(entry.at_ms),
                entry.caller.clone(),
                entry.role.clone(),
                entry.verb.clone(),
                entry.target.clone(),
                outcome_text(&entry.outcome),
            ]
        })
        .collect();
    views::print_table(
        &["TIME", "USER", "ROLE", "VERB", "TARGET", "OUTCOME"],
        &rows,
    );
    if truncated {
        eprintln!(
            "older entries match too: narrow with --since, --user or --verb, or raise --limit (at most {MAX_LIMIT})"
        );
    }
    Ok(())
}

/// A duration, or `0` for no bound.
pub fn parse_since(input: &str) -> Result<Duration, String> {
    if input.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(input).map_err(|e| e.to_string())
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done { result } if result.is_empty() => "done".to_string(),
        Outcome::Done { result } => format!("done: {result}"),
        Outcome::Refused { reason } => format!("refused: {reason}"),
        Outcome::Failed { reason } => format!("failed: {reason}"),
    }
}

fn entry_json(entry: &AuditEntry) -> Value {
    let (result, error) = match &entry.outcome {
        Outcome::Done { result } => (Some(result.as_str()), None),
        Outcome::Refused { reason } | Outcome::Failed { reason } => (None, Some(reason.as_str())),
    };
    json!({
        "at_ms": entry.at_ms,
        "user": entry.caller,
        "role": entry.role,
        "verb": entry.verb,
        "target": entry.target,
        "outcome": entry.outcome.as_str(),
        "result": result,
        "error": error,
        "coordinator": entry.coordinator,
    })
}
