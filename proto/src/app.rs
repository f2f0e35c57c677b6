//! Apps: releases (an artifact plus the manifest it was deployed with), the
//! app record that says which release should run and how many replicas, and
//! instances, the running copies of an app on nodes.

use crate::envelope::{Message, MessageKind};
use crate::ids::{InstanceId, NodeId};
use crate::manifest::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An uploaded release artifact (a gzipped tarball), named by its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Lowercase hex sha256 of the tarball; also its name in the object store.
    pub digest: String,
    pub size: u64,
}

/// One numbered release of an app, kept for rollback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub app: String,
    /// 1, 2, 3... per app.
    pub version: u32,
    pub artifact: ArtifactRef,
    pub spec: AppSpec,
    pub created_at_ms: u64,
    /// Set when this release was created by `reef rollback` from an older one.
    pub copied_from: Option<u32>,
}

impl Message for Release {
    const KIND: MessageKind = MessageKind::Release;
}

/// Whether an app should be running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppDesired {
    Running,
    Stopped,
}

/// The coordinator's record of an app, stored in the apps bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    /// The release that should be running.
    pub version: u32,
    /// The highest release number handed out.
    pub latest: u32,
    /// Replicas wanted (the manifest's, unless changed with `reef scale`).
    pub replicas: u32,
    pub desired: AppDesired,
    /// The newest release that has had every replica healthy at once (0:
    /// none yet); its `post_deploy` hook, if it has one, was started then.
    /// A replica of a newer release that fails has failed its deploy.
    pub proven: u32,
    /// While a rollout is under way: the release to go back to if the new
    /// one fails (None: no automatic revert).
    pub revert_to: Option<u32>,
    /// Why the last rollout stopped short (a failed replica, a revert); cleared by the next deploy.
    pub rollout_failure: Option<String>,
    /// The rollout stopped on a failure and waits for the next deploy.
    pub halted: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// In maintenance (`reef maintenance on`): every node answers the app's
    /// routes with 503 and this page while its instances keep running.
    #[serde(default)]
    pub maintenance: Option<crate::maintenance::Maintenance>,
}

impl Message for AppRecord {
    const KIND: MessageKind = MessageKind::AppRecord;
}

/// Every app state's name, as [`AppRecord::state_name`] gives it.
pub const APP_STATES: [&str; 3] = ["running", "stopped", "halted"];

impl AppRecord {
    /// Where the app stands, as `reef apps` shows it: `stopped` (by its
    /// owner), `halted` (its rollout stopped on a failure) or `running`.
    pub fn state_name(&self) -> &'static str {
        match (self.desired, self.halted) {
            (AppDesired::Stopped, _) => "stopped",
            (_, true) => "halted",
            _ => "running",
        }
    }
}

/// Where an instance stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    /// Published to the node; not picked up yet.
    Assigned,
    /// Downloading, verifying and unpacking the artifact, running `pre_start`.
    Preparing,
    /// The process runs; not healthy yet.
    Starting,
    /// Passing its health check and receiving traffic.
    Healthy,
    /// Failing its health check after having been healthy.
    Unhealthy,
    /// Taken out of the routes; its in-flight requests are finishing.
    Draining,
    Stopped,
    Failed {
        reason: String,
    },
    Lost {
        reason: String,
    },
}

impl InstanceState {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            InstanceState::Stopped | InstanceState::Failed { .. } | InstanceState::Lost { .. }
        )
    }

    /// Whether an instance may move from `self` to `next`. A terminal state
    /// is final, and nothing goes back to `assigned`. Everything else may
    /// follow anything live: an instance's life has cycles (a crash restart
    /// goes from `healthy` back to `starting`, an agent restart to
    /// `preparing`, a yielded instance from `draining` to `starting`), and
    /// a node reports an instance's latest state, so states in between may
    /// never be seen. A repeat of the same state carries a new message or
    /// restart count.
    pub fn can_become(&self, next: &InstanceState) -> bool {
        !self.is_terminal()
            && (*next != InstanceState::Assigned || *self == InstanceState::Assigned)
    }

    pub fn name(&self) -> &'static str {
        match self {
            InstanceState::Assigned => "assigned",
            InstanceState::Preparing => "preparing",
            InstanceState::Starting => "starting",
            InstanceState::Healthy => "healthy",
            InstanceState::Unhealthy => "unhealthy",
            InstanceState::Draining => "draining",
            InstanceState::Stopped => "stopped",
            InstanceState::Failed { .. } => "failed",
            InstanceState::Lost { .. } => "lost",
        }
    }
}

