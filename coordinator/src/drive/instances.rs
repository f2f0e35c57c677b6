//! App instances on the leader's side: where a new replica goes, starting
//! one (its GPUs and sealed secrets settled before anything is written,
//! its record in KV before its command is published), stopping one (out of
//! the routes first), applying the events nodes report about them, and
//! taking up the live ones at the start of a term.

use crate::api::invalid;
use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::plan::scheduler::{self, Demand, Strategy};
use reef_proto::agent::AgentCommand;
use reef_proto::api::ApiError;
use reef_proto::app::{Instance, InstanceAssignment, InstanceEvent, InstanceState, Release};
use reef_proto::manifest::AppSpec;
use reef_proto::node::TrustClass;
use reef_proto::{now_ms, subjects, InstanceId, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

impl Coordinator {
    /// The app's instances that are not finished.
    pub(crate) fn live_instances(&self, app: &str) -> Vec<&Instance> {
        self.cluster.instances().filter(|i| i.app == app).collect()
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

    /// Picks a dedicated node for a new replica, spreading away from the
    /// nodes that already host `siblings` of it.
    pub(crate) fn choose_for_app(
        &self,
        spec: &AppSpec,
        siblings: &BTreeMap<NodeId, u32>,
    ) -> Result<scheduler::Placement, scheduler::NoFit> {
        self.choose_for_app_on(spec, siblings, None)
    }

    /// Like [`Self::choose_for_app`], looking only at node `only` when given.
    pub(crate) fn choose_for_app_on(
        &self,
        spec: &AppSpec,
        siblings: &BTreeMap<NodeId, u32>,
        only: Option<NodeId>,
    ) -> Result<scheduler::Placement, scheduler::NoFit> {
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
        self.store
            .instances
            .create_new(&instance.id.to_string(), &instance)
            .await?;
        self.cluster
            .commit_instance(instance.clone(), release.spec.resources);
        self.metrics.placed(1);
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
        if let Some(old) = replaces.and_then(|id| self.cluster.instance(id)) {
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
                "cannot place a replica of {}: the node has {} free matching GPUs, {} needed",
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
        let services = self.service_endpoints(&release.spec).await?;
        Ok(AgentCommand::Deploy(Box::new(InstanceAssignment {
            instance: instance.id,
            node: instance.node,
            release: release.clone(),
            replaces: instance.replaces,
            secrets,
            gpus: instance.gpus.clone(),
            issued_at_ms: now_ms(),
            services,
        })))
    }

    pub(crate) async fn stop_instance(
        &mut self,
        id: InstanceId,
        forget_app: bool,
    ) -> Result<(), CoordinatorError> {
        let Some(instance) = self.cluster.instance(id) else {
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

    /// Applies an instance event; false if it was for an unknown instance or
    /// from a node that does not hold it.
    pub(crate) async fn apply_instance_event(
        &mut self,
        event: &InstanceEvent,
    ) -> Result<bool, CoordinatorError> {
        let key = event.instance.to_string();
        let restarts_before = self.cluster.instance(event.instance).map(|i| i.restarts);
        let stored = self
            .store
            .instances
            .modify_from(&key, None, |instance| {
                crate::plan::transitions::apply_instance_event(instance, event, now_ms())
            })
            .await?;
        let Some((instance, _)) = stored else {
            return Ok(false);
        };
        if instance.node != event.node {
            return Ok(false);
        }
        tracing::debug!(instance = %instance.id, state = instance.state.name(), "instance event applied");
        if let Some(what) = crate::plan::transitions::crash(restarts_before, &instance) {
            let node = self.cluster.node_name(instance.node);
            self.events.emit(
                reef_proto::events::EventKind::InstanceCrashed,
                &instance.app,
                format!("release {} on {node}: {what}", instance.version),
            );
        }
        let app = instance.app.clone();
        if instance.state.is_terminal() {
            // Once: a replay, or a late event for an instance the
            // coordinator ended itself, finds it gone from the view.
            if self.cluster.release_instance(instance.id).is_some() {
                self.converger.note_ended(&instance);
            }
            self.rollout_replica_failed(&instance).await?;
            self.routes_forget_instance(instance.id);
            self.sync_routes(&app).await;
            self.place_pending(false).await;
        } else {
            // The view first, so the routes written below list this instance
            // before the one it relieves is asked to stop.
            self.cluster.refresh_instance(&instance);
            self.sync_routes(&app).await;
            if instance.state == InstanceState::Healthy {
                self.converger.note_healthy(&app);
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
        let Some((record, _)) = self.store.apps.get(&instance.app).await? else {
            return Ok(());
        };
        if record.version != instance.version || record.proven >= record.version {
            return Ok(());
        }
        let healthy = self
            .cluster
            .instances_of(&instance.app)
            .filter(|i| i.version == record.version)
            .filter(|i| i.id == instance.id || i.state == InstanceState::Healthy)
            .count();
        if (healthy as u32) < record.replicas {
            return Ok(());
        }
        let version = record.version;
        let key = subjects::release_key(&record.name, version);
        let Some((release, _)) = self.store.releases.get(&key).await? else {
            return Ok(());
        };
        let mut claimed = false;
        self.store
            .apps
            .modify(&record.name, |r| {
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
        self.events.emit(
            reef_proto::events::EventKind::DeployHealthy,
            &record.name,
            format!("release {version}: every replica is healthy"),
        );
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
    pub(crate) async fn load_instances(
        &mut self,
        instances: Vec<Instance>,
    ) -> Result<Vec<Instance>, CoordinatorError> {
        let mut unsent = Vec::new();
        let mut ended = Vec::new();
        for instance in instances {
            if instance.state.is_terminal() {
                ended.push(instance);
                continue;
            }
            let key = subjects::release_key(&instance.app, instance.version);
            let release = self.store.releases.get(&key).await?.map(|(r, _)| r);
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
