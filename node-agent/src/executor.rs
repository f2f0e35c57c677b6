//! Runs one allocation as a child process in its own process group, ships its
//! output, enforces its timeout, honours stop requests, and records and
//! reports every state change. When the main process ends, whatever it left
//! behind in its group is killed too, so a job never outlives its allocation.

use crate::process::{exit_code, start_time};
use crate::records::Durability;
use crate::sandbox::{Identity, Launch, Limits};
use crate::{logs, outputs, Agent};
use reef_proto::alloc::{AllocState, Usage};
use reef_proto::job::JobResult;
use reef_proto::subjects;
use reef_proto::units::format_duration;
use reef_proto::AllocId;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// How a running job came to an end.
enum Ending {
    /// The main process exited by itself.
    Exited(std::process::ExitStatus),
    Stop,
    Timeout(Duration),
    Shutdown,
}

/// How long log shippers may take to drain after the process group is gone.
const LOG_DRAIN: Duration = Duration::from_secs(10);

/// Runs allocation `alloc` to completion. `stop` is cancelled by a stop request.
pub(crate) async fn run(agent: Arc<Agent>, alloc: AllocId, stop: CancellationToken) {
    let Ended {
        state,
        lines,
        usage,
        result,
    } = execute(&agent, alloc, &stop).await;
    let record = agent
        .records
        .update(alloc, Durability::Written, |r| {
            r.advance(state.clone());
            r.output_lines = lines;
            r.usage = usage;
            r.result = result.clone();
        })
        .await;
    match record {
        Ok(Some(record)) => agent.report(&agent.records, &record).await,
        Ok(None) => {}
        Err(e) => tracing::error!(%alloc, error = %e, "could not record the end of an allocation"),
    }
    agent.forget_running(alloc);
}

/// How an allocation ended: its state, the lines it wrote, what it used,
/// what it produced.
struct Ended {
    state: AllocState,
    lines: Option<(u64, u64)>,
    usage: Option<Usage>,
    result: Option<JobResult>,
}

impl Ended {
    fn early(state: AllocState) -> Self {
        Self {
            state,
            lines: None,
            usage: None,
            result: None,
        }
    }
}

