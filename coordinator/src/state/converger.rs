//! The reconciler's memory between passes: the apps known to have a
//! record, the instances that ended recently (what `plan::reconcile`
//! decides restarts and backoffs from), whether a pass is due, and what was
//! last logged about each app.

use crate::plan::reconcile::{EndKind, Ending, Wait, ENDING_MEMORY_MS};
use reef_proto::app::{Instance, InstanceState};
use reef_proto::{now_ms, InstanceId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// What the driver keeps between passes.
pub(crate) struct Converger {
    /// Apps known to have a record: read at the start of the term, added to
    /// by deploys.
    pub(crate) apps: BTreeSet<String>,
    /// Instances that ended, oldest first (see [`Ending`]).
    pub(crate) endings: Vec<Ending>,
    /// Which instances those were, and when they ended: for the
    /// checkpoint, so the next leader takes them up too.
    pub(crate) ended: Vec<(InstanceId, u64)>,
    /// A pass is due at the next tick.
    pub(crate) due: bool,
    pub(crate) last_pass: Option<Instant>,
    /// Why each app waits, as last logged.
    pub(crate) waiting: BTreeMap<String, Wait>,
    /// Why a missing replica of each app could not be started, as last logged.
    pub(crate) unplaced: BTreeMap<String, String>,
}

impl Converger {
    pub(crate) fn new() -> Self {
        Self {
            apps: BTreeSet::new(),
            endings: Vec::new(),
            ended: Vec::new(),
            due: true,
            last_pass: None,
            waiting: BTreeMap::new(),
            unplaced: BTreeMap::new(),
        }
    }

    /// Notes that an app exists (it was just deployed).
    pub(crate) fn note_app(&mut self, app: &str) {
        self.apps.insert(app.to_string());
    }

    /// Notes that an instance left the view; a pass follows on the next tick.
    pub(crate) fn note_ended(&mut self, instance: &Instance) {
        let now = now_ms();
        if let Some(ending) = ending_of(instance, now) {
            self.endings.push(ending);
            self.ended.push((instance.id, now));
        }
        self.due = true;
    }

    /// The instances that ended within the reconciler's memory.
    pub(crate) fn recently_ended(&self, now_ms: u64) -> Vec<InstanceId> {
        let cutoff = now_ms.saturating_sub(ENDING_MEMORY_MS);
        self.ended
            .iter()
            .filter(|(_, at)| *at >= cutoff)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Notes that an instance of `app` is healthy: its earlier failures no
    /// longer count towards a backoff.
    pub(crate) fn note_healthy(&mut self, app: &str) {
        self.endings
            .retain(|e| !(e.app == app && e.kind == EndKind::Failed));
    }
}

/// The ending an instance that left the view is remembered as, if any: a
/// stopped instance was meant to stop.
pub(crate) fn ending_of(instance: &Instance, at_ms: u64) -> Option<Ending> {
    let kind = match instance.state {
        InstanceState::Lost { .. } => EndKind::Lost,
        InstanceState::Failed { .. } => EndKind::Failed,
        _ => return None,
    };
    Some(Ending {
        app: instance.app.clone(),
        version: instance.version,
        node: instance.node,
        kind,
        at_ms,
    })
}
