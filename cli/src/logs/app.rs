//! `reef logs APP`: the output of an app's instances, each line prefixed
//! with its node and instance (`[node-1/a1b2c3] `). By default only the
//! instances of the current release; with `--all`, every instance any
//! release ever had whose output the logs stream still holds.

use super::reader::{Joiners, Printer, Sequencer};
use super::{ordered, BACKLOG_WAIT};
use crate::client;
use anyhow::{anyhow, Result};
use async_nats::jetstream;
use futures::StreamExt;
use reef_proto::api::{ApiRequest, ApiResponse, AppStatus};
use reef_proto::log_batch::JoinedLine;
use reef_proto::subjects;
use std::collections::{HashMap, HashSet, VecDeque};

/// Which instances' output is shown.
pub struct Shown {
    /// None: all of them.
    current: Option<HashSet<String>>,
    /// Instances already found not to be of the current release.
    others: HashSet<String>,
}

impl Shown {
    fn new(app: &AppStatus, all: bool) -> Self {
        Self {
            current: (!all).then(|| current_instances(app)),
            others: HashSet::new(),
        }
    }

    fn shows(&self, instance: &str) -> bool {
        self.current.as_ref().is_none_or(|c| c.contains(instance))
    }
}

/// The ids of the instances of the release that should be running.
pub fn current_instances(app: &AppStatus) -> HashSet<String> {
    app.instances
        .iter()
        .filter(|i| i.version == app.release.version)
        .map(|i| i.id.to_string())
        .collect()
}

/// The prefix of a line from `subject`: `[node/instance] `, the node by
/// name where it is known, the instance by its last six characters.
pub fn prefix(names: &HashMap<String, String>, subject: &str) -> Vec<u8> {
    let Some((node, instance)) = subjects::instance_of_log(subject) else {
        return b"[?] ".to_vec();
    };
    let node = names.get(node).map_or(node, String::as_str);
    let short = &instance[instance.len().saturating_sub(6)..];
    format!("[{node}/{short}] ").into_bytes()
}

pub async fn app_logs(
    client: &client::Conn,
    app: &AppStatus,
    tail: Option<usize>,
    follow: bool,
    all: bool,
) -> Result<()> {
    let names = crate::jobs::node_names(client).await;
    let mut shown = Shown::new(app, all);
    let js = jetstream::new(client.client.clone());
    let (backlog, mut messages) = ordered(&js, subjects::app_logs(&app.record.name)).await?;
    let (mut sequencer, mut joiners, mut printer) =
        (Sequencer::default(), Joiners::default(), Printer::default());
    let keep = tail.unwrap_or(usize::MAX);
    let mut lines: VecDeque<(String, JoinedLine)> = VecDeque::new();
    let mut hidden = false;
    for _ in 0..backlog {
        let msg = tokio::time::timeout(BACKLOG_WAIT, messages.next())
            .await
            .map_err(|_| anyhow!("timed out reading logs"))?;
        let Some(Ok(msg)) = msg else { break };
        let instance = subjects::instance_of_log(&msg.subject).map(|(_, i)| i);
        if !instance.is_some_and(|i| shown.shows(i)) {
            hidden = true;
            continue;
        }
        if keep == 0 {
            continue;
        }
        for piece in sequencer.accept(&msg.subject, &msg.payload) {
            if let Some(line) = joiners.push(&msg.subject, &piece) {
                if lines.len() == keep {
                    lines.pop_front();
                }
                lines.push_back((msg.subject.to_string(), line));
            }
        }
    }
    if lines.is_empty() && hidden && keep > 0 {
        eprintln!(
            "reef: no output of release {} of {} yet; `reef logs {} --all` shows earlier releases'",
            app.release.version, app.record.name, app.record.name
        );
    }
    for (subject, line) in lines {
        printer.line(&prefix(&names, &subject), &line);
    }
    printer.flush();
    if !follow {
        return Ok(());
    }
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| anyhow!("reading logs failed: {e}"))?;
        let Some((_, instance)) = subjects::instance_of_log(&msg.subject) else {
            continue;
        };
        if !shown.shows(instance) {
            if shown.others.contains(instance) {
                continue;
            }
            // An instance started since: of a release deployed meanwhile?
            match client::call(client, ApiRequest::AppStatus(app.record.name.clone())).await {
                Ok(ApiResponse::App(now)) => shown.current = Some(current_instances(&now)),
                _ => continue,
            }
            if !shown.shows(instance) {
                shown.others.insert(instance.to_string());
                continue;
            }
        }
        let prefix = prefix(&names, &msg.subject);
        for piece in sequencer.accept(&msg.subject, &msg.payload) {
            printer.piece(&msg.subject, &prefix, &piece);
        }
        printer.flush();
    }
    Ok(())
}
