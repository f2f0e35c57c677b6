//! What the leader remembers about the routes bucket between writes: what
//! each app's key holds as last written, the instances it asked to stop
//! (out of the routes at once), each release's routing, the apps in
//! maintenance, and the apps whose write must be tried again.

use crate::plan::route_table::ReleaseRouting;
use reef_proto::app_routes::AppRoutes;
use reef_proto::maintenance::MaintenancePage;
use reef_proto::InstanceId;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What the leader remembers about the routes it writes.
#[derive(Default)]
pub(crate) struct RouteBook {
    /// What each app's key holds, as last written by this leader.
    pub(crate) written: HashMap<String, AppRoutes>,
    /// Instances this coordinator asked to stop: out of the routes at once.
    pub(crate) stopping: HashSet<InstanceId>,
    /// What each release says about routing, read once.
    pub(crate) releases: HashMap<(String, u32), ReleaseRouting>,
    /// Apps whose key could not be written; retried every tick.
    pub(crate) dirty: BTreeSet<String>,
    /// The whole bucket needs rewriting (the rebuild at the start of the
    /// term failed).
    pub(crate) rebuild: bool,
    /// The page of each app in maintenance, as its record says (read
    /// again with every rebuild).
    pub(crate) maintenance: HashMap<String, MaintenancePage>,
}
