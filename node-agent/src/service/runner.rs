//! One app instance's life on this node.
//!
//! prepare (artifact, `pre_start`) → start the process with `PORT` → health
//! checks, fast at first → healthy: routed by the node proxy; if it replaces
//! another instance, that one is only then asked to stop (blue-green) →
//! watched: a crash takes it out of the routes and restarts it with
//! exponential backoff while the restart budget lasts; a stop drains it
//! (routes first, then in-flight requests up to the drain deadline), then
//! SIGTERM, then SIGKILL after the grace period.
//!
//! A release that crashes or fails its checks before it was ever healthy
//! fails at once: it never received traffic, and the instance it was to
//! replace keeps serving.

use super::beam;
use super::environment;
use super::error::StartError;
use super::ports;
use super::restart::{OnCrash, RestartBudget};
use super::{health, prepare, Control, LocalInstance, Yield};
use crate::process::{exit_code, start_time};
use crate::records::Durability;
use crate::Agent;
use reef_proto::app::InstanceState;
use reef_proto::manifest::{AppSpec, Strategy};
use reef_proto::subjects;
use reef_proto::units::format_duration;
use reef_proto::InstanceId;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Consecutive failed checks that take a healthy instance out of the routes.
const UNHEALTHY_AFTER: u32 = 3;
/// Between checks of an instance that is already healthy.
const STEADY_CHECK: Duration = Duration::from_secs(2);

pub(crate) async fn run(
    agent: Arc<Agent>,
    id: InstanceId,
    stop: CancellationToken,
    control: mpsc::Receiver<Control>,
) {
    let end = match agent.instances.get(id) {
        Some(record) => {
            let scratch = beam::needs_scratch(&record.assignment.release.spec.run)
                .then(|| scratch_dir(&agent, &record.assignment.release.app, id));
            let end = Runner {
                agent: agent.clone(),
                id,
                stop,
                control,
                record,
                scratch: scratch.clone(),
                epmd_port: None,
            }
            .supervise()
            .await;
            if let Some(scratch) = scratch {
                // Its processes are gone; nothing of the instance stays behind.
                if let Err(e) = tokio::fs::remove_dir_all(&scratch).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(instance = %id, path = %scratch.display(), error = %e, "could not remove an instance's scratch directory");
                    }
                }
            }
            end
        }
        None => InstanceState::Failed {
            reason: "instance record vanished".into(),
        },
    };
    if let Some(record) = agent.instances.get(id) {
        agent.route_remove(&record.assignment.release.app, id);
    }
    let message = match &end {
        InstanceState::Failed { reason } | InstanceState::Lost { reason } => Some(reason.clone()),
        _ => None,
    };
    match agent
        .instances
        .update(id, Durability::Written, |r| r.set_state(end, message))
        .await
    {
        Ok(Some(record)) => agent.report(&agent.instances, &record).await,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(instance = %id, error = %e, "could not record the end of an instance")
        }
    }
    agent.services.forget(id);
    if let Some(record) = agent.instances.get(id) {
        agent.forget_app_if_idle(&record.assignment.release.app);
    }
}

struct Runner {
    agent: Arc<Agent>,
    id: InstanceId,
    stop: CancellationToken,
    control: mpsc::Receiver<Control>,
    record: LocalInstance,
    /// A release's writable directory of its own (see `beam`).
    scratch: Option<std::path::PathBuf>,
    /// The port of a release's own epmd, held for the instance's life.
    epmd_port: Option<u16>,
}

/// The data directory of `app` on this node, shared by its instances.
pub(crate) fn data_dir(agent: &Agent, app: &str) -> std::path::PathBuf {
    agent.config.data_dir.join("apps").join(app).join("data")
}

/// Where instance `id` of `app` keeps what only it writes.
pub(crate) fn scratch_dir(agent: &Agent, app: &str, id: InstanceId) -> std::path::PathBuf {
    agent
        .config
        .data_dir
        .join("apps")
        .join(app)
        .join("instances")
        .join(id.to_string())
}

/// Why the watch over a running process ended.
enum Watch {
    Exited(std::process::ExitStatus),
    Stop,
    Shutdown,
    /// Step aside for a sequential replacement.
    Yield(Yield),
}

/// The instance a sequential deploy replaces, stopped and waiting. Dropping
/// this without [`Standby::retire`] brings it back: every way a replacement
/// can fail before it is healthy restores the old release.
struct Standby(Option<oneshot::Sender<bool>>);

