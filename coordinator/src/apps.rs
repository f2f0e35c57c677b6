//! Apps: recording releases and rolling them out to instances, answering
//! app queries, and applying the instance events nodes report.
//!
//! A deploy is decided before anything is written: the rollout plan and the
//! node of every new replica are computed first, so a release that cannot be
//! placed is refused without side effects. Then the app record, the release,
//! and each instance go to KV before its assignment is published.

use crate::rollout;
use crate::scheduler::{self, Demand, Strategy};
use crate::{store, Coordinator, CoordinatorError};
use reef_proto::agent::AgentCommand;
use reef_proto::api::{ApiError, ApiErrorKind, AppStatus};
use reef_proto::app::{
    AppDesired, AppRecord, ArtifactRef, Instance, InstanceAssignment, InstanceEvent, InstanceState,
    Release,
};
use reef_proto::manifest::{validate_app_name, AppSpec};
use reef_proto::node::TrustClass;
use reef_proto::{now_ms, subjects, InstanceId, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::Invalid, message)
}

fn not_found(app: &str) -> ApiError {
    ApiError::new(ApiErrorKind::NotFound, format!("no app {app}"))
}

impl Coordinator {
    pub(crate) async fn deploy_app(
        &mut self,
        spec: AppSpec,
        artifact: ArtifactRef,
    ) -> Result<(Release, Vec<Instance>), ApiError> {
        validate_app_name(&spec.name).map_err(invalid)?;
        if !(1..=1000).contains(&spec.replicas) {
            return Err(invalid("replicas must be between 1 and 1000"));
        }
        let valid_digest = artifact.digest.len() == 64
            && artifact
                .digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid_digest {
            return Err(invalid(format!(
                "{:?} is not a sha256 digest",
                artifact.digest
            )));
        }
        match self.store.artifacts.info(&artifact.digest).await {
            Ok(info) if !info.deleted && info.size as u64 == artifact.size => {}
            Ok(info) if !info.deleted => {
                return Err(invalid(format!(
                    "artifact {} has {} bytes, the deploy says {}",
                    artifact.digest, info.size, artifact.size
                )))
            }
            _ => {
                return Err(invalid(format!(
                    "artifact {} was not uploaded",
                    artifact.digest
                )))
            }
        }

        // Decide everything before writing anything.
        self.ensure_secrets(&spec).await?;
        let live = self.live_instances(&spec.name);
        let mut plan = rollout::plan(&live, spec.replicas);
        rollout::limit(&mut plan, spec.rolling.max_parallel);
        let nodes = self.place_replicas(&spec, &plan)?;
        let release = self.record_release(spec, artifact, None).await?;
        let instances = self.execute(&release, plan, nodes).await?;
        Ok((release, instances))
    }

    /// The app's instances that are not finished.
    pub(crate) fn live_instances(&self, app: &str) -> Vec<&Instance> {
        self.cluster
            .instances
            .values()
            .map(|(i, _)| i)
            .filter(|i| i.app == app)
            .collect()
    }

    /// How many live instances of `app` each node runs: what a new replica
    /// spreads away from.
    pub(crate) fn siblings(&self, app: &str) -> BTreeMap<NodeId, u32> {
        let mut siblings = BTreeMap::new();
        for instance in self.live_instances(app) {
            *siblings.entry(instance.node).or_default() += 1;
        }
        siblings
    }

