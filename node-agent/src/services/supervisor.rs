//! One service's life on its node, for any [`Kind`]: its directory given to
//! its own uid, set up once, configured, started in the sandbox, waited for
//! until it accepts connections, provisioned with the app's login and
//! databases, health-checked, restarted after a crash with the same budget
//! as an app instance (`service/restart.rs`), reconfigured when its record
//! changes, and stopped with the kind's clean shutdown signal (then the
//! sandbox's SIGTERM and SIGKILL) when the app is destroyed or the agent
//! stops. Nothing of it outlives the supervisor.

use super::kind::Kind;
use super::Dirs;
use crate::service::restart::{OnCrash, RestartBudget};
use crate::Agent;
use reef_proto::manifest::RestartPolicy;
use reef_proto::services::{ServiceKind, ServiceRecord};
use reef_proto::subjects;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a started service may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a running service is checked, and how many failed checks in a
/// row count as a crash.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECKS_FAILED: u32 = 3;
/// How long its clean shutdown may take before the sandbox ends it.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// The restart budget: an app instance's default.
fn policy() -> RestartPolicy {
    RestartPolicy {
        attempts: 10,
        interval_ms: 300_000,
        delay_ms: 500,
        max_delay_ms: 30_000,
    }
}

/// How one run of the service ended.
enum Ended {
    /// Asked to stop (destroyed, or the agent stops).
    Stopped,
    /// It exited, failed its checks, or could not start.
    Failed { code: i32, reason: String },
}

/// Runs the service `updates` describes until `stop` (or the agent's
/// shutdown); `finished` is set once its process is gone.
pub(super) async fn supervise(
    agent: Arc<Agent>,
    updates: watch::Receiver<ServiceRecord>,
    stop: CancellationToken,
    finished: watch::Sender<bool>,
) {
    let kind = updates.borrow().kind;
    match kind {
        ServiceKind::Postgres => {
            supervise_kind(&super::postgres::Postgres, &agent, updates, &stop).await
        }
        // The cluster's own NATS: nothing runs on a node for it.
        ServiceKind::Nats => tracing::warn!("a record for a service no node runs; ignored"),
    }
    finished.send_replace(true);
}