/// One running copy of an app, stored in the instances bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub app: String,
    pub version: u32,
    pub node: NodeId,
    pub state: InstanceState,
    pub port: Option<u16>,
    /// The instance on the same node this one takes over from.
    pub replaces: Option<InstanceId>,
    /// The instance on a draining node this one takes over from: stopped by
    /// the coordinator once this one is healthy.
    pub relieves: Option<InstanceId>,
    /// Indices of the node's GPUs given to this instance.
    pub gpus: Vec<u32>,
    /// Crashes restarted on the node.
    pub restarts: u32,
    /// The last thing worth telling a person (a failed check, a crash).
    pub message: Option<String>,
    pub event_seq: u32,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Message for Instance {
    const KIND: MessageKind = MessageKind::Instance;
}

/// Start an instance of a release on a node, optionally replacing another
/// instance there (blue-green or sequential, per the release's strategy).
/// Its `Debug` names the secrets but shows none of their sealed bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAssignment {
    pub instance: InstanceId,
    pub node: NodeId,
    pub release: Release,
    /// The instance on the same node this one takes over from.
    pub replaces: Option<InstanceId>,
    /// The secrets the release's environment refers to, each sealed to the
    /// node's key (context `<app>/<KEY>`); only that node can open them.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Indices of the node's GPUs the instance may use.
    pub gpus: Vec<u32>,
    pub issued_at_ms: u64,
    /// How the instance reaches its app's managed services (their
    /// passwords are among `secrets`).
    #[serde(default)]
    pub services: Vec<crate::services::ServiceEndpoint>,
}

impl std::fmt::Debug for InstanceAssignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceAssignment")
            .field("instance", &self.instance)
            .field("node", &self.node)
            .field("release", &self.release)
            .field("replaces", &self.replaces)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("gpus", &self.gpus)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("services", &self.services)
            .finish()
    }
}

/// A change in an instance, reported by its node on `reef.events.<node>.<instance>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEvent {
    pub instance: InstanceId,
    pub app: String,
    pub node: NodeId,
    pub seq: u32,
    pub state: InstanceState,
    pub port: Option<u16>,
    pub restarts: u32,
    pub message: Option<String>,
    pub at_ms: u64,
}

impl Message for InstanceEvent {
    const KIND: MessageKind = MessageKind::InstanceEvent;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignments_debug_names_its_secrets_and_shows_no_sealed_byte() {
        let spec = crate::manifest::parse(
            "[app]\nname = \"web\"\n[deploy]\ntype = \"exec\"\nbinary = \"web\"\n[env]\nTOKEN = \"${secret:token}\"\n",
        )
        .expect("manifest");
        let assignment = InstanceAssignment {
            instance: crate::InstanceId::new(),
            node: NodeId::new(),
            release: Release {
                app: "web".into(),
                version: 1,
                artifact: ArtifactRef {
                    digest: "00".repeat(32),
                    size: 1,
                },
                spec,
                created_at_ms: 1,
                copied_from: None,
            },
            replaces: None,
            secrets: BTreeMap::from([("token".to_string(), vec![0xAB; 48])]),
            gpus: Vec::new(),
            services: Vec::new(),
            issued_at_ms: 1,
        };
        let shown = format!("{assignment:?}");
        assert!(shown.contains("\"token\""), "{shown}");
        assert!(!shown.contains("171"), "sealed bytes shown: {shown}");
    }
}