    /// Nodes for the replicas `plan` places, spread away from the nodes the
    /// app already uses; an error says why one cannot be placed.
    pub(crate) fn place_replicas(
        &self,
        spec: &AppSpec,
        plan: &rollout::Plan,
    ) -> Result<Vec<NodeId>, ApiError> {
        let mut siblings: BTreeMap<NodeId, u32> = BTreeMap::new();
        for (_, node) in plan.replace.iter().chain(&plan.keep) {
            *siblings.entry(*node).or_default() += 1;
        }
        let mut nodes = Vec::new();
        for _ in 0..plan.place {
            let node = self
                .choose_for_app(spec, &siblings)
                .map_err(|reason| {
                    invalid(format!("cannot place a replica of {}: {reason}", spec.name))
                })?
                .node;
            *siblings.entry(node).or_default() += 1;
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// Writes the next release of the app (creating the app on its first one)
    /// and makes it the one that should run.
    pub(crate) async fn record_release(
        &mut self,
        spec: AppSpec,
        artifact: ArtifactRef,
        copied_from: Option<u32>,
    ) -> Result<Release, ApiError> {
        let now = now_ms();
        let name = spec.name.clone();
        self.check_domains(&name, &spec.domains).await?;
        // Going back is possible only to a release that runs now.
        let running = !self.live_instances(&name).is_empty();
        let auto_revert = spec.rolling.auto_revert;
        let record = store::modify_from::<AppRecord>(&self.store.apps, &name, None, |app| {
            app.revert_to = (running && auto_revert && app.desired == AppDesired::Running)
                .then_some(app.version);
            app.rollout_failure = None;
            app.halted = false;
            app.latest += 1;
            app.version = app.latest;
            app.replicas = spec.replicas;
            app.desired = AppDesired::Running;
            app.updated_at_ms = now;
            true
        })
        .await?;
        let record = match record {
            Some((record, _)) => record,
            None => {
                let record = AppRecord {
                    name: name.clone(),
                    version: 1,
                    latest: 1,
                    replicas: spec.replicas,
                    desired: AppDesired::Running,
                    proven: 0,
                    revert_to: None,
                    rollout_failure: None,
                    halted: false,
                    created_at_ms: now,
                    updated_at_ms: now,
                };
                store::create(&self.store.apps, &name, &record)
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            ApiErrorKind::Unavailable,
                            "another deploy of this app raced this one; try again",
                        )
                    })?;
                record
            }
        };
        let release = Release {
            app: name.clone(),
            version: record.version,
            artifact,
            spec,
            created_at_ms: now,
            copied_from,
        };
        store::create(
            &self.store.releases,
            &subjects::release_key(&name, release.version),
            &release,
        )
        .await?;
        self.converge_note_app(&name);
        tracing::info!(app = %name, version = release.version, "release recorded");
        Ok(release)
    }

    /// Starts the instances a plan asks for and stops the ones it retires.
    pub(crate) async fn execute(
        &mut self,
        release: &Release,
        plan: rollout::Plan,
        new_nodes: Vec<NodeId>,
    ) -> Result<Vec<Instance>, ApiError> {
        let mut instances = Vec::new();
        let targets = plan
            .replace
            .iter()
            .map(|(old, node)| (*node, Some(*old)))
            .chain(new_nodes.into_iter().map(|node| (node, None)));
        for (node, replaces) in targets {
            instances.push(self.start_instance(release, node, replaces, None).await?);
        }
        for id in plan.stop {
            self.stop_instance(id, false).await?;
        }
        Ok(instances)
    }

    /// Picks a dedicated node for a new replica, spreading away from the
    /// nodes that already host `siblings` of it.
    pub(crate) fn choose_for_app(
        &self,
        spec: &AppSpec,
        siblings: &BTreeMap<NodeId, u32>,
    ) -> Result<scheduler::Placement, String> {
        self.choose_for_app_on(spec, siblings, None)
    }

    /// Like [`Self::choose_for_app`], looking only at node `only` when given.
    pub(crate) fn choose_for_app_on(
        &self,
        spec: &AppSpec,
        siblings: &BTreeMap<NodeId, u32>,
        only: Option<NodeId>,
    ) -> Result<scheduler::Placement, String> {
        let no_failures = BTreeSet::new();
        let demand = Demand {
            resources: spec.resources,
            constraints: &spec.constraints,
            gpus: &spec.gpus,
            trust: Some(TrustClass::Dedicated),
            network: false,
            strategy: Strategy::Spread,
            siblings,
            failed_on: &no_failures,
            exclude: &no_failures,
        };
        let mut candidates = self.cluster.candidates(Instant::now());
        let scan = match only {
            Some(node) => {
                candidates.retain(|c| c.id == node);
                scheduler::Scan::Full
            }
            None => scheduler::Scan::Sampled {
                start: self.cluster.scan_start(),
            },
        };
        scheduler::place_demand(demand, &candidates, scan)
    }

    pub(crate) async fn start_instance(
        &mut self,
        release: &Release,
        node: NodeId,
        replaces: Option<InstanceId>,
        relieves: Option<InstanceId>,
    ) -> Result<Instance, ApiError> {
        let now = now_ms();
        let gpus = self.gpus_for(release, node, replaces)?;
        let instance = Instance {
            id: InstanceId::new(),
            app: release.app.clone(),
            version: release.version,
            node,
            state: InstanceState::Assigned,
            port: None,
            replaces,
            relieves,
            gpus,
            restarts: 0,
            message: None,
            event_seq: 0,
            created_at_ms: now,
            updated_at_ms: now,
        };
        // Sealing checks the node and the secrets before anything is written.
        let command = self.deploy_command(&instance, release).await?;
        store::create(&self.store.instances, &instance.id.to_string(), &instance).await?;
        self.cluster
            .commit_instance(instance.clone(), release.spec.resources);
        self.send_command(node, format!("deploy-{}", instance.id), command)
            .await;
        Ok(instance)
    }

    /// The GPUs a new instance of `release` gets on `node`: those of the
    /// instance it replaces there, else free ones that match the release's request.
    fn gpus_for(
        &self,
        release: &Release,
        node: NodeId,
        replaces: Option<InstanceId>,
    ) -> Result<Vec<u32>, ApiError> {
        let request = &release.spec.gpus;
        if request.count == 0 {
            return Ok(Vec::new());
        }
        if let Some((old, _)) = replaces.and_then(|id| self.cluster.instances.get(&id)) {
            if old.gpus.len() as u32 >= request.count {
                return Ok(old.gpus.clone());
            }
        }
        let candidates = self.cluster.candidates(Instant::now());
        let free = candidates
            .iter()
            .find(|c| c.id == node)
            .map(|c| c.matching_gpus(request))
            .unwrap_or_default();
        if (free.len() as u32) < request.count {
            return Err(invalid(format!(
                "cannot place a replica of {}: the node has {} free matching GPU(s), {} needed",
                release.app,
                free.len(),
                request.count
            )));
        }
        Ok(free.into_iter().take(request.count as usize).collect())
    }

    /// The command that starts `instance` of `release` on its node, with the
    /// secrets it needs sealed to that node.
    async fn deploy_command(
        &self,
        instance: &Instance,
        release: &Release,
    ) -> Result<AgentCommand, ApiError> {
        let secrets = self.sealed_secrets(&release.spec, instance.node).await?;
        Ok(AgentCommand::Deploy(Box::new(InstanceAssignment {
            instance: instance.id,
            node: instance.node,
            release: release.clone(),
            replaces: instance.replaces,
            secrets,
            gpus: instance.gpus.clone(),
            issued_at_ms: now_ms(),
        })))
    }

    pub(crate) async fn stop_instance(
        &mut self,
        id: InstanceId,
        forget_app: bool,
    ) -> Result<(), CoordinatorError> {
        let Some((instance, _)) = self.cluster.instances.get(&id) else {
            return Ok(());
        };
        let node = instance.node;
        // Out of the routes before its node hears of the stop.
        self.unroute(id).await;
        self.send_command(
            node,
            format!("stop-{id}"),
            AgentCommand::StopInstance {
                instance: id,
                forget_app,
            },
        )
        .await;
        Ok(())
    }

    pub(crate) async fn app_status(&self, name: &str) -> Result<AppStatus, ApiError> {
        let (record, _) = store::get::<AppRecord>(&self.store.apps, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let (release, _) = store::get::<Release>(
            &self.store.releases,
            &subjects::release_key(name, record.version),
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorKind::Internal,
                format!("release {} of {name} is missing", record.version),
            )
        })?;
        let mut instances: Vec<Instance> = store::all::<Instance>(&self.store.instances)
            .await?
            .into_iter()
            .filter(|i| i.app == name && !i.state.is_terminal())
            .collect();
        instances.sort_by_key(|i| i.id);
        Ok(AppStatus {
            record,
            release,
            instances,
        })
    }

    pub(crate) async fn list_apps(&self) -> Result<Vec<AppStatus>, ApiError> {
        let mut records = store::all::<AppRecord>(&self.store.apps).await?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            out.push(self.app_status(&record.name).await?);
        }
        Ok(out)
    }

    pub(crate) async fn list_releases(&self, name: &str) -> Result<Vec<Release>, ApiError> {
        store::get::<AppRecord>(&self.store.apps, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let mut releases: Vec<Release> = store::all::<Release>(&self.store.releases)
            .await?
            .into_iter()
            .filter(|r| r.app == name)
            .collect();
        releases.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(releases)
    }

    /// Applies an instance event; false if it was for an unknown instance or
    /// from a node that does not hold it.
    pub(crate) async fn apply_instance_event(
        &mut self,
        event: &InstanceEvent,
    ) -> Result<bool, CoordinatorError> {
        let key = event.instance.to_string();
        let stored =
            store::modify_from::<Instance>(&self.store.instances, &key, None, |instance| {
                crate::transitions::apply_instance_event(instance, event, now_ms())
            })
            .await?;
        let Some((instance, _)) = stored else {
            return Ok(false);
        };
        if instance.node != event.node {
            return Ok(false);
        }
        tracing::debug!(instance = %instance.id, state = instance.state.name(), "instance event applied");
        let app = instance.app.clone();
        if instance.state.is_terminal() {
            // Once: a replay, or a late event for an instance the
            // coordinator ended itself, finds it gone from the view.
            if self.cluster.release_instance(instance.id).is_some() {
                self.converge_note_ended(&instance);
            }
            self.rollout_replica_failed(&instance).await?;
            self.routes_forget_instance(instance.id);
            self.sync_routes(&app).await;
            self.place_pending(false).await;
        } else {
            // The view first, so the routes written below list this instance
            // before the one it relieves is asked to stop.
            if let Some((known, _)) = self.cluster.instances.get_mut(&instance.id) {
                *known = instance.clone();
            }
            self.sync_routes(&app).await;
            if instance.state == InstanceState::Healthy {
                self.converge_note_healthy(&app);
                self.maybe_post_deploy(&instance).await?;
                if let Some(old) = instance.relieves {
                    tracing::info!(instance = %instance.id, %old, "relief is healthy; stopping the instance it relieves");
                    self.stop_instance(old, false).await?;
                }
            }
        }
        Ok(true)
    }

    /// Once every replica of the app's current release is healthy, records
    /// the release as proven and asks the node of `instance` to run its
    /// `post_deploy` hook, once per release (recorded before it is asked).
    async fn maybe_post_deploy(&mut self, instance: &Instance) -> Result<(), CoordinatorError> {
        let Some((record, _)) = store::get::<AppRecord>(&self.store.apps, &instance.app).await?
        else {
            return Ok(());
        };
        if record.version != instance.version || record.proven >= record.version {
            return Ok(());
        }
        let healthy = self
            .cluster
            .instances
            .values()
            .filter(|(i, _)| i.app == instance.app && i.version == record.version)
            .filter(|(i, _)| i.id == instance.id || i.state == InstanceState::Healthy)
            .count();
        if (healthy as u32) < record.replicas {
            return Ok(());
        }
        let version = record.version;
        let key = subjects::release_key(&record.name, version);
        let Some((release, _)) = store::get::<Release>(&self.store.releases, &key).await? else {
            return Ok(());
        };
        let mut claimed = false;
        store::modify::<AppRecord>(&self.store.apps, &record.name, |r| {
            claimed = r.proven < version && r.version == version;
            if claimed {
                r.proven = version;
            }
            claimed
        })
        .await?;
        if !claimed {
            return Ok(());
        }
        tracing::info!(app = %record.name, version, "every replica is healthy");
        if release.spec.post_deploy.is_some() {
            tracing::info!(app = %record.name, version, "running post_deploy");
            self.send_command(
                instance.node,
                format!("post-deploy-{}-{version}", record.name),
                AgentCommand::PostDeploy {
                    instance: instance.id,
                },
            )
            .await;
        }
        Ok(())
    }

    /// Loads live instances into the view on start, and sends again the
    /// deploy command of every instance its node has not picked up yet (the
    /// previous coordinator may have stopped before publishing it; a copy
    /// that did land is ignored by JetStream and by the agent).
    /// Returns the instances that ended.
    pub(crate) async fn load_instances(&mut self) -> Result<Vec<Instance>, CoordinatorError> {
        let mut unsent = Vec::new();
        let mut ended = Vec::new();
        for instance in store::all::<Instance>(&self.store.instances).await? {
            if instance.state.is_terminal() {
                ended.push(instance);
                continue;
            }
            let key = subjects::release_key(&instance.app, instance.version);
            let release = store::get::<Release>(&self.store.releases, &key)
                .await?
                .map(|(r, _)| r);
            let resources = release
                .as_ref()
                .map(|r| r.spec.resources)
                .unwrap_or_default();
            if let (InstanceState::Assigned, Some(release)) = (&instance.state, release) {
                unsent.push((instance.clone(), release));
            }
            self.cluster.commit_instance(instance, resources);
        }
        for (instance, release) in unsent {
            match self.deploy_command(&instance, &release).await {
                Ok(command) => {
                    self.send_command(instance.node, format!("deploy-{}", instance.id), command)
                        .await
                }
                Err(e) => {
                    tracing::warn!(instance = %instance.id, error = %e.message, "cannot send a deploy again")
                }
            }
        }
        Ok(ended)
    }
}
