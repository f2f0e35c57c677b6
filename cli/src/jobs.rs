//! `reef jobs`, `reef job status|stop` and `reef nodes`.

use crate::client::{self, call, connect};
use crate::views;
use anyhow::{anyhow, bail, Result};
use reef_proto::api::{ApiRequest, ApiResponse, JobQuery, NodeStatus, DEFAULT_PAGE};
use reef_proto::job::{JobRecord, JobState};
use reef_proto::units::{format_duration, format_size};
use reef_proto::{now_ms, JobId};
use std::collections::HashMap;
use std::time::Duration;

/// Finds a job by full id or unique prefix.
pub async fn resolve(client: &client::Conn, id: &str) -> Result<JobRecord> {
    if let Ok(id) = id.parse::<JobId>() {
        return match call(client, ApiRequest::GetJob(id)).await? {
            ApiResponse::Job(job) => Ok(*job),
            _ => bail!("unexpected reply from the coordinator"),
        };
    }
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!("{id:?} is not a job id");
    }
    // Ids are printed in lower case; a prefix may be typed in either.
    let id = id.to_ascii_lowercase();
    let id = id.as_str();
    let query = JobQuery {
        prefix: Some(id.to_string()),
        ..JobQuery::newest(2)
    };
    let ApiResponse::Jobs { jobs, .. } = call(client, ApiRequest::QueryJobs(query)).await? else {
        bail!("unexpected reply from the coordinator");
    };
    let mut matches = jobs
        .into_iter()
        .filter(|j| j.id.to_string().starts_with(id));
    match (matches.next(), matches.next()) {
        (Some(job), None) => Ok(job),
        (None, _) => bail!("no job {id}"),
        (Some(_), Some(_)) => bail!("{id} matches more than one job; give more of the id"),
    }
}

async fn node_list(client: &client::Conn) -> Result<Vec<NodeStatus>> {
    match call(client, ApiRequest::ListNodes).await? {
        ApiResponse::Nodes(nodes) => Ok(nodes),
        _ => Err(anyhow!("unexpected reply from the coordinator")),
    }
}

pub async fn node_names(client: &client::Conn) -> HashMap<String, String> {
    node_list(client)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.record.id.to_string(), n.record.name))
        .collect()
}

/// `reef jobs`: which page of jobs, and how to print it.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Only jobs in this state: pending, assigned, running, exited, stopped, failed or lost.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = DEFAULT_PAGE, value_name = "N")]
    limit: u32,
    /// Only jobs submitted before this one: the last of the previous page.
    #[arg(long, value_name = "JOB")]
    before: Option<JobId>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    /// The first page, as a table.
    pub fn newest() -> Self {
        Self {
            state: None,
            limit: DEFAULT_PAGE,
            before: None,
            json: false,
        }
    }
}

pub async fn list(nats: &client::Nats, args: ListArgs) -> Result<()> {
    let query = JobQuery {
        state: args.state,
        limit: args.limit,
        before: args.before,
        prefix: None,
    };
    query.validate().map_err(|e| anyhow!(e))?;
    let client = connect(nats).await?;
    let ApiResponse::Jobs { jobs, truncated } = call(&client, ApiRequest::QueryJobs(query)).await?
    else {
        bail!("unexpected reply from the coordinator");
    };
    let names = node_names(&client).await;
    if let (true, Some(last)) = (truncated, jobs.last()) {
        eprintln!("(more: reef jobs --before {})", last.id);
    }
    if args.json {
        return views::print_json(&serde_json::Value::Array(
            jobs.iter().map(|j| views::job_json(j, &names)).collect(),
        ));
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| views::job_row(j, &names, now))
        .collect();
    views::print_table(views::JOB_HEADER, &rows);
    Ok(())
}

