//! The stable JSON shapes of `--json` output (documented in docs/cli.md) and
//! the human tables. JSON views are built explicitly so the wire types can
//! change without changing what scripts read.

use reef_proto::api::{AppStatus, NodeState, NodeStatus};
use reef_proto::app::{AppRecord, Instance};
use reef_proto::job::{JobRecord, JobState};
use reef_proto::units::{format_duration, format_size};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

pub fn job_json(job: &JobRecord, node_names: &HashMap<String, String>) -> Value {
    let (exit_code, reason) = match &job.state {
        JobState::Exited { code } => (Some(*code), None),
        JobState::Pending { reason } | JobState::Failed { reason } | JobState::Lost { reason } => {
            (None, Some(reason.clone()))
        }
        _ => (None, None),
    };
    let node = job.node.map(|n| n.to_string());
    json!({
        "id": job.id.to_string(),
        "state": job.state.name(),
        "exit_code": exit_code,
        "reason": reason,
        "command": job.spec.command,
        "owner": job.spec.owner,
        "node": node,
        "node_name": node.as_ref().and_then(|n| node_names.get(n)),
        "alloc": job.alloc.map(|a| a.to_string()),
        "cpu": job.spec.resources.cpu_millis as f64 / 1000.0,
        "memory_bytes": job.spec.resources.memory_bytes,
        "constraints": job.spec.constraints,
        "gpus": job.spec.gpus.count,
        "trust": job.spec.trust.map(reef_proto::node::TrustClass::name),
        "retries": job.spec.retries,
        "lost_on": job.lost_on.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "timeout_ms": job.spec.timeout_ms,
        "stop_requested": job.stop_requested,
        "submitted_at_ms": job.submitted_at_ms,
        "started_at_ms": job.started_at_ms,
        "finished_at_ms": job.finished_at_ms,
        "output_lines": job.output_lines.map(|(out, err)| json!({"stdout": out, "stderr": err})),
        "network": job.spec.network,
        "usage": job.usage.map(|u| json!({
            "cpu_ms": u.cpu_ms,
            "peak_memory_bytes": u.peak_memory_bytes,
            "oom_kills": u.oom_kills,
            "pids_limit_hits": u.pids_limit_hits,
        })),
        "outputs": job.spec.outputs,
        "result": job.result.as_ref().map(|r| json!({
            "stdout_sha256": r.stdout_sha256,
            "outputs": r.outputs.iter().map(|(path, sha)| json!({"path": path, "sha256": sha})).collect::<Vec<_>>(),
        })),
        "replica": job.replica.map(|r| json!({"group": r.group.to_string(), "index": r.index})),
        "verification": job.verification.as_ref().map(|v| verification_json(v, node_names)),
    })
}

/// `n` things, the noun in the number it takes: "1 instance", "2 instances".
pub fn counted(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// A node's name from `node_names` (id → name), or its id if unknown.
pub fn node_name(node_names: &HashMap<String, String>, node: &reef_proto::NodeId) -> String {
    let id = node.to_string();
    node_names.get(&id).cloned().unwrap_or(id)
}

/// A replicated job's copies and verdict, nodes named where known.
pub fn verification_json(
    v: &reef_proto::job::Verification,
    node_names: &HashMap<String, String>,
) -> Value {
    use reef_proto::job::Outcome;
    let name = |n: &reef_proto::NodeId| node_name(node_names, n);
    json!({
        "replicas": v.replicas.iter().map(|j| j.to_string()).collect::<Vec<_>>(),
        "verdict": v.verdict.as_ref().map(|verdict| {
            let (outcome, accepted, dissenters, by_dedicated, reason) = match &verdict.outcome {
                Outcome::Agreed { fingerprint } => ("agreed", Some(fingerprint), vec![], false, None),
                Outcome::Disagreed { fingerprint, dissenters, by_dedicated } => (
                    "disagreed",
                    Some(fingerprint),
                    dissenters.iter().map(name).collect(),
                    *by_dedicated,
                    None,
                ),
                Outcome::Undecided { reason } => ("undecided", None, vec![], false, Some(reason)),
            };
            json!({
                "outcome": outcome,
                "accepted": accepted,
                "dissenters": dissenters,
                "decided_by_dedicated_nodes": by_dedicated,
                "reason": reason,
                "decided_at_ms": verdict.decided_at_ms,
                "answers": verdict.answers.iter().map(|a| json!({
                    "job": a.job.to_string(),
                    "node": a.node.map(|n| n.to_string()),
                    "node_name": a.node.as_ref().map(name),
                    "fingerprint": a.fingerprint,
                    "exit_code": a.exit_code,
                })).collect::<Vec<_>>(),
            })
        }),
    })
}

pub fn node_json(node: &NodeStatus) -> Value {
    let r = &node.record;
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "state": node_state(node.state),
        "trust": r.trust.name(),
        "sandbox": r.sandbox,
        "paused": node.paused,
        "job_network": r.job_network,
        "eligibility": r.eligibility.name(),
        "labels": r.labels,
        "resources": {
            "cpu": r.resources.cpu_millis as f64 / 1000.0,
            "memory_bytes": r.resources.memory_bytes,
            "disk_bytes": r.resources.disk_bytes,
        },
        "allocated": {
            "cpu": node.allocated.cpu_millis as f64 / 1000.0,
            "memory_bytes": node.allocated.memory_bytes,
        },
        "allocations": node.allocations,
        "verdicts": node.verdicts.map(|(agreed, disagreed)| json!({"agreed": agreed, "disagreed": disagreed})),
        "gpus": r.gpus.iter().map(|g| json!({
            "index": g.index,
            "vendor": g.vendor,
            "model": g.model,
            "vram_bytes": g.vram_bytes,
        })).collect::<Vec<_>>(),
        "version": r.version,
        "proxy": r.proxy_addr.map(|a| a.to_string()),
        "http": r.public_http.map(|a| a.to_string()),
        "last_seen_ms": node.last_seen_ms,
        "started_at_ms": r.started_at_ms,
    })
}

