//! App instances on this node: their durable records, intake of deploy and
//! stop commands, and the proxy routes that follow instance health.
//!
//! - `environment`: an instance's process environment.
//! - `beam`: what an Erlang/Elixir release needs of its instance (pure).
//! - `beside`: the release, directories and environment a job of an app's
//!   `[[cron]]` runs with, from one of its healthy instances.
//! - `error`: what each step of starting an instance can fail with.
//! - `prepare`: artifact download (ended when it stalls), verification,
//!   unpacking, `pre_start`; `locks`: one preparation per artifact and per
//!   app at a time, different ones at once.
//! - `ports`: ports for instances, never one another live instance holds,
//!   and a fresh one when another process took it.
//! - `health`: HTTP and TCP checks.
//! - `runner`: one instance's life: start, health, traffic, crash restarts,
//!   drain and stop.
//! - `restart`: the restart budget and backoff, a pure state machine.
//! - `routing`: what the proxy routes per app, from local instances and the
//!   cluster's routes.

mod beam;
#[cfg(test)]
mod beam_tests;
mod beside;
mod environment;
pub(crate) mod error;
mod health;
mod locks;
mod ports;
mod prepare;
pub(crate) mod restart;
mod routing;
mod runner;

use crate::records::Record;
use crate::Agent;
use bytes::Bytes;
use reef_proto::app::{InstanceAssignment, InstanceEvent, InstanceState};
use reef_proto::{encode, EncodeError, InstanceId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What the agent knows of one app instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalInstance {
    pub assignment: InstanceAssignment,
    pub state: InstanceState,
    pub seq: u32,
    pub reported_seq: u32,
    pub port: Option<u16>,
    pub pgid: Option<u32>,
    pub pgid_start_time: Option<u64>,
    pub restarts: u32,
    pub message: Option<String>,
    pub updated_at_ms: u64,
}

impl LocalInstance {
    /// Moves to `state` (never out of a terminal state), with an optional
    /// message for people; bumps the sequence number.
    pub fn set_state(&mut self, state: InstanceState, message: Option<String>) {
        if self.state.is_terminal() {
            return;
        }
        let healthy = state == InstanceState::Healthy;
        self.state = state;
        match message {
            Some(message) => self.message = Some(message),
            // Healthy says all there is: a crash's "restarting in ..." is
            // over; the post_deploy hook's result stays.
            None if healthy && !self.message.as_deref().is_some_and(is_hook_result) => {
                self.message = None;
            }
            None => {}
        }
        self.seq += 1;
    }
}

/// Whether an instance's message is its `post_deploy` hook's result.
fn is_hook_result(message: &str) -> bool {
    message.starts_with("post_deploy")
}

impl Record for LocalInstance {
    type Id = InstanceId;
    fn id(&self) -> InstanceId {
        self.assignment.instance
    }
    fn seq(&self) -> u32 {
        self.seq
    }
    fn reported_seq(&self) -> u32 {
        self.reported_seq
    }
    fn set_reported_seq(&mut self, seq: u32) {
        self.reported_seq = seq;
    }
    fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
    fn updated_at_ms(&self) -> u64 {
        self.updated_at_ms
    }
    fn set_updated_at_ms(&mut self, at: u64) {
        self.updated_at_ms = at;
    }
    fn event_subject(&self) -> String {
        reef_proto::subjects::instance_event(self.assignment.node, self.assignment.instance)
    }
    fn event_payload(&self) -> Result<Bytes, EncodeError> {
        encode(&InstanceEvent {
            instance: self.assignment.instance,
            app: self.assignment.release.app.clone(),
            node: self.assignment.node,
            seq: self.seq,
            state: self.state.clone(),
            port: self.port,
            restarts: self.restarts,
            message: self.message.clone(),
            at_ms: self.updated_at_ms,
        })
    }
}

/// A request to an instance to step aside for a sequential replacement: it
/// drains and stops its process, says so on `stopped`, then waits on
/// `resume` (true: start again, the replacement failed; false: retire).
pub(crate) struct Yield {
    pub stopped: oneshot::Sender<()>,
    pub resume: oneshot::Receiver<bool>,
}

/// What the agent can ask of an active instance runner, besides stopping.
pub(crate) enum Control {
    Yield(Yield),
    /// Run the release's `post_deploy` hook (every replica is healthy).
    PostDeploy,
    /// Run a backup's `pre_backup` command beside the instance, with its
    /// environment; the answer is the hook's outcome.
    PreBackup {
        command: String,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// How the agent talks to an active instance runner.
pub(crate) struct RunnerHandle {
    pub stop: CancellationToken,
    pub control: mpsc::Sender<Control>,
}

/// Per-node state of app instances.
#[derive(Default)]
pub(crate) struct Services {
    /// Instances whose runner is active.
    pub running: std::sync::Mutex<HashMap<InstanceId, RunnerHandle>>,
    /// What the proxy routes, per app.
    pub routing: routing::Routing,
    /// Apps being destroyed: forgotten by the proxy once no instance is left.
    forgotten: std::sync::Mutex<std::collections::HashSet<String>>,
    /// One download per artifact and one unpacking per app at a time;
    /// different ones go at once.
    pub preparing: locks::KeyedLocks,
    /// The ports handed to live instances.
    pub ports: ports::Ports,
}

impl Agent {
    /// Records a deploy command (synced) and starts its runner. Returns false
    /// for a redelivery.
    pub(crate) async fn accept_instance(
        self: &Arc<Self>,
        assignment: InstanceAssignment,
    ) -> std::io::Result<bool> {
        let id = assignment.instance;
        // A new deploy of an app that was being destroyed: keep its routes.
        self.services
            .forgotten
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&assignment.release.app);
        let record = LocalInstance {
            assignment,
            state: InstanceState::Assigned,
            seq: 1,
            reported_seq: 0,
            port: None,
            pgid: None,
            pgid_start_time: None,
            restarts: 0,
            message: None,
            updated_at_ms: reef_proto::now_ms(),
        };
        if !self.instances.accept(record).await? {
            return Ok(false);
        }
        self.start_instance(id);
        Ok(true)
    }

    pub(crate) fn start_instance(self: &Arc<Self>, id: InstanceId) {
        let stop = CancellationToken::new();
        let (control, control_rx) = mpsc::channel(4);
        self.services.lock_running().insert(
            id,
            RunnerHandle {
                stop: stop.clone(),
                control,
            },
        );
        self.tasks
            .spawn(runner::run(self.clone(), id, stop, control_rx));
    }

    /// Asks a local instance to drain and stop; false if it is not running here.
    pub(crate) fn stop_instance(&self, id: InstanceId) -> bool {
        match self.services.lock_running().get(&id) {
            Some(handle) => {
                handle.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Asks a local instance to run its release's `post_deploy` hook.
    pub(crate) async fn post_deploy(&self, id: InstanceId) -> bool {
        let control = self
            .services
            .lock_running()
            .get(&id)
            .map(|h| h.control.clone());
        match control {
            Some(control) => control.send(Control::PostDeploy).await.is_ok(),
            None => false,
        }
    }

    /// Runs `command` as a `pre_backup` hook beside a healthy local instance
    /// of `app`. None: no healthy instance of it runs here (or it went away).
    pub(crate) async fn pre_backup(&self, app: &str, command: &str) -> Option<Result<(), String>> {
        let control = {
            let running = self.services.lock_running();
            running
                .iter()
                .filter(|(id, _)| {
                    self.instances.get(**id).is_some_and(|r| {
                        r.assignment.release.app == app && r.state == InstanceState::Healthy
                    })
                })
                .map(|(_, handle)| handle.control.clone())
                .next()
        }?;
        let (done, answer) = oneshot::channel();
        control
            .send(Control::PreBackup {
                command: command.to_string(),
                done,
            })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// The instances of `app` whose runner is active here.
    pub(crate) fn local_instances(&self, app: &str) -> Vec<InstanceId> {
        self.services
            .lock_running()
            .keys()
            .filter(|id| {
                self.instances
                    .get(**id)
                    .is_some_and(|r| r.assignment.release.app == app)
            })
            .copied()
            .collect()
    }

    /// Asks a local instance to drain and stop its process for a sequential
    /// replacement, and waits until it has. The returned sender later tells
    /// it to come back (true) or retire (false). None if it is not running here.
    pub(crate) async fn yield_instance(&self, id: InstanceId) -> Option<oneshot::Sender<bool>> {
        let control = self
            .services
            .lock_running()
            .get(&id)
            .map(|h| h.control.clone())?;
        let (stopped, stopped_rx) = oneshot::channel();
        let (resume_tx, resume) = oneshot::channel();
        control
            .send(Control::Yield(Yield { stopped, resume }))
            .await
            .ok()?;
        stopped_rx.await.ok()?;
        Some(resume_tx)
    }

    /// Routes `app`'s domains to local `instance` too, and no longer to
    /// `replaces`, in one atomic switch.
    pub(crate) fn route_add(
        &self,
        app: &str,
        domains: &[String],
        redirect_https: bool,
        instance: InstanceId,
        port: u16,
        replaces: Option<InstanceId>,
    ) {
        let routing = &self.services.routing;
        routing.set_redirect(app, redirect_https);
        routing.add(&self.router, app, domains, instance, port, replaces);
    }

    /// Takes `instance` out of `app`'s routes.
    pub(crate) fn route_remove(&self, app: &str, instance: InstanceId) {
        self.services.routing.remove(&self.router, app, instance);
    }

    /// After an instance of a destroyed app ended: once none of the app's
    /// instances is active here, the proxy forgets the app (404, not 503)
    /// unless the cluster's routes still list it elsewhere.
    pub(crate) fn forget_app_if_idle(&self, app: &str) {
        let mut forgotten = self
            .services
            .forgotten
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !forgotten.contains(app) {
            return;
        }
        let active = self.services.lock_running().keys().any(|id| {
            self.instances
                .get(*id)
                .is_some_and(|r| r.assignment.release.app == app)
        });
        if !active {
            forgotten.remove(app);
            self.services.routing.forget_local(&self.router, app);
        }
    }
}

impl Services {
    pub(crate) fn forget_app(&self, app: &str) {
        self.forgotten
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string());
    }

    pub(crate) fn forget(&self, id: InstanceId) {
        self.lock_running().remove(&id);
    }

    pub(crate) fn is_running(&self, id: InstanceId) -> bool {
        self.lock_running().contains_key(&id)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, RunnerHandle>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}
