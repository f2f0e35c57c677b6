//! Where a job of an app's `[[cron]]` runs: beside one of the app's healthy
//! instances on this node, in the release that instance has unpacked, with
//! its data directory and its environment (`[env]` and secrets, opened
//! here as the instance's are), as the app's `post_deploy` hook runs.

use super::{beam, environment, prepare, runner};
use crate::Agent;
use reef_proto::app::InstanceState;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An app's release, directories and environment, for a job of its own.
pub(crate) struct AppPlace {
    pub(crate) release: PathBuf,
    pub(crate) data: PathBuf,
    /// A release's scratch directory (its instance's), when it has one.
    pub(crate) scratch: Option<PathBuf>,
    pub(crate) env: BTreeMap<String, String>,
}

impl Agent {
    /// The place of a job of `app`, from one of its healthy instances here;
    /// an error says why there is none.
    pub(crate) async fn app_place(
        self: &std::sync::Arc<Self>,
        app: &str,
    ) -> Result<AppPlace, String> {
        let record = self
            .instances
            .all()
            .into_iter()
            .filter(|r| r.assignment.release.app == app && r.state == InstanceState::Healthy)
            .max_by_key(|r| r.assignment.release.version)
            .ok_or_else(|| format!("no healthy instance of app {app} on this node"))?;
        let port = record
            .port
            .ok_or_else(|| format!("the instance of app {app} has no port yet"))?;
        let release = prepare::release_dir(self, &record.assignment.release)
            .await
            .map_err(|e| reef_proto::Report(&e).to_string())?;
        let data = runner::data_dir(self, app);
        let spec = &record.assignment.release.spec;
        let scratch = beam::needs_scratch(&spec.run)
            .then(|| runner::scratch_dir(self, app, record.assignment.instance));
        let extra = match &scratch {
            Some(dir) => beam::env(&spec.run, record.assignment.instance, dir, None),
            None => Vec::new(),
        };
        let mut env = environment::render(self, &record, &data, port, extra)
            .map_err(|e| reef_proto::Report(&e).to_string())?;
        // The job is not that instance (its `PORT` stays: the instance to talk to).
        env.remove("REEF_INSTANCE_ID");
        Ok(AppPlace {
            release,
            data,
            scratch,
            env,
        })
    }
}
