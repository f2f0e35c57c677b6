//! Routes: where each app can be reached across the cluster. The leader
//! coordinator keeps one [`AppRoutes`] per app in the routes bucket, listing
//! the app's healthy instances with the address of their node's proxy; every
//! agent watches the bucket so its proxy can forward requests for an app it
//! does not run to a node that does.

use crate::envelope::{Message, MessageKind};
use crate::ids::{InstanceId, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The value of key `<app>` in the routes bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRoutes {
    pub app: String,
    /// The host names of the app's current release.
    pub domains: Vec<String>,
    /// The current release redirects plain HTTP to HTTPS: every node
    /// applies it, not only those running an instance.
    pub https_redirect: bool,
    /// Every healthy instance, sorted by instance id. Never empty: an app
    /// with no healthy instance has no key.
    pub backends: Vec<RouteBackend>,
    /// The app is in maintenance: every node answers its routes with 503
    /// and this page.
    #[serde(default)]
    pub maintenance: Option<crate::maintenance::MaintenancePage>,
}

/// One healthy instance and how another node reaches it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBackend {
    pub instance: InstanceId,
    pub node: NodeId,
    /// The plain-HTTP listener of that node's proxy.
    pub addr: SocketAddr,
}

impl Message for AppRoutes {
    const KIND: MessageKind = MessageKind::AppRoutes;
}

impl AppRoutes {
    /// The instances other nodes than `node` run: where `node`'s proxy may
    /// forward the app's requests when it has no instance of its own.
    pub fn elsewhere(&self, node: NodeId) -> impl Iterator<Item = &RouteBackend> {
        self.backends.iter().filter(move |b| b.node != node)
    }
}

#[cfg(test)]
#[path = "app_routes_tests.rs"]
mod tests;