pub async fn status(nats: &client::Nats, id: &str, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let job = resolve(&client, id).await?;
    let names = node_names(&client).await;
    if json {
        return views::print_json(&views::job_json(&job, &names));
    }
    let node = job
        .node
        .map(|n| views::node_name(&names, &n))
        .unwrap_or_else(|| "-".into());
    println!("id:        {}", job.id);
    match &job.state {
        JobState::Exited { code } => println!("state:     exited with code {code}"),
        JobState::Pending { reason } => println!("state:     pending: {reason}"),
        JobState::Failed { reason } => println!("state:     failed: {reason}"),
        JobState::Lost { reason } => println!("state:     lost: {reason}"),
        other => println!("state:     {}", other.name()),
    }
    println!("command:   {}", job.spec.command.join(" "));
    println!("owner:     {}", job.spec.owner);
    println!("node:      {node}");
    println!(
        "resources: {} cpu, {} memory",
        job.spec.resources.cpu_millis as f64 / 1000.0,
        format_size(job.spec.resources.memory_bytes)
    );
    if let Some(started) = job.started_at_ms {
        let end = job.finished_at_ms.unwrap_or_else(now_ms);
        println!(
            "runtime:   {}",
            format_duration(Duration::from_millis(end.saturating_sub(started)))
        );
    }
    if let Some((out, err)) = job.output_lines {
        println!("output:    {out} stdout lines, {err} stderr lines");
    }
    if let Some(result) = &job.result {
        println!("stdout:    sha256 {}", result.stdout_sha256);
        for (path, digest) in &result.outputs {
            println!(
                "file:      {path}: {}",
                digest
                    .as_deref()
                    .map_or("missing".to_string(), |d| format!("sha256 {d}"))
            );
        }
    }
    if let Some(replica) = job.replica {
        print_copies(&client, &job, replica, &names).await?;
    }
    if let Some(usage) = job.usage {
        let peak = usage.peak_memory_bytes.map_or(String::new(), |peak| {
            format!(", {} memory at most", format_size(peak))
        });
        println!(
            "used:      {} of CPU{peak}",
            format_duration(Duration::from_millis(usage.cpu_ms))
        );
        if usage.oom_kills > 0 {
            println!(
                "limits:    {} process(es) ended by the kernel at the memory limit",
                usage.oom_kills
            );
        }
        if usage.pids_limit_hits > 0 {
            println!(
                "limits:    {} new process(es) refused at the process limit",
                usage.pids_limit_hits
            );
        }
    }
    Ok(())
}

pub async fn stop(nats: &client::Nats, id: &str) -> Result<()> {
    let client = connect(nats).await?;
    let job = resolve(&client, id).await?;
    let ApiResponse::Job(job) = call(&client, ApiRequest::StopJob(job.id)).await? else {
        bail!("unexpected reply from the coordinator");
    };
    if job.state.is_terminal() && !job.stop_requested {
        println!("job {} had already ended ({})", job.id, job.state.name());
    } else if job.state.is_terminal() {
        println!("job {} stopped", job.id);
    } else {
        println!("stopping job {}", job.id);
    }
    Ok(())
}

pub async fn nodes(nats: &client::Nats, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let nodes = node_list(&client).await?;
    if json {
        return views::print_json(&serde_json::Value::Array(
            nodes.iter().map(views::node_json).collect(),
        ));
    }
    views::print_table(views::NODE_HEADER, &views::node_rows(&nodes));
    Ok(())
}

/// The copies of a replicated job and its verdict, for `reef job status`.
async fn print_copies(
    client: &client::Conn,
    job: &JobRecord,
    replica: reef_proto::job::Replica,
    names: &HashMap<String, String>,
) -> Result<()> {
    use reef_proto::job::Outcome;
    let first = if replica.group == job.id {
        job.clone()
    } else {
        resolve(client, &replica.group.to_string()).await?
    };
    let Some(verification) = first.verification else {
        return Ok(());
    };
    let name = |n: &reef_proto::NodeId| views::node_name(names, n);
    println!(
        "copy:      {} of {} (job {})",
        replica.index + 1,
        verification.replicas.len(),
        first.id
    );
    let Some(verdict) = verification.verdict else {
        println!("verdict:   waiting for every copy to end");
        return Ok(());
    };
    let short = crate::run::short;
    match &verdict.outcome {
        Outcome::Agreed { fingerprint } => {
            println!(
                "verdict:   agreed: every copy produced result {}",
                short(fingerprint)
            )
        }
        Outcome::Disagreed {
            fingerprint,
            dissenters,
            by_dedicated,
        } => {
            let who: Vec<String> = dissenters.iter().map(name).collect();
            println!(
                "verdict:   disagreed: {} differ from the accepted result {} ({})",
                who.join(", "),
                short(fingerprint),
                if *by_dedicated {
                    "the dedicated nodes' result"
                } else {
                    "the result of most copies"
                }
            )
        }
        Outcome::Undecided { reason } => println!("verdict:   undecided: {reason}"),
    }
    let accepted = verdict.outcome.accepted();
    let rows: Vec<Vec<String>> = verdict
        .answers
        .iter()
        .map(|a| {
            vec![
                a.job.to_string(),
                a.node.as_ref().map_or("-".into(), name),
                a.exit_code.map_or("-".into(), |c| c.to_string()),
                match (&a.fingerprint, accepted) {
                    (None, _) => "no result".into(),
                    (Some(f), Some(ok)) if f == ok => format!("{} (accepted)", short(f)),
                    (Some(f), Some(_)) => format!("{} (differs)", short(f)),
                    (Some(f), None) => short(f).to_string(),
                },
            ]
        })
        .collect();
    views::print_table(&["COPY", "NODE", "EXIT", "RESULT"], &rows);
    Ok(())
}
