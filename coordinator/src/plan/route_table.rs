//! An app's entry in the routes bucket, as a pure function of its healthy
//! instances, the ones being stopped and where each node's proxy listens.
//! The leader's writer (`drive/routes_writer.rs`) calls it and writes the
//! result when it changed.

use reef_proto::app::{Instance, InstanceState};
use reef_proto::app_routes::{AppRoutes, RouteBackend};
use reef_proto::{InstanceId, NodeId};
use std::collections::HashSet;
use std::net::SocketAddr;

/// What a release says about its routing: the same for every node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReleaseRouting {
    pub(crate) domains: Vec<String>,
    pub(crate) https_redirect: bool,
}

/// The routes of `app`: its healthy instances that are not being stopped and
/// whose node has a proxy address, sorted by instance id; None when there is
/// none.
pub(crate) fn build<'a>(
    app: &str,
    release: ReleaseRouting,
    instances: impl IntoIterator<Item = &'a Instance>,
    stopping: &HashSet<InstanceId>,
    proxy_of: impl Fn(NodeId) -> Option<SocketAddr>,
) -> Option<AppRoutes> {
    let mut backends: Vec<RouteBackend> = instances
        .into_iter()
        .filter(|i| i.app == app && i.state == InstanceState::Healthy)
        .filter(|i| !stopping.contains(&i.id))
        .filter_map(|i| {
            Some(RouteBackend {
                instance: i.id,
                node: i.node,
                addr: proxy_of(i.node)?,
            })
        })
        .collect();
    if backends.is_empty() {
        return None;
    }
    backends.sort_by_key(|b| b.instance);
    Some(AppRoutes {
        app: app.to_string(),
        domains: release.domains,
        https_redirect: release.https_redirect,
        backends,
        maintenance: None,
    })
}

#[cfg(test)]
#[path = "route_table_tests.rs"]
mod tests;