async fn execute(agent: &Arc<Agent>, alloc: AllocId, stop: &CancellationToken) -> Ended {
    let failed = |reason: String| Ended::early(AllocState::Failed { reason });
    let Some(record) = agent.records.get(alloc) else {
        return failed("allocation record vanished".into());
    };
    let assignment = record.assignment;
    let spec = &assignment.spec;
    if let Err(e) = spec.validate() {
        return failed(format!("invalid job: {e}"));
    }
    if stop.is_cancelled() {
        return Ended::early(AllocState::Stopped);
    }
    // New assignments are recorded as `starting` already (one synced write);
    // one accepted by an older agent is moved there, synced, before the
    // process exists, so after any crash it is known to have possibly run
    // and is never started again. Not reported: `running` follows within
    // milliseconds and supersedes it.
    if record.state == AllocState::Accepted {
        if let Err(e) = agent
            .records
            .transition(alloc, AllocState::Starting, Durability::Synced)
            .await
        {
            return failed(format!("could not record the start durably: {e}"));
        }
    }

    let mut owned = Vec::new();
    let workdir = match &spec.workdir {
        Some(dir) => match chosen_workdir(dir, &agent.config.allowed_workdirs).await {
            Ok(dir) => dir,
            Err(why) => return failed(why),
        },
        None => {
            let own = agent.config.data_dir.join("work").join(alloc.to_string());
            if let Err(e) = tokio::fs::create_dir_all(&own).await {
                return failed(format!(
                    "could not create working directory {}: {e}",
                    own.display()
                ));
            }
            owned.push(own.clone());
            own
        }
    };
    if spec.network && !agent.jobs_may_use_network() {
        return failed(
            "this node's owner does not let jobs use the network (--allow-network)".into(),
        );
    }
    // A job of an app's `[[cron]]`: in the release, as the app's uid.
    let app_place = match &spec.app {
        Some(app) => match agent.app_place(app).await {
            Ok(place) => Some(place),
            Err(why) => return failed(why),
        },
        None => None,
    };
    let mut writable = vec![workdir.clone()];
    let mut readonly = Vec::new();
    if let Some(place) = &app_place {
        writable.push(place.data.clone());
        writable.extend(place.scratch.clone());
        owned.extend(writable[1..].iter().cloned());
        readonly.push(place.release.clone());
    }
    let launch = Launch {
        group: alloc.to_string(),
        identity: match &spec.app {
            Some(app) => Identity::App(app),
            None => Identity::Job,
        },
        limits: Limits {
            memory_bytes: spec.resources.memory_bytes,
            cpu_max_millis: Some(spec.resources.cpu_millis),
            cpu_weight_millis: spec.resources.cpu_millis,
            pids_max: agent.sandbox.settings().pids_max,
        },
        argv: spec.command.iter().map(Into::into).collect(),
        workdir: app_place
            .as_ref()
            .map_or_else(|| workdir.clone(), |p| p.release.clone()),
        writable,
        owned,
        readonly,
        network: spec.network,
        gpus: &assignment.gpus,
        files: Vec::new(),
        stdin: spec.stdin.is_some(),
    };
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let reef_env = [
        ("PATH", path),
        ("HOME", workdir.clone().into_os_string()),
        ("LANG", "C.UTF-8".into()),
        ("REEF_JOB_ID", assignment.job.to_string().into()),
        ("REEF_ALLOC_ID", alloc.to_string().into()),
        ("REEF_NODE_ID", assignment.node.to_string().into()),
    ];
    let app_env = app_place.iter().flat_map(|p| &p.env);
    let env = reef_env
        .into_iter()
        .map(|(k, v)| (std::ffi::OsString::from(k), v))
        .chain(app_env.map(|(k, v)| (k.into(), v.into())))
        .chain(spec.env.iter().map(|(k, v)| (k.into(), v.into())))
        .chain(gpu_env(&assignment.gpus).map(|(k, v)| (k.into(), v.into())));
    let (mut child, mut tree) = match agent.sandbox.spawn(launch, env).await {
        Ok(spawned) => spawned,
        Err(e) => return failed(reef_proto::Report(&e).to_string()),
    };
    let Some(pid) = child.id() else {
        agent.sandbox.end(&mut tree).await;
        return failed("the process exited before it could be tracked".into());
    };
    let started = start_time(pid);
    // One durable write records both the process group (for recovery) and the state.
    match agent
        .records
        .update(alloc, Durability::Written, |r| {
            r.pgid = Some(pid);
            r.pgid_start_time = started;
            r.advance(AllocState::Running { pid });
        })
        .await
    {
        Ok(Some(record)) => agent.report(&agent.records, &record).await,
        Ok(None) => {}
        Err(e) => tracing::error!(%alloc, error = %e, "could not record the running process"),
    }

    // Its standard input, written beside it: a job that reads none of it
    // must not hold the executor up. The writer ends with the job (it is
    // aborted when dropped, on every way out of here).
    let _feeder = match (child.stdin.take(), spec.stdin.clone()) {
        (Some(mut pipe), Some(input)) => Some(AbortOnDropHandle::new(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            // A job that exits first closes the pipe: nothing to report.
            let _ = pipe.write_all(&input).await;
            // Dropping the pipe closes it: the job reads its end of input.
        }))),
        _ => None,
    };
    let shippers = logs::ship_output(
        &agent.js,
        &mut child,
        subjects::logs(agent.node, &assignment.spec.owner, assignment.job, alloc),
    );

    let timeout = spec.timeout_ms.map(Duration::from_millis);
    let timeout_sleep = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let ending = tokio::select! {
        status = child.wait() => {
            match status {
                Ok(status) => Ending::Exited(status),
                Err(e) => {
                    agent.sandbox.end(&mut tree).await;
                    return failed(format!("waiting for the process failed: {e}"));
                }
            }
        }
        _ = stop.cancelled() => Ending::Stop,
        _ = agent.shutdown.cancelled() => Ending::Shutdown,
        _ = timeout_sleep => Ending::Timeout(timeout.unwrap_or_default()),
    };
    let state = match ending {
        Ending::Exited(status) => AllocState::Exited {
            code: exit_code(status),
        },
        ending => {
            agent.transition(alloc, AllocState::Stopping).await;
            tree.stop(&mut child, agent.config.stop_grace).await;
            match ending {
                Ending::Exited(status) => AllocState::Exited {
                    code: exit_code(status),
                },
                Ending::Stop if agent.was_reclaimed(alloc) => AllocState::Lost {
                    reason: "the machine's owner paused it and stopped its jobs".into(),
                },
                Ending::Stop => AllocState::Stopped,
                Ending::Timeout(t) => AllocState::Failed {
                    reason: format!("timed out after {}", format_duration(t)),
                },
                Ending::Shutdown => AllocState::Lost {
                    reason: "the node's agent shut down while the job was running".into(),
                },
            }
        }
    };
    // The main process is gone: end whatever it left in its group, which also
    // closes the pipes the shippers read.
    let usage = agent.sandbox.end(&mut tree).await;
    let state = match (&state, usage) {
        (AllocState::Exited { code }, Some(usage)) if *code != 0 && usage.oom_kills > 0 => {
            AllocState::Failed {
                reason: out_of_memory(spec.resources.memory_bytes),
            }
        }
        _ => state,
    };
    let drained = logs::finish(shippers, LOG_DRAIN).await;
    // A result is what a run to its end produced: all of its stdout, and
    // its declared files, read now that none of its processes is left.
    let result = match (&state, drained.stdout_sha256) {
        (AllocState::Exited { .. }, Some(stdout)) => {
            let (dir, paths) = (workdir.clone(), spec.outputs.clone());
            let outputs = tokio::task::spawn_blocking(move || outputs::digests(&dir, &paths))
                .await
                .unwrap_or_default();
            Some(JobResult {
                stdout_sha256: outputs::hex(&stdout),
                outputs,
            })
        }
        _ => None,
    };
    Ended {
        state,
        lines: Some(drained.lines),
        usage,
        result,
    }
}

