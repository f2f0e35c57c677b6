//! `reef cron add|list|history|rm`: periodic jobs.

use crate::client::{self, call, connect};
use crate::run::JobArgs;
use crate::views;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::cron::{CronRun, CronSpec, CronStatus, Overlap, RunOutcome, RunStatus};
use reef_proto::job::JobState;
use reef_proto::units::{format_duration, parse_duration};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Subcommand)]
pub enum CronCommand {
    /// Run a job on a schedule: `reef cron add NAME --schedule "*/5 * * * *" -- CMD`.
    Add(Box<AddArgs>),
    /// The periodic jobs, with their next and last run.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A periodic job's latest runs, newest first, and what became of each.
    History {
        name: String,
        /// How many runs (at most 50).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a periodic job (a run under way goes on).
    Rm { name: String },
}

#[derive(Args)]
pub struct AddArgs {
    /// Its name: 1 to 63 lowercase letters, digits and '-'.
    pub name: String,
    /// When it runs: five crontab fields (minute hour day-of-month month
    /// day-of-week), six with seconds first, or @hourly, @daily, @weekly,
    /// @monthly, @yearly.
    #[arg(long)]
    pub schedule: String,
    /// The time zone its times are in (an IANA name).
    #[arg(long = "tz", default_value = "UTC", value_name = "ZONE")]
    pub time_zone: String,
    /// A tick while the previous run has not ended: skip it, queue it (one
    /// waits at most), or allow it to run beside.
    #[arg(long, default_value = "skip", value_parser = Overlap::parse)]
    pub overlap: Overlap,
    /// How late a tick may still run when no coordinator led at its time
    /// (0 never; at most 1d); older ones are recorded as missed.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub catch_up: Duration,
    #[command(flatten)]
    pub job: JobArgs,
}

pub async fn cron(nats: &client::Nats, command: CronCommand) -> Result<()> {
    match command {
        CronCommand::Add(args) => add(nats, *args).await,
        CronCommand::List { json } => list(nats, json).await,
        CronCommand::History { name, limit, json } => history(nats, &name, limit, json).await,
        CronCommand::Rm { name } => {
            let client = connect(nats).await?;
            match call(&client, ApiRequest::RemoveCron(name.clone())).await? {
                ApiResponse::Done => {
                    eprintln!("periodic job {name} removed");
                    Ok(())
                }
                _ => bail!("unexpected reply from the coordinator"),
            }
        }
    }
}

async fn add(nats: &client::Nats, args: AddArgs) -> Result<()> {
    let spec = CronSpec {
        name: args.name,
        schedule: args.schedule,
        time_zone: args.time_zone,
        overlap: args.overlap,
        catch_up_ms: args.catch_up.as_millis().min(u64::MAX as u128) as u64,
        job: args.job.spec()?,
    };
    // Said here, before anything is sent, as the coordinator would say it.
    spec.validate()?;
    let client = connect(nats).await?;
    let ApiResponse::Cron(status) = call(&client, ApiRequest::AddCron(spec)).await? else {
        bail!("unexpected reply from the coordinator");
    };
    let spec = &status.record.spec;
    let next = match status.next_ms {
        Some(next) => format!("next run {}", when(next, &spec.time_zone)),
        None => "it has no next run".to_string(),
    };
    eprintln!(
        "periodic job {} added: {} ({}); {next}",
        spec.name, spec.schedule, spec.time_zone
    );
    Ok(())
}

/// An instant in `zone`, and how far from now.
fn when(ms: u64, zone: &str) -> String {
    let now = reef_proto::now_ms();
    let relative = if ms >= now {
        format!("in {}", format_duration(Duration::from_millis(ms - now)))
    } else {
        format!("{} ago", format_duration(Duration::from_millis(now - ms)))
    };
    format!("{} ({relative})", local_time(ms, zone))
}

/// An instant as a wall time in `zone`, with its offset.
fn local_time(ms: u64, zone: &str) -> String {
    let Ok(tz) = reef_proto::cron::time_zone(zone) else {
        return reef_proto::cron::tick_text(ms);
    };
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(t) => format!(
            "{} {}",
            tz.to_datetime(t).strftime("%Y-%m-%d %H:%M:%S"),
            tz.to_offset(t)
        ),
        Err(_) => ms.to_string(),
    }
}