impl Standby {
    fn retire(&mut self) {
        if let Some(resume) = self.0.take() {
            let _ = resume.send(false);
        }
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if let Some(resume) = self.0.take() {
            let _ = resume.send(true);
        }
    }
}

impl Runner {
    fn spec(&self) -> &AppSpec {
        &self.record.assignment.release.spec
    }

    /// The instance's environment on `port`, with a release's own variables.
    fn render_env(
        &self,
        data_dir: &Path,
        port: u16,
    ) -> Result<BTreeMap<String, String>, StartError> {
        let extra = match &self.scratch {
            Some(scratch) => beam::env(&self.spec().run, self.id, scratch, self.epmd_port),
            None => Vec::new(),
        };
        environment::render(&self.agent, &self.record, data_dir, port, extra)
    }

    /// Records the instance's port (reported with its next event).
    async fn note_port(&mut self, port: u16) {
        if let Ok(Some(record)) = self
            .agent
            .instances
            .update(self.id, Durability::Written, |r| r.port = Some(port))
            .await
        {
            self.record = record;
        }
    }

    async fn set(&mut self, state: InstanceState, message: Option<String>) {
        match self
            .agent
            .instances
            .update(self.id, Durability::Written, |r| {
                r.set_state(state, message)
            })
            .await
        {
            Ok(Some(record)) => {
                self.agent.report(&self.agent.instances, &record).await;
                self.record = record;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(instance = %self.id, error = %e, "could not record an instance change")
            }
        }
    }

    async fn supervise(self) -> InstanceState {
        match self.try_supervise().await {
            Ok(end) => end,
            Err(e) => InstanceState::Failed {
                reason: reef_proto::Report(&e).to_string(),
            },
        }
    }

    async fn try_supervise(mut self) -> Result<InstanceState, StartError> {
        self.set(InstanceState::Preparing, None).await;
        let release = self.record.assignment.release.clone();
        let spec = release.spec.clone();
        let dir = prepare::release_dir(&self.agent, &release).await?;
        let data_dir = data_dir(&self.agent, &spec.name);
        tokio::fs::create_dir_all(&data_dir)
            .await
            .map_err(|source| StartError::DataDir {
                path: data_dir.clone(),
                source,
            })?;
        // Held for the instance's whole life: no other instance here gets it.
        let mut lease = self
            .agent
            .services
            .ports
            .take()
            .map_err(StartError::NoPort)?;
        let mut port = lease.port();
        self.note_port(port).await;
        let _epmd_lease = if beam::needs_epmd(&spec.run) {
            let lease = self
                .agent
                .services
                .ports
                .take()
                .map_err(StartError::NoPort)?;
            self.epmd_port = Some(lease.port());
            Some(lease)
        } else {
            None
        };
        if let Some(scratch) = &self.scratch {
            for dir in beam::scratch_dirs(scratch) {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|source| StartError::DataDir { path: dir, source })?;
            }
        }
        let mut env = self.render_env(&data_dir, port)?;
        let mut moved = 0;
        // Its services first (a new Postgres takes a few seconds to set up).
        tokio::select! {
            _ = crate::services::reachable(&self.agent, &spec.name, &self.record.assignment.services) => {}
            _ = self.stop.cancelled() => return Ok(InstanceState::Stopped),
            _ = self.agent.shutdown.cancelled() => return Ok(shut_down()),
        }
        if let Some(command) = &spec.pre_start {
            prepare::hook(
                &self.agent,
                "pre_start",
                command,
                &prepare::Place {
                    release: &dir,
                    data: &data_dir,
                    scratch: self.scratch.as_deref(),
                    env: &env,
                },
                &spec.name,
                self.id,
            )
            .await?;
        }