fn node_state(state: NodeState) -> &'static str {
    match state {
        NodeState::Ready => "ready",
        NodeState::Down => "down",
    }
}

/// Prints rows as left-aligned columns.
/// Prints `value` as indented JSON.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn node_rows(nodes: &[NodeStatus]) -> Vec<Vec<String>> {
    nodes
        .iter()
        .map(|n| {
            let r = &n.record;
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                r.name.clone(),
                r.id.to_string(),
                node_state(n.state).to_string(),
                {
                    let mut trust = match (r.trust, r.sandbox, r.job_network) {
                        (_, false, _) => format!("{} (no sandbox)", r.trust.name()),
                        (reef_proto::node::TrustClass::Contributed, true, true) => {
                            "contributed (network)".to_string()
                        }
                        (trust, true, _) => trust.name().to_string(),
                    };
                    if let Some((agreed, disagreed)) = n.verdicts.filter(|(_, d)| *d > 0) {
                        trust.push_str(&format!(
                            " ({disagreed} of {} results disagreed)",
                            agreed + disagreed
                        ));
                    }
                    trust
                },
                match n.paused {
                    true => format!("{} (paused)", r.eligibility.name()),
                    false => r.eligibility.name().to_string(),
                },
                format!(
                    "{:.1}/{:.1}",
                    n.allocated.cpu_millis as f64 / 1000.0,
                    r.resources.cpu_millis as f64 / 1000.0
                ),
                format!(
                    "{}/{}",
                    format_size(n.allocated.memory_bytes),
                    format_size(r.resources.memory_bytes)
                ),
                format_size(r.resources.disk_bytes),
                gpu_summary(&r.gpus),
                n.allocations.to_string(),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                },
            ]
        })
        .collect()
}

pub const NODE_HEADER: &[&str] = &[
    "NAME",
    "ID",
    "STATE",
    "TRUST",
    "SCHEDULING",
    "CPU",
    "MEMORY",
    "DISK",
    "GPUS",
    "ALLOCS",
    "LABELS",
];
pub const JOB_HEADER: &[&str] = &["ID", "STATE", "NODE", "AGE", "COMMAND"];

pub fn job_row(job: &JobRecord, node_names: &HashMap<String, String>, now_ms: u64) -> Vec<String> {
    let state = match &job.state {
        JobState::Exited { code } => format!("exited({code})"),
        other => other.name().to_string(),
    };
    let node = job
        .node
        .map(|n| node_name(node_names, &n))
        .unwrap_or_else(|| "-".into());
    let age = format_duration(Duration::from_millis(
        now_ms.saturating_sub(job.submitted_at_ms),
    ));
    let mut command = job.spec.command.join(" ");
    if command.chars().count() > 60 {
        command = command.chars().take(57).collect::<String>() + "...";
    }
    vec![job.id.to_string(), state, node, age, command]
}

pub const INSTANCE_HEADER: &[&str] = &[
    "INSTANCE", "RELEASE", "NODE", "STATE", "PORT", "RESTARTS", "UPTIME", "MESSAGE",
];