async fn list(nats: &client::Nats, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let ApiResponse::Crons(crons) = call(&client, ApiRequest::ListCrons).await? else {
        bail!("unexpected reply from the coordinator");
    };
    if json {
        return views::print_json(&Value::Array(crons.iter().map(cron_json).collect()));
    }
    if crons.is_empty() {
        eprintln!("no periodic jobs (add one with reef cron add NAME --schedule \"...\" -- CMD)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = crons
        .iter()
        .map(|status| {
            let spec = &status.record.spec;
            let next = status
                .next_ms
                .map_or("-".to_string(), |n| local_time(n, &spec.time_zone));
            let last = status.record.recent.first().map_or("-".to_string(), |run| {
                let ago = format_duration(Duration::from_millis(
                    reef_proto::now_ms().saturating_sub(run.tick_ms),
                ));
                format!("{} {ago} ago", outcome_name(&run.outcome))
            });
            vec![
                spec.name.clone(),
                spec.job.app.clone().unwrap_or_else(|| "-".into()),
                spec.schedule.clone(),
                spec.time_zone.clone(),
                spec.overlap.name().to_string(),
                next,
                last,
                command_text(&spec.job.command),
            ]
        })
        .collect();
    views::print_table(
        &[
            "NAME", "APP", "SCHEDULE", "ZONE", "OVERLAP", "NEXT", "LAST", "COMMAND",
        ],
        &rows,
    );
    Ok(())
}

fn command_text(command: &[String]) -> String {
    let text = command.join(" ");
    match text.chars().count() > 50 {
        true => text.chars().take(47).collect::<String>() + "...",
        false => text,
    }
}

fn outcome_name(outcome: &RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Started { .. } => "started",
        RunOutcome::Queued { .. } => "queued",
        RunOutcome::Skipped { .. } => "skipped",
        RunOutcome::Missed { .. } => "missed",
    }
}

async fn history(nats: &client::Nats, name: &str, limit: u32, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let request = ApiRequest::CronHistory {
        name: name.to_string(),
        limit,
    };
    let ApiResponse::CronRuns(runs) = call(&client, request).await? else {
        bail!("unexpected reply from the coordinator");
    };
    if json {
        return views::print_json(&Value::Array(runs.iter().map(run_json).collect()));
    }
    if runs.is_empty() {
        eprintln!("{name} has not run yet");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|status| {
            let run = &status.run;
            let what = match &run.outcome {
                RunOutcome::Skipped { reason } => format!("skipped: {reason}"),
                RunOutcome::Missed { until_ms } => format!(
                    "missed: every tick until {} (no coordinator led then)",
                    reef_proto::cron::tick_text(*until_ms)
                ),
                other => outcome_name(other).to_string(),
            };
            vec![
                reef_proto::cron::tick_text(run.tick_ms),
                what,
                run.job().map_or("-".to_string(), |j| j.to_string()),
                status.job.as_ref().map_or("-".to_string(), state_text),
            ]
        })
        .collect();
    views::print_table(&["TICK", "RUN", "JOB", "STATE"], &rows);
    Ok(())
}

fn state_text(state: &JobState) -> String {
    match state {
        JobState::Exited { code } => format!("exited({code})"),
        JobState::Failed { reason } | JobState::Lost { reason } => {
            format!("{}: {reason}", state.name())
        }
        other => other.name().to_string(),
    }
}

fn last_json(run: &CronRun) -> Value {
    json!({
        "tick_ms": run.tick_ms,
        "outcome": outcome_name(&run.outcome),
        "job": run.job().map(|j| j.to_string()),
    })
}

pub fn cron_json(status: &CronStatus) -> Value {
    let record = &status.record;
    let spec = &record.spec;
    json!({
        "name": spec.name,
        "schedule": spec.schedule,
        "time_zone": spec.time_zone,
        "overlap": spec.overlap.name(),
        "catch_up_ms": spec.catch_up_ms,
        "owner": spec.job.owner,
        "app": spec.job.app,
        "command": spec.job.command,
        "created_at_ms": record.created_at_ms,
        "handled_ms": record.handled_ms,
        "next_ms": status.next_ms,
        "last": record.recent.first().map(last_json),
    })
}

pub fn run_json(status: &RunStatus) -> Value {
    let run = &status.run;
    let (reason, until_ms) = match &run.outcome {
        RunOutcome::Skipped { reason } => (Some(reason.clone()), None),
        RunOutcome::Missed { until_ms } => (None, Some(*until_ms)),
        _ => (None, None),
    };
    let (state, exit_code) = match &status.job {
        Some(JobState::Exited { code }) => (Some("exited"), Some(*code)),
        Some(other) => (Some(other.name()), None),
        None => (None, None),
    };
    json!({
        "tick_ms": run.tick_ms,
        "tick": reef_proto::cron::tick_text(run.tick_ms),
        "at_ms": run.at_ms,
        "outcome": outcome_name(&run.outcome),
        "reason": reason,
        "until_ms": until_ms,
        "job": run.job().map(|j| j.to_string()),
        "state": state,
        "exit_code": exit_code,
    })
}