        // Sequential: the old instance stops only now, after preparation and
        // `pre_start` succeeded, and comes back if this one fails.
        let mut standby = Standby(None);
        if spec.strategy == Strategy::Sequential {
            if let Some(old) = self.record.assignment.replaces {
                standby = Standby(self.agent.yield_instance(old).await);
            }
        }
        let mut ever_healthy = false;
        let mut budget = RestartBudget::new(&spec.restart);
        loop {
            let (mut child, shippers, mut tree) = self.spawn(&dir, &data_dir, &env).await?;
            // Dropped (aborted) only when the process is gone, whichever way
            // this iteration ends.
            let _shippers = ShippersGuard(Some(shippers), self.agent.tasks.clone());
            let Some(pid) = child.id() else {
                self.agent.sandbox.end(&mut tree).await;
                return Err(StartError::Untracked);
            };
            let started = start_time(pid);
            let _ = self
                .agent
                .instances
                .update(self.id, Durability::Written, |r| {
                    r.pgid = Some(pid);
                    r.pgid_start_time = started;
                })
                .await;
            self.set(InstanceState::Starting, None).await;

            let watch = match self.until_healthy(&mut child, port).await {
                Ok(()) => {
                    // Routed before it is reported healthy, so whoever sees
                    // `healthy` can already reach it.
                    let replaces = if ever_healthy {
                        None
                    } else {
                        self.record.assignment.replaces
                    };
                    self.agent.route_add(
                        &spec.name,
                        &spec.domains,
                        spec.https_redirect,
                        self.id,
                        port,
                        replaces,
                    );
                    self.set(InstanceState::Healthy, None).await;
                    if !ever_healthy {
                        ever_healthy = true;
                        standby.retire();
                        if let Some(old) = self.record.assignment.replaces {
                            // Traffic is on this instance now; the old one may drain.
                            self.agent.stop_instance(old);
                        }
                    }
                    self.while_healthy(&mut child, port, &dir, &data_dir, &env)
                        .await
                }
                Err(Err(e)) => {
                    tree.stop(&mut child, Duration::ZERO).await;
                    self.agent.sandbox.end(&mut tree).await;
                    return Err(e);
                }
                Err(Ok(watch)) => watch,
            };
            match watch {
                Watch::Yield(request) => {
                    self.drain_and_stop(&mut child, &tree).await;
                    self.agent.sandbox.end(&mut tree).await;
                    let _ = request.stopped.send(());
                    tokio::select! {
                        resume = request.resume => {
                            if resume != Ok(true) {
                                return Ok(InstanceState::Stopped);
                            }
                            tracing::info!(instance = %self.id, "its replacement failed; starting again");
                            self.set(InstanceState::Starting, Some("back: its replacement failed".into())).await;
                        }
                        _ = self.stop.cancelled() => return Ok(InstanceState::Stopped),
                        _ = self.agent.shutdown.cancelled() => return Ok(shut_down()),
                    }
                }
                Watch::Stop => {
                    self.drain_and_stop(&mut child, &tree).await;
                    self.agent.sandbox.end(&mut tree).await;
                    return Ok(InstanceState::Stopped);
                }
                Watch::Shutdown => {
                    self.agent.route_remove(&spec.name, self.id);
                    tree.stop(&mut child, self.agent.config.stop_grace).await;
                    self.agent.sandbox.end(&mut tree).await;
                    return Ok(shut_down());
                }
                Watch::Exited(status) => {
                    self.agent.route_remove(&spec.name, self.id);
                    let usage = self.agent.sandbox.end(&mut tree).await;
                    let code = exit_code(status);
                    // Said with the code: the kernel ended it at its memory limit.
                    let why = match usage {
                        Some(usage) if code != 0 && usage.oom_kills > 0 => format!(
                            " ({})",
                            crate::executor::out_of_memory(spec.resources.memory_bytes)
                        ),
                        _ => String::new(),
                    };
                    if ports::retry_on_taken_port(ports::taken(port), moved) {
                        // Another process took the port between its check
                        // and the app's bind: a fresh one, not a crash.
                        moved += 1;
                        let fresh = self
                            .agent
                            .services
                            .ports
                            .take()
                            .map_err(StartError::NoPort)?;
                        let message = format!(
                            "port {port} was taken by another process; starting again on port {}",
                            fresh.port()
                        );
                        tracing::warn!(instance = %self.id, app = %spec.name, %message);
                        lease = fresh;
                        port = lease.port();
                        self.note_port(port).await;
                        env = self.render_env(&data_dir, port)?;
                        self.set(InstanceState::Starting, Some(message)).await;
                        continue;
                    }
                    if !ever_healthy {
                        return Ok(InstanceState::Failed {
                            reason: format!(
                                "exited with code {code}{why} before it became healthy"
                            ),
                        });
                    }
                    let delay = match budget.on_crash(Instant::now(), code) {
                        OnCrash::Restart(delay) => delay,
                        OnCrash::GiveUp(reason) => return Ok(InstanceState::Failed { reason }),
                    };
                    let _ = self
                        .agent
                        .instances
                        .update(self.id, Durability::Written, |r| r.restarts += 1)
                        .await;
                    let message = format!(
                        "exited with code {code}{why}; restarting in {}",
                        format_duration(delay)
                    );
                    tracing::warn!(instance = %self.id, app = %spec.name, %message);
                    self.set(InstanceState::Starting, Some(message)).await;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.cancelled() => return Ok(InstanceState::Stopped),
                        _ = self.agent.shutdown.cancelled() => return Ok(shut_down()),
                    }
                }
            }
        }
    }

    /// Starts the app's process in its sandbox; its output is shipped by
    /// the returned tasks.
    async fn spawn(
        &self,
        dir: &Path,
        data_dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<(Child, Shippers, crate::sandbox::Tree), StartError> {
        let argv = self.spec().run.argv();
        let program = if argv[0].contains('/') || dir.join(&argv[0]).is_file() {
            dir.join(&argv[0])
        } else {
            argv[0].clone().into()
        };
        let spec = self.spec();
        let writable: Vec<_> = std::iter::once(data_dir.to_path_buf())
            .chain(self.scratch.clone())
            .collect();
        let mut full = vec![program.clone().into_os_string()];
        full.extend(argv[1..].iter().map(Into::into));
        let launch = crate::sandbox::Launch {
            group: self.id.to_string(),
            identity: crate::sandbox::Identity::App(&spec.name),
            limits: crate::sandbox::Limits {
                memory_bytes: spec.resources.memory_bytes,
                // An app is never throttled below its reservation's share; it
                // gets its weight under contention.
                cpu_max_millis: None,
                cpu_weight_millis: spec.resources.cpu_millis,
                pids_max: self.agent.sandbox.settings().pids_max,
            },
            argv: full,
            workdir: dir.to_path_buf(),
            writable: writable.clone(),
            owned: writable,
            readonly: vec![dir.to_path_buf()],
            // The proxy reaches instances on the host's loopback.
            network: true,
            gpus: &self.record.assignment.gpus,
            files: Vec::new(),
            stdin: false,
        };
        let (mut child, tree) = self.agent.sandbox.spawn(launch, env).await?;
        let app = &self.spec().name;
        let shippers = crate::logs::ship_output(
            &self.agent.js,
            &mut child,
            subjects::instance_logs(self.agent.node, app, self.id),
        );
        Ok((child, shippers, tree))
    }

    /// Checks until healthy. Err(Ok(watch)) when something else happened
    /// first; Err(Err(reason)) when the checks gave up.
    async fn until_healthy(
        &mut self,
        child: &mut Child,
        port: u16,
    ) -> Result<(), Result<Watch, StartError>> {
        let health = self.spec().health.clone();
        let interval = Duration::from_millis(health.interval_ms);
        let timeout = Duration::from_millis(health.timeout_ms);
        let mut failures = 0u32;
        loop {
            tokio::select! {
                status = child.wait() => return Err(status.map(Watch::Exited).map_err(StartError::Wait)),
                _ = self.stop.cancelled() => return Err(Ok(Watch::Stop)),
                _ = self.agent.shutdown.cancelled() => return Err(Ok(Watch::Shutdown)),
                Some(Control::Yield(request)) = self.control.recv() => return Err(Ok(Watch::Yield(request))),
                result = health::check(&health.check, port, timeout) => match result {
                    Ok(()) => return Ok(()),
                    Err(last) => {
                        failures += 1;
                        if failures >= health.attempts {
                            return Err(Err(StartError::Unhealthy { failures, last }));
                        }
                    }
                },
            }
            tokio::select! {
                status = child.wait() => return Err(status.map(Watch::Exited).map_err(StartError::Wait)),
                _ = self.stop.cancelled() => return Err(Ok(Watch::Stop)),
                _ = self.agent.shutdown.cancelled() => return Err(Ok(Watch::Shutdown)),
                Some(Control::Yield(request)) = self.control.recv() => return Err(Ok(Watch::Yield(request))),
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Watches a healthy instance until it exits, is stopped, or the agent
    /// shuts down; failing checks move it in and out of the routes.
    async fn while_healthy(
        &mut self,
        child: &mut Child,
        port: u16,
        dir: &Path,
        data_dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Watch {
        let health = self.spec().health.clone();
        let app = self.spec().name.clone();
        let domains = self.spec().domains.clone();
        let https_redirect = self.spec().https_redirect;
        let timeout = Duration::from_millis(health.timeout_ms);
        let mut failures = 0u32;
        loop {
            tokio::select! {
                status = child.wait() => match status {
                    Ok(status) => return Watch::Exited(status),
                    Err(e) => {
                        tracing::error!(instance = %self.id, error = %e, "waiting for the process failed");
                        return Watch::Stop;
                    }
                },
                _ = self.stop.cancelled() => return Watch::Stop,
                _ = self.agent.shutdown.cancelled() => return Watch::Shutdown,
                Some(control) = self.control.recv() => match control {
                    Control::Yield(request) => return Watch::Yield(request),
                    Control::PostDeploy => self.post_deploy(dir, data_dir, env).await,
                    Control::PreBackup { command, done } => {
                        let app = self.spec().name.clone();
                        let place = prepare::Place { release: dir, data: data_dir, scratch: self.scratch.as_deref(), env };
                        let outcome = prepare::hook(&self.agent, "pre_backup", &command, &place, &app, self.id)
                            .await
                            .map_err(|e| reef_proto::Report(&e).to_string());
                        let _ = done.send(outcome);
                    }
                },
                _ = tokio::time::sleep(STEADY_CHECK) => {
                    match health::check(&health.check, port, timeout).await {
                        Ok(()) if failures >= UNHEALTHY_AFTER => {
                            failures = 0;
                            self.agent.route_add(&app, &domains, https_redirect, self.id, port, None);
                            self.set(InstanceState::Healthy, Some("healthy again".into())).await;
                        }
                        Ok(()) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            if failures == UNHEALTHY_AFTER {
                                self.agent.route_remove(&app, self.id);
                                let why = reef_proto::Report(&e).to_string();
                                self.set(InstanceState::Unhealthy, Some(why)).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs `post_deploy` in the release directory; its outcome becomes the
    /// instance's message.
    async fn post_deploy(&mut self, dir: &Path, data_dir: &Path, env: &BTreeMap<String, String>) {
        let Some(command) = self.spec().post_deploy.clone() else {
            return;
        };
        let app = self.spec().name.clone();
        let message = match prepare::hook(
            &self.agent,
            "post_deploy",
            &command,
            &prepare::Place {
                release: dir,
                data: data_dir,
                scratch: self.scratch.as_deref(),
                env,
            },
            &app,
            self.id,
        )
        .await
        {
            Ok(()) => "post_deploy succeeded".to_string(),
            Err(e) => reef_proto::Report(&e).to_string(),
        };
        tracing::info!(instance = %self.id, %app, %message);
        self.set(InstanceState::Healthy, Some(message)).await;
    }

    /// Out of the routes, in-flight requests finished (up to the drain
    /// deadline), then SIGTERM and SIGKILL after the grace period.
    ///
    /// The last local instance of an app first reads the cluster's routes
    /// afresh: the coordinator wrote where the app runs now before it asked
    /// for this stop, so the proxy forwards there from the moment this
    /// instance is out, even if the routes watcher has not caught up yet.
    async fn drain_and_stop(&mut self, child: &mut Child, tree: &crate::sandbox::Tree) {
        let app = self.spec().name.clone();
        let drain = Duration::from_millis(self.spec().drain_ms);
        if self.agent.services.routing.is_last_local(&app, self.id) {
            self.agent.refresh_cluster_routes(&app).await;
        }
        self.agent.route_remove(&app, self.id);
        self.set(InstanceState::Draining, None).await;
        if !self.agent.router.drain(&self.id.to_string(), drain).await {
            tracing::warn!(instance = %self.id, %app, "drain deadline passed with requests still in flight");
        }
        tree.stop(child, self.agent.config.stop_grace).await;
    }
}

use crate::logs::Shippers;

/// Holds a process's log shippers; on drop (the process has ended and its
/// group was killed, so the pipes are closing) they get a moment to finish,
/// on a task of the agent's tracker, rather than being cut off.
struct ShippersGuard(Option<Shippers>, tokio_util::task::TaskTracker);

impl Drop for ShippersGuard {
    fn drop(&mut self) {
        if let Some(shippers) = self.0.take() {
            self.1
                .spawn(crate::logs::finish(shippers, Duration::from_secs(10)));
        }
    }
}

/// How an instance ends when its agent shuts down.
fn shut_down() -> InstanceState {
    InstanceState::Lost {
        reason: "the node's agent shut down".into(),
    }
}
