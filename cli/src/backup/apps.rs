//! `reef backup run|list|restore APP`: an app's `${data_dir}` backups,
//! made by the leader with the nodes that run the app (see `[backup]` in
//! `Reef.toml`). `run` and `restore` wait for the outcome unless
//! `--no-wait`, and say what was done.

use crate::client::{self, call, connect, Conn};
use anyhow::{bail, Result};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::backup::{BackupRecord, BackupState, RestoreRun, Trigger};
use reef_proto::units::{format_duration, format_size};
use std::process::ExitCode;
use std::time::Duration;

/// How long `run` and `restore` wait for the outcome.
const WAIT: Duration = Duration::from_secs(900);
/// Between two looks at the backup's record while waiting.
const LOOK_EVERY: Duration = Duration::from_millis(250);

async fn backups(client: &Conn, app: &str) -> Result<Vec<BackupRecord>> {
    match call(client, ApiRequest::ListBackups(app.to_string())).await? {
        ApiResponse::Backups(records) => Ok(records),
        _ => bail!("unexpected reply from the coordinator"),
    }
}

fn started(response: ApiResponse) -> Result<(u64, Option<u64>)> {
    match response {
        ApiResponse::BackupStarted {
            id,
            restore_started_ms,
            ..
        } => Ok((id, restore_started_ms)),
        _ => bail!("unexpected reply from the coordinator"),
    }
}

/// Looks at the backup's record until `done` finds what it waits for.
async fn wait_for<T>(
    client: &Conn,
    app: &str,
    id: u64,
    done: impl Fn(&BackupRecord) -> Option<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(record) = backups(client, app).await?.into_iter().find(|r| r.id == id) {
            if let Some(outcome) = done(&record) {
                return Ok(outcome);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "backup {id} of {app} did not finish within {}; `reef backup list {app}` shows where it is",
                format_duration(WAIT)
            );
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

pub async fn run(nats: &client::Nats, app: &str, wait: bool) -> Result<ExitCode> {
    let client = connect(nats).await?;
    let (id, _) = started(call(&client, ApiRequest::BackupApp(app.to_string())).await?)?;
    if !wait {
        eprintln!("backup {id} of {app} started; `reef backup list {app}` shows it");
        return Ok(ExitCode::SUCCESS);
    }
    let record = wait_for(&client, app, id, |r| {
        (r.state != BackupState::Running).then(|| r.clone())
    })
    .await?;
    match &record.state {
        BackupState::Failed { reason } => {
            eprintln!("backup {id} of {app} failed: {reason}");
            Ok(ExitCode::FAILURE)
        }
        _ => {
            println!(
                "backup {id} of {app}: {} part(s), {} stored, in {}",
                record.parts.len(),
                format_size(record.size()),
                took(&record)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn restore(
    nats: &client::Nats,
    app: &str,
    id: Option<u64>,
    wait: bool,
) -> Result<ExitCode> {
    let client = connect(nats).await?;
    let request = ApiRequest::RestoreApp {
        app: app.to_string(),
        id,
    };
    let (id, started_ms) = started(call(&client, request).await?)?;
    let Some(started_ms) = started_ms else {
        bail!("unexpected reply from the coordinator");
    };
    if !wait {
        eprintln!(
            "restore of {app} from backup {id} started; `reef backup list {app}` shows how it went"
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("restoring {app} from backup {id}...");
    let run: RestoreRun = wait_for(&client, app, id, |r| {
        r.restores
            .iter()
            .find(|run| run.started_ms == started_ms && run.outcome.is_some())
            .cloned()
    })
    .await?;
    match run.outcome {
        Some(Ok(done)) => {
            println!("restored {app} from backup {id}: {done}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(reason)) => {
            eprintln!("restore of {app} from backup {id} failed: {reason}");
            Ok(ExitCode::FAILURE)
        }
        None => unreachable!("waited for an outcome"),
    }
}

pub async fn list(nats: &client::Nats, app: &str, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let records = backups(&client, app).await?;
    if json {
        let rows: Vec<serde_json::Value> = records.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if records.is_empty() {
        eprintln!("no backups of {app} (`reef backup run {app}` makes one)");
        return Ok(());
    }
    println!(
        "{:<14} {:<20} {:<9} {:<8} {:>10}  {:<6} LAST RESTORE",
        "ID", "STARTED (UTC)", "STATE", "BY", "SIZE", "PARTS"
    );
    for r in &records {
        let restore = match r.restores.last() {
            None => "-".to_string(),
            Some(run) => match &run.outcome {
                None => format!("running (by {})", run.by),
                Some(Ok(_)) => format!("{} by {}: done", utc(run.started_ms), run.by),
                Some(Err(e)) => format!("{} by {}: failed: {e}", utc(run.started_ms), run.by),
            },
        };
        println!(
            "{:<14} {:<20} {:<9} {:<8} {:>10}  {:<6} {}",
            r.id,
            utc(r.started_ms),
            state(&r.state),
            trigger(r.trigger),
            format_size(r.size()),
            r.parts.len(),
            restore
        );
        if let BackupState::Failed { reason } = &r.state {
            println!("  failed: {reason}");
        }
    }
    Ok(())
}

fn state(s: &BackupState) -> &'static str {
    match s {
        BackupState::Running => "running",
        BackupState::Done => "done",
        BackupState::Failed { .. } => "failed",
    }
}

fn trigger(t: Trigger) -> &'static str {
    match t {
        Trigger::Schedule => "schedule",
        Trigger::Manual => "hand",
    }
}

fn took(r: &BackupRecord) -> String {
    let ms = r
        .finished_ms
        .unwrap_or(r.started_ms)
        .saturating_sub(r.started_ms);
    format_duration(Duration::from_millis(ms))
}

fn utc(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// One backup as `--json` prints it.
fn to_json(r: &BackupRecord) -> serde_json::Value {
    let (state, reason) = match &r.state {
        BackupState::Failed { reason } => ("failed", Some(reason.clone())),
        other => (state(other), None),
    };
    serde_json::json!({
        "id": r.id,
        "state": state,
        "reason": reason,
        "trigger": trigger(r.trigger),
        "started_ms": r.started_ms,
        "finished_ms": r.finished_ms,
        "release": r.release,
        "size": r.size(),
        "parts": r.parts.iter().map(|p| serde_json::json!({
            "kind": p.kind.describe(),
            "node": p.node.to_string(),
            "size": p.size,
            "sha256": p.sha256,
        })).collect::<Vec<_>>(),
        "restores": r.restores.iter().map(|run| serde_json::json!({
            "started_ms": run.started_ms,
            "finished_ms": run.finished_ms,
            "by": run.by,
            "outcome": match &run.outcome {
                None => serde_json::Value::Null,
                Some(Ok(done)) => serde_json::json!({"done": done}),
                Some(Err(e)) => serde_json::json!({"failed": e}),
            },
        })).collect::<Vec<_>>(),
    })
}
