//! What the agent does with its records after a restart:
//!
//! - `accepted` (recorded, never started): started now; it never ran.
//! - `starting`, `running`, `stopping`: the process may have run partly and
//!   its output pipe died with the old agent, so it is not run again. Any
//!   leftover process group that is provably the same one (pid and start
//!   time match) is killed, and the allocation is reported `lost` with the
//!   reason.
//! - terminal but unreported: reported by the heartbeat loop.
//!
//! App instances are different: they are meant to keep running, so a live
//! instance's leftover process (if provably the same one) is killed and the
//! instance is started again from its release. The scratch directories of
//! instances that ended while no agent ran are removed.

use crate::process::{signal_group, start_time};
use crate::Agent;
use nix::sys::signal::Signal;
use reef_proto::alloc::AllocState;
use std::sync::Arc;

impl Agent {
    pub(crate) async fn recover(self: &Arc<Self>) {
        for record in self.records.all() {
            let alloc = record.assignment.alloc;
            match record.state {
                AllocState::Accepted => {
                    tracing::info!(%alloc, "starting an allocation accepted before the restart");
                    self.start(alloc);
                }
                AllocState::Starting | AllocState::Running { .. } | AllocState::Stopping => {
                    if let (Some(pgid), Some(started)) = (record.pgid, record.pgid_start_time) {
                        if start_time(pgid) == Some(started) {
                            tracing::info!(%alloc, pgid, "killing a job left over from before the restart");
                            signal_group(pgid, Signal::SIGKILL);
                        }
                    }
                    let reason = "the node's agent restarted while the job was running; \
                                  its outcome is unknown, so it was not run again";
                    self.transition(
                        alloc,
                        AllocState::Lost {
                            reason: reason.into(),
                        },
                    )
                    .await;
                }
                _ => {}
            }
        }
        for record in self.instances.all() {
            if record.state.is_terminal() {
                continue;
            }
            // The old process lost its supervisor (and its log pipes): end it,
            // then start the instance afresh, so there is never a second copy.
            if let (Some(pgid), Some(started)) = (record.pgid, record.pgid_start_time) {
                if start_time(pgid) == Some(started) {
                    tracing::info!(instance = %record.assignment.instance, pgid, "replacing an instance left over from before the restart");
                    signal_group(pgid, Signal::SIGKILL);
                }
            }
            self.start_instance(record.assignment.instance);
        }
        let live: std::collections::BTreeSet<String> = self
            .instances
            .all()
            .into_iter()
            .filter(|r| !r.state.is_terminal())
            .map(|r| r.assignment.instance.to_string())
            .collect();
        let apps = self.config.data_dir.join("apps");
        let removal = tokio::task::spawn_blocking(move || remove_stale_scratch(&apps, &live)).await;
        if let Err(e) = removal {
            tracing::warn!(error = %e, "could not remove the scratch directories of ended instances");
        }
    }
}

/// Removes `<apps>/<app>/instances/<id>` for every id not in `live`.
fn remove_stale_scratch(apps: &std::path::Path, live: &std::collections::BTreeSet<String>) {
    let Ok(apps) = std::fs::read_dir(apps) else {
        return;
    };
    for app in apps.flatten() {
        let Ok(instances) = std::fs::read_dir(app.path().join("instances")) else {
            continue;
        };
        for dir in instances.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                if let Err(e) = std::fs::remove_dir_all(dir.path()) {
                    tracing::warn!(path = %dir.path().display(), error = %e, "could not remove an ended instance's scratch directory");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::remove_stale_scratch;

    #[test]
    fn only_the_scratch_of_ended_instances_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let apps = dir.path();
        for path in [
            "shop/instances/live-1/tmp",
            "shop/instances/ended-1/home",
            "shop/data/keep",
            "other/instances/ended-2",
        ] {
            std::fs::create_dir_all(apps.join(path)).expect("mkdir");
        }
        let live = ["live-1".to_string()].into_iter().collect();
        remove_stale_scratch(apps, &live);
        assert!(apps.join("shop/instances/live-1/tmp").is_dir());
        assert!(apps.join("shop/data/keep").is_dir());
        assert!(!apps.join("shop/instances/ended-1").exists());
        assert!(!apps.join("other/instances/ended-2").exists());
    }
}