pub fn instance_rows(
    instances: &[Instance],
    node_names: &HashMap<String, String>,
) -> Vec<Vec<String>> {
    let now = reef_proto::now_ms();
    instances
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.version.to_string(),
                node_names
                    .get(&i.node.to_string())
                    .cloned()
                    .unwrap_or_else(|| i.node.to_string()),
                i.state.name().to_string(),
                i.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                i.restarts.to_string(),
                format_duration(Duration::from_millis(now.saturating_sub(i.created_at_ms))),
                i.message.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

/// What an app is meant to be doing: `running`, `stopped` (by `reef stop`)
/// or `halted` (its rollout or first deploy failed; see `rollout_failure`).
pub fn app_state(record: &reef_proto::app::AppRecord) -> &'static str {
    record.state_name()
}

pub fn app_json(status: &AppStatus, node_names: &HashMap<String, String>) -> Value {
    json!({
        "name": status.record.name,
        "release": status.record.version,
        "replicas": status.record.replicas,
        "state": app_state(&status.record),
        "rollout_failure": status.record.rollout_failure,
        "revert_to": status.record.revert_to,
        "maintenance": status.record.maintenance.as_ref().map(|m| json!({
            "since_ms": m.since_ms,
            "content_type": m.page.content_type,
            "page_bytes": m.page_bytes,
            "custom_page": m.custom_page,
        })),
        "domains": status.release.spec.domains,
        "artifact": { "digest": status.release.artifact.digest, "size": status.release.artifact.size },
        "instances": status.instances.iter().map(|i| json!({
            "id": i.id.to_string(),
            "release": i.version,
            "node": i.node.to_string(),
            "node_name": node_names.get(&i.node.to_string()),
            "state": i.state.name(),
            "port": i.port,
            "restarts": i.restarts,
            "message": i.message,
            "created_at_ms": i.created_at_ms,
            "updated_at_ms": i.updated_at_ms,
        })).collect::<Vec<_>>(),
        "services": status.services.iter().map(service_json).collect::<Vec<_>>(),
    })
}

/// A managed service as `reef status --json` shows it (never its password).
pub fn service_json(service: &reef_proto::api::ServiceStatus) -> Value {
    json!({
        "kind": service.kind.name(),
        "version": service.version,
        "databases": service.databases,
        "node": service.node.to_string(),
        "node_name": service.node_name,
        "port": service.port,
        "role": service.role,
        "state": service.state,
    })
}

/// One line of `reef status` for a managed service.
pub fn service_line(service: &reef_proto::api::ServiceStatus) -> String {
    let node = service
        .node_name
        .clone()
        .unwrap_or_else(|| service.node.to_string());
    format!(
        "{} {} on node {node}, port {}, role {}, databases {}: {}",
        service.kind.name(),
        service.version,
        service.port,
        service.role,
        service.databases.join(", "),
        service.state
    )
}

/// Where a release stands for its app: `current` (with `halted` when its
/// rollout stopped on a failure), `reverted` (a newer release the app went
/// back from after it failed), or `earlier`.
pub fn release_state(release: &reef_proto::app::Release, app: &AppRecord) -> &'static str {
    use std::cmp::Ordering;
    match release.version.cmp(&app.version) {
        Ordering::Equal if app.halted => "current, halted",
        Ordering::Equal => "current",
        Ordering::Greater => "reverted",
        Ordering::Less => "earlier",
    }
}

/// A release as `reef releases --json` shows it.
pub fn release_json(release: &reef_proto::app::Release, app: &AppRecord) -> Value {
    json!({
        "release": release.version,
        "state": release_state(release, app),
        "copied_from": release.copied_from,
        "artifact": { "digest": release.artifact.digest, "size": release.artifact.size },
        "replicas": release.spec.replicas,
        "created_at_ms": release.created_at_ms,
    })
}

/// `2x NVIDIA GeForce RTX 4090 (24G)`, or `-`.
fn gpu_summary(gpus: &[reef_proto::node::Gpu]) -> String {
    let mut models: Vec<(String, usize)> = Vec::new();
    for g in gpus {
        let label = format!("{} ({})", g.model, format_size(g.vram_bytes));
        match models.iter_mut().find(|(m, _)| *m == label) {
            Some((_, n)) => *n += 1,
            None => models.push((label, 1)),
        }
    }
    if models.is_empty() {
        return "-".into();
    }
    models
        .iter()
        .map(|(m, n)| format!("{n}x {m}"))
        .collect::<Vec<_>>()
        .join(", ")
}