/// The reason given for work the kernel ended at its memory limit.
pub(crate) fn out_of_memory(limit: u64) -> String {
    let limit = match limit % (1 << 20) {
        0 => format!("{} MiB", limit >> 20),
        _ => reef_proto::units::format_size(limit),
    };
    format!("out of memory (limit {limit})")
}

/// The variables that limit a process to its GPUs (CUDA and the NVIDIA
/// container runtime). A job without GPUs sees none.
pub(crate) fn gpu_env(gpus: &[u32]) -> [(&'static str, String); 2] {
    let list = if gpus.is_empty() {
        String::new()
    } else {
        gpus.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let nvidia = if gpus.is_empty() {
        "void".to_string()
    } else {
        list.clone()
    };
    [
        ("CUDA_VISIBLE_DEVICES", list),
        ("NVIDIA_VISIBLE_DEVICES", nvidia),
    ]
}

/// A working directory a job asked for: it must exist (it is never
/// created) and lie, symbolic links resolved, under one of the directories
/// the node allows (`--allow-workdir`).
async fn chosen_workdir(
    asked: &str,
    allowed: &[std::path::PathBuf],
) -> Result<std::path::PathBuf, String> {
    let resolved = match tokio::fs::canonicalize(asked).await {
        Ok(path) => path,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("workdir {asked} does not exist on this node"))
        }
        Err(e) => return Err(format!("workdir {asked}: {e}")),
    };
    let mut roots = Vec::with_capacity(allowed.len());
    for root in allowed {
        if let Ok(root) = tokio::fs::canonicalize(root).await {
            roots.push(root);
        }
    }
    if !workdir_allowed(&resolved, &roots) {
        return Err(format!(
            "workdir {asked} is not allowed on this node (its agent allows {})",
            match allowed.is_empty() {
                true => "no directory of a job's choosing: see --allow-workdir".to_string(),
                false => allowed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        ));
    }
    match tokio::fs::metadata(&resolved).await {
        Ok(meta) if meta.is_dir() => Ok(resolved),
        _ => Err(format!("workdir {asked} is not a directory")),
    }
}

/// Whether `dir` (resolved) is one of `roots` (resolved) or inside one.
pub(crate) fn workdir_allowed(dir: &std::path::Path, roots: &[std::path::PathBuf]) -> bool {
    roots.iter().any(|root| dir.starts_with(root))
}

#[cfg(test)]
mod workdir_tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn only_directories_under_an_allowed_root_are_allowed() {
        let roots = vec![PathBuf::from("/srv/jobs"), PathBuf::from("/data")];
        assert!(workdir_allowed(Path::new("/srv/jobs"), &roots));
        assert!(workdir_allowed(Path::new("/srv/jobs/a/b"), &roots));
        assert!(workdir_allowed(Path::new("/data/x"), &roots));
        assert!(!workdir_allowed(Path::new("/srv/jobs-other"), &roots));
        assert!(!workdir_allowed(Path::new("/srv"), &roots));
        assert!(!workdir_allowed(Path::new("/etc"), &roots));
        assert!(!workdir_allowed(Path::new("/srv/jobs"), &[]));
    }

    #[tokio::test]
    async fn a_missing_or_escaping_workdir_is_refused_and_nothing_is_created() {
        let base = tempfile::tempdir().expect("tempdir");
        let allowed = base.path().join("allowed");
        std::fs::create_dir(&allowed).expect("mkdir");
        let roots = vec![allowed.clone()];
        let missing = allowed.join("missing");
        let said = chosen_workdir(missing.to_str().expect("utf-8"), &roots)
            .await
            .expect_err("missing");
        assert!(said.contains("does not exist"), "{said}");
        assert!(!missing.exists(), "created");
        // A link inside the allowed root that points outside it.
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        let link = allowed.join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let said = chosen_workdir(link.to_str().expect("utf-8"), &roots)
            .await
            .expect_err("escapes");
        assert!(said.contains("not allowed"), "{said}");
        let inside = allowed.join("inside");
        std::fs::create_dir(&inside).expect("mkdir");
        let chosen = chosen_workdir(inside.to_str().expect("utf-8"), &roots)
            .await
            .expect("allowed");
        assert_eq!(chosen, inside.canonicalize().expect("canonical"));
        let said = chosen_workdir("/etc", &[])
            .await
            .expect_err("nothing allowed");
        assert!(said.contains("--allow-workdir"), "{said}");
    }
}
