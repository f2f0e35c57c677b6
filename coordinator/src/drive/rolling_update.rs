//! Rolling updates: after a deploy has replaced its first `max_parallel`
//! replicas, each tick replaces more of the replicas still on an older release
//! as earlier replacements settle (healthy for `min_healthy_time`).
//!
//! When a replica of the new release fails, the rollout stops there: with
//! `auto_revert`, the app goes back to the release it ran before (whose
//! replicas never stopped serving where they were not replaced yet), and the
//! same rolling steps bring the replaced ones back; without it, the rollout is
//! halted with the reason shown in `reef status` until the next deploy. A
//! release that fails before it ever had every replica healthy (a first
//! deploy, say) is halted the same way, so the reconciler does not start it
//! again; one that was healthy and then fails is the reconciler's to restart.
//!
//! The decisions (the next batch, the reaction to a failure, whether a
//! rollout is over) are `plan::replacement` and `plan::rollout_failure`'s.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::plan::{replacement, rollout_failure};
use crate::store::StoreError;
use reef_proto::app::{AppDesired, Instance, InstanceState};
use reef_proto::events::EventKind;
use reef_proto::{now_ms, subjects};
use std::collections::BTreeSet;

impl Coordinator {
    /// One rolling step for every app with replicas on an older release.
    pub(crate) async fn advance_rollouts(&mut self) {
        let apps: BTreeSet<String> = self.cluster.instances().map(|i| i.app.clone()).collect();
        for app in apps {
            if let Err(e) = self.advance_rollout(&app).await {
                tracing::warn!(%app, error = %e.message, "rolling step failed; will retry");
            }
        }
    }

    async fn advance_rollout(&mut self, app: &str) -> Result<(), reef_proto::api::ApiError> {
        let versions: BTreeSet<u32> = self.live_instances(app).iter().map(|i| i.version).collect();
        let Some((record, _)) = self.store.apps.get(app).await? else {
            return Ok(());
        };
        let rolling = versions.iter().any(|v| *v != record.version);
        if !rolling {
            if record.revert_to.is_some()
                && rollout_failure::settled(&record, &self.live_instances(app))
            {
                // Done: nothing left to go back to.
                let version = record.version;
                self.store
                    .apps
                    .modify(app, |r| {
                        let done = r.version == version && r.revert_to.is_some();
                        if done {
                            r.revert_to = None;
                        }
                        done
                    })
                    .await?;
                tracing::info!(%app, version, "rollout complete");
            }
            return Ok(());
        }
        if record.desired != AppDesired::Running || record.halted {
            return Ok(());
        }
        let key = subjects::release_key(app, record.version);
        let Some((release, _)) = self.store.releases.get(&key).await? else {
            return Ok(());
        };
        let policy = release.spec.rolling;
        let live = self.live_instances(app);
        let batch = replacement::next_batch(
            &live,
            record.version,
            policy.max_parallel,
            policy.min_healthy_ms,
            now_ms(),
        );
        for (old, node) in batch {
            let started = self.start_instance(&release, node, Some(old), None).await?;
            tracing::info!(%app, version = record.version, instance = %started.id, replaces = %old, "rolling on");
        }
        Ok(())
    }

    /// A replica failed: if it belongs to a rollout under way, revert or
    /// halt it, as `rollout_failure::react` decides on the record read
    /// fresh; a write that loses to another reads and decides again.
    pub(crate) async fn rollout_replica_failed(
        &mut self,
        instance: &Instance,
    ) -> Result<(), CoordinatorError> {
        let reason = match &instance.state {
            InstanceState::Failed { reason } => reason.clone(),
            _ => return Ok(()),
        };
        let others_older = self
            .live_instances(&instance.app)
            .iter()
            .any(|i| i.version != instance.version);
        for _ in 0..MAX_TRIES {
            let Some((record, revision)) = self.store.apps.get(&instance.app).await? else {
                return Ok(());
            };
            let Some(reaction) =
                rollout_failure::react(&record, instance.version, &reason, others_older)
            else {
                return Ok(());
            };
            let next = reaction.applied_to(&record);
            if self
                .store
                .apps
                .put_if(&instance.app, &next, revision)
                .await?
                .is_some()
            {
                tracing::warn!(app = %instance.app, failure = reaction.failure(), "rollout stopped");
                let kind = match reaction {
                    rollout_failure::Reaction::Revert { .. } => EventKind::DeployReverted,
                    rollout_failure::Reaction::Halt { .. } => EventKind::DeployFailed,
                };
                self.events.emit(kind, &instance.app, reaction.failure());
                return Ok(());
            }
        }
        Err(StoreError::Conflict {
            bucket: self.store.apps.name().to_string(),
            key: instance.app.clone(),
        }
        .into())
    }
}

/// How often a decision is taken again on a fresher record before giving up.
const MAX_TRIES: usize = 16;
