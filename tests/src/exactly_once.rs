//! Checking that accepted jobs each ran exactly once: they all finish, each
//! writes its id to a shared runs file, and no id is there twice.

use crate::api;
use reef_proto::job::{JobRecord, JobState};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Waits until every job in `ids` is listed and finished; after `timeout`,
/// panics naming the unfinished ones, with `logs()`.
pub async fn wait_finished(
    client: &async_nats::Client,
    ids: &BTreeSet<String>,
    timeout: Duration,
    logs: impl Fn() -> String,
) -> Vec<JobRecord> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let jobs = api::try_jobs(client).await.unwrap_or_default();
        let mine: Vec<JobRecord> = jobs
            .into_iter()
            .filter(|j| ids.contains(&j.id.to_string()))
            .collect();
        if mine.len() == ids.len() && mine.iter().all(|j| j.state.is_terminal()) {
            return mine;
        }
        if tokio::time::Instant::now() >= deadline {
            let waiting: Vec<_> = mine
                .iter()
                .filter(|j| !j.state.is_terminal())
                .map(|j| (j.id, &j.state, j.node))
                .collect();
            panic!(
                "{} of {} jobs listed, unfinished: {waiting:?}\n{}",
                mine.len(),
                ids.len(),
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts every job exited 0, and the runs file (one job id per line) has
/// every id of `ids` and no id twice. Returns the lines.
pub fn assert_ran_once(
    jobs: &[JobRecord],
    runs: &Path,
    ids: &BTreeSet<String>,
    logs: impl Fn() -> String,
) -> Vec<String> {
    for job in jobs {
        assert_eq!(
            job.state,
            JobState::Exited { code: 0 },
            "{job:?}\n{}",
            logs()
        );
    }
    let ran: Vec<String> = std::fs::read_to_string(runs)
        .expect("runs file")
        .lines()
        .map(str::to_string)
        .collect();
    let distinct: BTreeSet<String> = ran.iter().cloned().collect();
    assert_eq!(distinct.len(), ran.len(), "no job ran twice: {ran:?}");
    assert!(
        ids.is_subset(&distinct),
        "every job ran: missing {:?}",
        ids.difference(&distinct).collect::<Vec<_>>()
    );
    ran
}
