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
//! instance is started again from its release.

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
    }
}
