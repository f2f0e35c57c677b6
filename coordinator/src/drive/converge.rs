//! The reconciler's driver: gathers what [`reconcile::reconcile`] decides
//! on (the app records, read fresh from KV; the live instances, the
//! instances being stopped and each node's condition, from the view; the
//! endings it remembers), then carries the actions out. It runs when an
//! instance ends or a node is lost (on the next tick) and every
//! [`PASS_EVERY`] regardless, so whatever ended an instance, the app returns
//! to its replicas without anyone running a command.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::error::Report;
use crate::plan::reconcile::{self, Action, AppWant, EndKind, Ending, NodeCondition, Wait, World};
use crate::store::StoreError;
use futures::StreamExt;
use reef_proto::app::{AppRecord, Instance, InstanceState};
use reef_proto::{now_ms, subjects, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// An app record as read, with its revision.
type StoredApp = Result<Option<(AppRecord, u64)>, StoreError>;

/// A full pass runs at least this often.
pub(crate) const PASS_EVERY: Duration = Duration::from_secs(2);

impl Coordinator {
    /// Takes up, at the start of a term, the apps in KV and the recent
    /// endings among the stored instances.
    pub(crate) async fn converge_load(
        &mut self,
        ended: Vec<Instance>,
    ) -> Result<(), CoordinatorError> {
        self.converger.apps = self.store.apps.keys().await?.into_iter().collect();
        let cutoff = now_ms().saturating_sub(reconcile::ENDING_MEMORY_MS);
        let mut endings: Vec<Ending> = ended
            .iter()
            .filter(|i| i.updated_at_ms >= cutoff)
            .filter_map(|i| crate::state::converger::ending_of(i, i.updated_at_ms))
            .collect();
        endings.sort_by_key(|e| e.at_ms);
        let healthy: BTreeSet<&str> = self
            .cluster
            .instances()
            .filter(|i| i.state == InstanceState::Healthy)
            .map(|i| i.app.as_str())
            .collect();
        endings.retain(|e| !(e.kind == EndKind::Failed && healthy.contains(e.app.as_str())));
        self.converger.endings = endings;
        self.converger.ended = ended
            .iter()
            .filter(|i| i.updated_at_ms >= cutoff)
            .map(|i| (i.id, i.updated_at_ms))
            .collect();
        self.converger.due = true;
        Ok(())
    }

    /// Runs a pass if one is due or the last is [`PASS_EVERY`] old.
    pub(crate) async fn converge_tick(&mut self) {
        let stale = self
            .converger
            .last_pass
            .is_none_or(|at| at.elapsed() >= PASS_EVERY);
        if !(self.converger.due || stale) {
            return;
        }
        self.converger.due = false;
        self.converger.last_pass = Some(Instant::now());
        if let Err(e) = self.converge().await {
            tracing::warn!(error = %Report(&e), "reconciling failed; will retry");
            self.converger.due = true;
        }
    }

    async fn converge(&mut self) -> Result<(), CoordinatorError> {
        let now = now_ms();
        let cutoff = now.saturating_sub(reconcile::ENDING_MEMORY_MS);
        self.converger.endings.retain(|e| e.at_ms >= cutoff);
        self.converger.ended.retain(|(_, at)| *at >= cutoff);
        let wants = self.read_wants().await?;
        let instances: Vec<&Instance> = self.cluster.instances().collect();
        let started = Instant::now();
        let condition = |node: NodeId| match self.cluster.node(node) {
            None => NodeCondition::Lost,
            Some(entry) if entry.lost => NodeCondition::Lost,
            Some(_) if self.cluster.node_ready(node, started) => NodeCondition::Ready,
            Some(_) => NodeCondition::Silent,
        };
        let decision = reconcile::reconcile(&World {
            apps: &wants,
            instances: &instances,
            stopping: self.stopping(),
            endings: &self.converger.endings,
            node: &condition,
            now_ms: now,
        });
        self.log_waits(decision.waiting);
        for action in decision.actions {
            match action {
                Action::Start { app, version, on } => {
                    match self.converge_start(&app, version, on).await {
                        Ok(()) => {
                            self.converger.unplaced.remove(&app);
                        }
                        // Tried again every pass: said once per reason.
                        Err(e) if self.converger.unplaced.get(&app) == Some(&e.message) => {
                            tracing::debug!(%app, error = %e.message, "cannot start a missing replica yet");
                        }
                        Err(e) => {
                            tracing::warn!(%app, error = %e.message, "cannot start a missing replica yet");
                            self.converger.unplaced.insert(app, e.message);
                        }
                    }
                }
                Action::Stop {
                    instance,
                    forget_app,
                } => {
                    tracing::info!(%instance, forget_app, "stopping an instance its app does not want");
                    self.stop_instance(instance, forget_app).await?;
                }
            }
        }
        Ok(())
    }

    /// The app records of every app in the bucket, known or running here,
    /// read afresh. An app is taken as gone only when its record is: a
    /// failed read fails the pass.
    async fn read_wants(&mut self) -> Result<Vec<AppWant>, CoordinatorError> {
        // Apps written to the bucket by others (a restore) are taken up too.
        match self.store.apps.keys().await {
            Ok(keys) => self.converger.apps.extend(keys),
            Err(e) => tracing::debug!(error = %e, "the apps bucket's keys were not read this pass"),
        }
        let mut names = self.converger.apps.clone();
        names.extend(self.cluster.instances().map(|i| i.app.clone()));
        let apps = &self.store.apps;
        let read: Vec<(String, StoredApp)> = futures::stream::iter(names)
            .map(|name| async move {
                let record = apps.get(&name).await;
                (name, record)
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut wants = Vec::with_capacity(read.len());
        for (name, record) in read {
            match record? {
                Some((record, _)) => wants.push(AppWant {
                    name: record.name,
                    version: record.version,
                    replicas: record.replicas,
                    desired: record.desired,
                    halted: record.halted,
                }),
                None => {
                    self.converger.apps.remove(&name);
                }
            }
        }
        wants.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(wants)
    }

    /// Starts one replica of release `version` of `app`: on `on` when that
    /// node can take it, else where the scheduler places it.
    async fn converge_start(
        &mut self,
        app: &str,
        version: u32,
        on: Option<NodeId>,
    ) -> Result<(), reef_proto::api::ApiError> {
        let key = subjects::release_key(app, version);
        let Some((release, _)) = self.store.releases.get(&key).await? else {
            return Err(reef_proto::api::ApiError::new(
                reef_proto::api::ApiErrorKind::Internal,
                format!("release {version} of {app} is missing"),
            ));
        };
        let siblings = self.siblings(app);
        let preferred = on.and_then(|node| {
            self.choose_for_app_on(&release.spec, &siblings, Some(node))
                .ok()
        });
        let node = match preferred {
            Some(placement) => placement.node,
            None => {
                self.choose_for_app(&release.spec, &siblings)
                    .map_err(|reason| {
                        reef_proto::api::ApiError::new(
                            reef_proto::api::ApiErrorKind::Invalid,
                            format!("cannot place a replica of {app}: {reason}"),
                        )
                    })?
                    .node
            }
        };
        let instance = self.start_instance(&release, node, None, None).await?;
        tracing::info!(%app, version, %node, instance = %instance.id, back_on_its_node = on == Some(node), "starting a missing replica");
        Ok(())
    }

    fn log_waits(&mut self, waiting: BTreeMap<String, Wait>) {
        for (app, wait) in &waiting {
            if self.converger.waiting.get(app) != Some(wait) {
                match wait {
                    Wait::Halted => {
                        tracing::info!(%app, "short of replicas, but its rollout is halted until the next deploy")
                    }
                    Wait::Backoff { until_ms, failures } => {
                        tracing::info!(%app, failures, in_ms = until_ms.saturating_sub(now_ms()), "replicas failed; starting another after a backoff")
                    }
                    Wait::NodeAway { node } => {
                        tracing::info!(%app, %node, "waiting for the node that ran a lost replica to come back")
                    }
                }
            }
        }
        self.converger.waiting = waiting;
    }
}
