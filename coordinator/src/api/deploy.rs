//! `app.deploy`: a release recorded and rolled out to instances.
//!
//! A deploy is decided before anything is written: the rollout plan and the
//! node of every new replica are computed first, so a release that cannot be
//! placed is refused without side effects. Then the app record, the release,
//! and each instance go to KV before its assignment is published.

use super::invalid;
use crate::drive::Coordinator;
use crate::plan::replacement;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::app::{AppDesired, AppRecord, ArtifactRef, Instance, Release};
use reef_proto::manifest::{validate_app_name, AppSpec};
use reef_proto::{now_ms, subjects, NodeId};
use std::collections::BTreeMap;

impl Coordinator {
    pub(crate) async fn deploy_app(
        &mut self,
        spec: AppSpec,
        artifact: ArtifactRef,
        caller: &str,
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
        let crons = spec.cron_jobs(caller);
        self.check_app_crons(&spec.name, &crons).await?;
        let replicas = self.replicas_to_run(&spec.name, spec.replicas).await?;
        let live = self.live_instances(&spec.name);
        let mut plan = replacement::plan(&live, replicas);
        replacement::limit(&mut plan, spec.rolling.max_parallel);
        let nodes = self.place_replicas(&spec, &plan)?;
        let services = self.plan_services(&spec).await?;
        self.write_services(&spec.name, services).await?;
        self.ensure_app_credential(&spec).await?;
        let app = spec.name.clone();
        let release = self.record_release(spec, artifact, None, replicas).await?;
        let instances = self.execute(&release, plan, nodes).await?;
        self.sync_app_crons(&app, &crons).await?;
        Ok((release, instances))
    }

    /// Nodes for the replicas `plan` places, spread away from the nodes the
    /// app already uses; an error says why one cannot be placed.
    pub(crate) fn place_replicas(
        &self,
        spec: &AppSpec,
        plan: &replacement::Plan,
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

    /// The replicas a new release of `app` whose manifest says `manifest`
    /// runs ([`replacement::replicas_to_run`]).
    pub(crate) async fn replicas_to_run(&self, app: &str, manifest: u32) -> Result<u32, ApiError> {
        let Some((record, _)) = self.store.apps.get(app).await? else {
            return Ok(manifest);
        };
        let previous = self
            .store
            .releases
            .get(&reef_proto::subjects::release_key(app, record.version))
            .await?
            .map(|(release, _)| release.spec.replicas);
        Ok(replacement::replicas_to_run(
            Some(record.replicas),
            previous,
            manifest,
        ))
    }

    /// Writes the next release of the app (creating the app on its first one)
    /// and makes it the one that should run, with `replicas` replicas.
    pub(crate) async fn record_release(
        &mut self,
        spec: AppSpec,
        artifact: ArtifactRef,
        copied_from: Option<u32>,
        replicas: u32,
    ) -> Result<Release, ApiError> {
        let now = now_ms();
        let name = spec.name.clone();
        self.check_domains(&name, &spec.domains).await?;
        // Going back is possible only to a release that runs now.
        let running = !self.live_instances(&name).is_empty();
        let auto_revert = spec.rolling.auto_revert;
        let record = self
            .store
            .apps
            .modify_from(&name, None, |app| {
                app.revert_to = (running && auto_revert && app.desired == AppDesired::Running)
                    .then_some(app.version);
                app.rollout_failure = None;
                app.halted = false;
                app.latest += 1;
                app.version = app.latest;
                app.replicas = replicas;
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
                    replicas,
                    desired: AppDesired::Running,
                    proven: 0,
                    revert_to: None,
                    rollout_failure: None,
                    halted: false,
                    created_at_ms: now,
                    updated_at_ms: now,
                    maintenance: None,
                };
                self.store
                    .apps
                    .create_new(&name, &record)
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
        self.store
            .releases
            .create_new(&subjects::release_key(&name, release.version), &release)
            .await?;
        self.converger.note_app(&name);
        tracing::info!(app = %name, version = release.version, "release recorded");
        self.events.emit(
            reef_proto::events::EventKind::DeployStarted,
            &name,
            format!("release {}", release.version),
        );
        Ok(release)
    }

    /// Starts the instances a plan asks for and stops the ones it retires.
    pub(crate) async fn execute(
        &mut self,
        release: &Release,
        plan: replacement::Plan,
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
}