async fn supervise_kind<K: Kind>(
    kind: &K,
    agent: &Arc<Agent>,
    mut updates: watch::Receiver<ServiceRecord>,
    stop: &CancellationToken,
) {
    let mut budget = RestartBudget::new(&policy());
    let record = updates.borrow().clone();
    loop {
        match run_once(kind, agent, &mut updates, stop).await {
            Ended::Stopped => {
                agent.managed.note(&record, None);
                return;
            }
            Ended::Failed { code, reason } => {
                tracing::warn!(%reason, "service failed");
                let wait = match budget.on_crash(Instant::now(), code) {
                    OnCrash::Restart(delay) => {
                        agent
                            .managed
                            .note(&record, Some(format!("restarting: {reason}")));
                        Some(delay)
                    }
                    OnCrash::GiveUp(why) => {
                        tracing::error!(reason = %why, "service given up until its app is deployed again");
                        agent.managed.note(
                            &record,
                            Some(format!("failed: {reason} (given up until the next deploy)")),
                        );
                        None
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => {
                        agent.managed.note(&record, None);
                        return;
                    }
                    _ = agent.shutdown.cancelled() => {
                        agent.managed.note(&record, None);
                        return;
                    }
                    _ = async {
                        match wait {
                            Some(delay) => tokio::time::sleep(delay).await,
                            // Given up: a new record (a deploy) tries again.
                            None => {
                                let _ = updates.changed().await;
                            }
                        }
                    } => {}
                }
                if wait.is_none() {
                    budget = RestartBudget::new(&policy());
                }
            }
        }
    }
}

fn give(paths: &[std::path::PathBuf], uid: u32) -> std::io::Result<()> {
    for path in paths {
        std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    }
    Ok(())
}

/// The directory, owned by the service's uid, and the `/etc/passwd` its
/// sandbox sees (initdb must find its user there).
fn prepare_dirs(dirs: &Dirs, uid: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(&dirs.root)?;
    std::fs::set_permissions(&dirs.root, std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::lchown(&dirs.root, Some(uid), Some(uid))?;
    std::fs::write(
        &dirs.passwd,
        format!("root:x:0:0:root:/root:/usr/sbin/nologin\nreef-service:x:{uid}:{uid}:reef service:/nonexistent:/usr/sbin/nologin\n"),
    )?;
    std::fs::set_permissions(&dirs.passwd, std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// A service's environment: nothing of the agent's. `REEF_DATA_DIR` marks
/// its processes as the node's work, as an instance's are.
fn env(dirs: &Dirs) -> [(&'static str, String); 3] {
    [
        ("PATH", "/usr/bin:/bin".into()),
        ("LANG", "C.UTF-8".into()),
        ("REEF_DATA_DIR", dirs.root.display().to_string()),
    ]
}

fn failed(reason: impl Into<String>) -> Ended {
    Ended::Failed {
        code: -1,
        reason: reason.into(),
    }
}

async fn run_once<K: Kind>(
    kind: &K,
    agent: &Arc<Agent>,
    updates: &mut watch::Receiver<ServiceRecord>,
    stop: &CancellationToken,
) -> Ended {
    let mut record = updates.borrow_and_update().clone();
    agent.managed.note(&record, Some("starting".into()));
    let dirs = Dirs::of(&agent.config.data_dir, &record.app, record.kind);
    let identity = format!("{}.{}", record.kind.name(), record.app);
    let uid = match agent.sandbox.app_uid(&identity) {
        Ok(uid) => uid,
        Err(e) => return failed(format!("no uid for the service: {e}")),
    };
    if let Err(e) = prepare_dirs(&dirs, uid) {
        return failed(format!("preparing {}: {e}", dirs.root.display()));
    }
    let launch = |argv: Vec<std::ffi::OsString>, group: &str| crate::sandbox::Launch {
        group: group.to_string(),
        identity: crate::sandbox::Identity::App(&identity),
        limits: crate::sandbox::Limits {
            // Bounded by the machine: it shares it with the node's apps.
            memory_bytes: agent.resources.memory_bytes.max(256 << 20),
            cpu_max_millis: None,
            cpu_weight_millis: 1000,
            pids_max: agent.sandbox.settings().pids_max,
        },
        argv,
        workdir: dirs.root.clone(),
        writable: vec![dirs.root.clone()],
        owned: vec![dirs.root.clone()],
        readonly: Vec::new(),
        network: true,
        gpus: &[],
        files: vec![(dirs.passwd.clone(), "/etc/passwd".into())],
        stdin: false,
    };
    let group = format!("service-{identity}");
    if !kind.initialized(&dirs) {
        tracing::info!(dir = %dirs.root.display(), "setting up the service's data");
        let (mut child, mut tree) = match agent
            .sandbox
            .spawn(
                launch(kind.init(&dirs, &record), &format!("{group}-init")),
                env(&dirs),
            )
            .await
        {
            Ok(started) => started,
            Err(e) => return failed(format!("cannot set up the service: {e}")),
        };
        let output = tokio::spawn(log_output(&mut child, &dirs.log));
        let status = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.cancelled() => None,
            _ = agent.shutdown.cancelled() => None,
        };
        let Some(status) = status else {
            tree.stop(&mut child, STOP_GRACE).await;
            agent.sandbox.end(&mut tree).await;
            let _ = output.await;
            return Ended::Stopped;
        };
        agent.sandbox.end(&mut tree).await;
        let _ = output.await;
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                return failed(format!(
                    "setting up the data failed ({s}); see {}",
                    dirs.log.display()
                ))
            }
            Err(e) => return failed(format!("setting up the data: {e}")),
        }
    }
    let configure = |record: &ServiceRecord| -> Result<(), String> {
        let written = kind
            .configure(&dirs, record)
            .map_err(|e| format!("configuring: {e}"))?;
        give(&written, uid).map_err(|e| format!("configuring: {e}"))
    };
    if let Err(e) = configure(&record) {
        return failed(e);
    }
    let (mut child, mut tree) = match agent
        .sandbox
        .spawn(launch(kind.argv(&dirs, &record), &group), env(&dirs))
        .await
    {
        Ok(started) => started,
        Err(e) => return failed(format!("cannot start: {e}")),
    };
    let output = tokio::spawn(log_output(&mut child, &dirs.log));
    let ended = serve(
        kind,
        agent,
        &dirs,
        &mut record,
        updates,
        stop,
        &mut child,
        &tree,
        &configure,
    )
    .await;
    let ended = match ended {
        Some(ended) => {
            tree.stop(&mut child, STOP_GRACE).await;
            ended
        }
        None => {
            // Asked to stop: the kind's clean shutdown first.
            tree.signal_work(kind.stop_signal());
            let clean = tokio::time::timeout(STOP_GRACE, child.wait()).await;
            if clean.is_err() {
                tracing::warn!("the service did not stop within its grace; ending it");
            }
            tree.stop(&mut child, Duration::from_secs(2)).await;
            tracing::info!("service stopped");
            Ended::Stopped
        }
    };
    agent.sandbox.end(&mut tree).await;
    let _ = output.await;
    ended
}

/// Waits for the service to serve, provisions it, then watches it. None:
/// asked to stop (the process still runs); Some: it failed.
#[allow(clippy::too_many_arguments)]
async fn serve<K: Kind>(
    kind: &K,
    agent: &Arc<Agent>,
    dirs: &Dirs,
    record: &mut ServiceRecord,
    updates: &mut watch::Receiver<ServiceRecord>,
    stop: &CancellationToken,
    child: &mut tokio::process::Child,
    tree: &crate::sandbox::Tree,
    configure: &impl Fn(&ServiceRecord) -> Result<(), String>,
) -> Option<Ended> {
    let exited = |status: std::io::Result<std::process::ExitStatus>| {
        let code = status.map_or(-1, crate::process::exit_code);
        Some(Ended::Failed {
            code,
            reason: format!("exited with code {code}"),
        })
    };
    // Up.
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if kind.ready(dirs, record).await {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Some(failed("did not accept connections in time"));
        }
        tokio::select! {
            status = child.wait() => return exited(status),
            _ = stop.cancelled() => return None,
            _ = agent.shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    if let Err(e) = provision(kind, agent, dirs, record).await {
        return Some(failed(e));
    }
    tracing::info!(port = record.port, "service running");
    agent.managed.note(record, Some("running".into()));
    let mut failures = 0;
    loop {
        tokio::select! {
            status = child.wait() => return exited(status),
            _ = stop.cancelled() => return None,
            _ = agent.shutdown.cancelled() => return None,
            changed = updates.changed() => {
                if changed.is_err() {
                    return None;
                }
                let fresh = updates.borrow_and_update().clone();
                if fresh.port != record.port || fresh.version != record.version {
                    return Some(failed("its port or version changed; starting again"));
                }
                *record = fresh;
                if let Err(e) = configure(record) {
                    return Some(failed(e));
                }
                tree.signal_work(kind.reload_signal());
                if let Err(e) = provision(kind, agent, dirs, record).await {
                    tracing::warn!(error = %e, "provisioning after a change failed");
                }
            }
            _ = tokio::time::sleep(CHECK_EVERY) => {
                if kind.ready(dirs, record).await {
                    failures = 0;
                } else {
                    failures += 1;
                    if failures >= CHECKS_FAILED {
                        return Some(failed(format!("{CHECKS_FAILED} health checks failed in a row")));
                    }
                }
            }
        }
    }
}

/// Opens the password sealed to this node and provisions with it.
async fn provision<K: Kind>(
    kind: &K,
    agent: &Agent,
    dirs: &Dirs,
    record: &ServiceRecord,
) -> Result<(), String> {
    let context = subjects::secret_context(&record.app, record.kind.password_secret());
    let password = agent
        .node_key
        .open(&context, &record.sealed_password)
        .map_err(|e| format!("cannot open the service's password: {e}"))?;
    let password = std::str::from_utf8(&password)
        .map_err(|_| "the service's password is not UTF-8".to_string())?;
    if password.is_empty() {
        return Err("the service's password is empty".into());
    }
    kind.provision(dirs, record, password).await
}

/// Copies the process's output to its log file, until both pipes close.
fn log_output(
    child: &mut tokio::process::Child,
    path: &std::path::Path,
) -> impl std::future::Future<Output = ()> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let path = path.to_path_buf();
    async move {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await;
        let Ok(file) = file else {
            return;
        };
        let Ok(other) = file.try_clone().await else {
            return;
        };
        let copy = |pipe: Option<tokio::process::ChildStdout>, mut out: tokio::fs::File| async move {
            if let Some(mut pipe) = pipe {
                let _ = tokio::io::copy(&mut pipe, &mut out).await;
            }
        };
        let copy_err = |pipe: Option<tokio::process::ChildStderr>, mut out: tokio::fs::File| async move {
            if let Some(mut pipe) = pipe {
                let _ = tokio::io::copy(&mut pipe, &mut out).await;
            }
        };
        tokio::join!(copy(stdout, file), copy_err(stderr, other));
    }
}
