//! The reconciler's decision: a pure function from what should run (each
//! app's desired state, release and replica count) and what does run (the
//! live instances, the ones being stopped, recent endings, each node's
//! condition) to the actions that close the gap. The leader's driver
//! (`converge.rs`) gathers the inputs, calls [`reconcile`] and carries the
//! actions out; nothing here does I/O or reads a clock.
//!
//! The rules, per app:
//!
//! - **Slots.** A live instance that is neither draining nor being stopped
//!   fills one slot; an instance and the one it replaces or relieves fill one
//!   together (a blue-green swap or a move in progress).
//! - **Stopped or destroyed.** Every instance of an app that should not run
//!   (stopped, or with no record: destroyed) is stopped.
//! - **Halted.** An app whose rollout stopped on a failure is left alone
//!   until the next deploy or rollback.
//! - **Too few.** Missing replicas of the current release are started. A
//!   replica lost on a node (its agent stopped, the node rebooted or went
//!   silent) comes back on that node when the node is ready, waits while the
//!   node is silent but not declared lost yet, and goes anywhere once it is
//!   lost. After replicas of the current release failed (crashed beyond
//!   their restart budget), new ones start only after a backoff that doubles
//!   with each failure since the app was last healthy.
//! - **Too many.** Extra slots are stopped: other releases first, then the
//!   least healthy, then the newest.

use super::replacement::rank;
use reef_proto::app::{AppDesired, Instance, InstanceState};
use reef_proto::{InstanceId, NodeId};
use std::collections::{BTreeMap, HashSet};

/// The first wait after a failed replica; doubled for each further failure.
pub const FAILURE_BACKOFF_MS: u64 = 5_000;
/// The longest wait after failed replicas.
pub const FAILURE_BACKOFF_MAX_MS: u64 = 300_000;
/// How long an ending is remembered: a lost replica prefers its node, and a
/// failure counts towards the backoff, only this long.
pub const ENDING_MEMORY_MS: u64 = 3_600_000;

/// What the app record says should run.
#[derive(Clone, Debug)]
pub struct AppWant {
    pub name: String,
    /// The release that should run.
    pub version: u32,
    pub replicas: u32,
    pub desired: AppDesired,
    /// The rollout stopped on a failure and waits for the next deploy.
    pub halted: bool,
}

/// How an instance ended, as far as replacing it is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndKind {
    /// Through no fault of its own: its agent stopped, its node was lost.
    Lost,
    /// It crashed beyond its restart budget or failed its checks.
    Failed,
}

/// An instance that ended recently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    pub app: String,
    pub version: u32,
    pub node: NodeId,
    pub kind: EndKind,
    pub at_ms: u64,
}

/// A node as the reconciler needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeCondition {
    /// Heard from within the grace period.
    Ready,
    /// Not heard from lately, not declared lost yet: it may come back.
    Silent,
    /// Declared lost, or not registered.
    Lost,
}

/// Everything the decision looks at.
pub struct World<'a> {
    /// Every app that has a record.
    pub apps: &'a [AppWant],
    /// The live (not terminal) instances, of every app.
    pub instances: &'a [&'a Instance],
    /// Instances the coordinator already asked to stop.
    pub stopping: &'a HashSet<InstanceId>,
    /// Instances that ended, oldest first; failures only since their app was
    /// last healthy.
    pub endings: &'a [Ending],
    pub node: &'a dyn Fn(NodeId) -> NodeCondition,
    pub now_ms: u64,
}

/// Something the driver should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start one instance of `version` of `app`: on `on` when that node can
    /// take it, else wherever the scheduler places it.
    Start {
        app: String,
        version: u32,
        on: Option<NodeId>,
    },
    /// Ask an instance to drain and stop; `forget_app` when its app is gone.
    Stop {
        instance: InstanceId,
        forget_app: bool,
    },
}

/// Why an app short of replicas gets no start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Its rollout failed; the next deploy or rollback resumes it.
    Halted,
    /// Its replicas failed; the next start is due then.
    Backoff { until_ms: u64, failures: u32 },
    /// A replica was lost on this node, which has gone silent: it may come back.
    NodeAway { node: NodeId },
}

/// The decision: actions to take now, and the apps left waiting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub waiting: BTreeMap<String, Wait>,
}

/// Decides what closes the gap between `world.apps` and `world.instances`.
pub fn reconcile(world: &World<'_>) -> Decision {
    let mut decision = Decision::default();
    let mut by_app: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for instance in world.instances {
        if !instance.state.is_terminal() {
            by_app.entry(&instance.app).or_default().push(instance);
        }
    }
    let wants: BTreeMap<&str, &AppWant> = world.apps.iter().map(|a| (a.name.as_str(), a)).collect();
    for (app, instances) in &by_app {
        let running = wants
            .get(app)
            .is_some_and(|want| want.desired == AppDesired::Running);
        if !running {
            let forget_app = !wants.contains_key(app);
            for instance in instances {
                if !world.stopping.contains(&instance.id) {
                    decision.actions.push(Action::Stop {
                        instance: instance.id,
                        forget_app,
                    });
                }
            }
        }
    }
    for want in world.apps {
        if want.desired != AppDesired::Running {
            continue;
        }
        let live = by_app
            .get(want.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        reconcile_app(world, want, live, &mut decision);
    }
    decision
}

fn reconcile_app(world: &World<'_>, want: &AppWant, live: &[&Instance], decision: &mut Decision) {
    let slots = slots(live, world.stopping);
    let filled = slots.len() as u32;
    if want.halted {
        if filled < want.replicas {
            decision.waiting.insert(want.name.clone(), Wait::Halted);
        }
        return;
    }
    if filled > want.replicas {
        let mut extra = slots;
        extra.sort_by_key(|slot| {
            let i = slot.instance;
            (
                i.version == want.version,
                std::cmp::Reverse(rank(&i.state)),
                std::cmp::Reverse(i.created_at_ms),
                std::cmp::Reverse(i.id),
            )
        });
        // A pair goes whole: the instance it takes over from would fill
        // the slot again.
        let stops = extra
            .iter()
            .take((filled - want.replicas) as usize)
            .flat_map(|slot| {
                std::iter::once(slot.instance.id).chain(slot.takes_over.iter().copied())
            });
        let mut asked = HashSet::new();
        for instance in stops.filter(|id| asked.insert(*id)) {
            decision.actions.push(Action::Stop {
                instance,
                forget_app: false,
            });
        }
        return;
    }
    let missing = want.replicas - filled;
    if missing == 0 {
        return;
    }
    let cutoff = world.now_ms.saturating_sub(ENDING_MEMORY_MS);
    let endings: Vec<&Ending> = world
        .endings
        .iter()
        .filter(|e| e.app == want.name && e.at_ms >= cutoff)
        .collect();
    let failures: Vec<&&Ending> = endings
        .iter()
        .filter(|e| e.kind == EndKind::Failed && e.version == want.version)
        .collect();
    if let Some(last) = failures.iter().map(|e| e.at_ms).max() {
        let n = failures.len() as u32;
        let until_ms = last.saturating_add(backoff_ms(n));
        if world.now_ms < until_ms {
            decision.waiting.insert(
                want.name.clone(),
                Wait::Backoff {
                    until_ms,
                    failures: n,
                },
            );
            return;
        }
    }
    // Nodes where replicas were lost, as many times as they lost one more
    // than they run now: each such loss is a replica that belongs there.
    let mut owed: BTreeMap<NodeId, i64> = BTreeMap::new();
    for ending in endings.iter().filter(|e| e.kind == EndKind::Lost) {
        *owed.entry(ending.node).or_default() += 1;
    }
    for instance in live {
        if let Some(count) = owed.get_mut(&instance.node) {
            *count -= 1;
        }
    }
    let mut starts: Vec<Option<NodeId>> = Vec::new();
    let mut held = 0;
    let mut away = None;
    for (node, count) in owed {
        for _ in 0..count.max(0) {
            if starts.len() as u32 + held == missing {
                break;
            }
            match (world.node)(node) {
                NodeCondition::Ready => starts.push(Some(node)),
                NodeCondition::Silent => {
                    held += 1;
                    away.get_or_insert(node);
                }
                // Filled anywhere below.
                NodeCondition::Lost => {}
            }
        }
    }
    while (starts.len() as u32) + held < missing {
        starts.push(None);
    }
    for on in starts {
        decision.actions.push(Action::Start {
            app: want.name.clone(),
            version: want.version,
            on,
        });
    }
    if let Some(node) = away {
        decision
            .waiting
            .insert(want.name.clone(), Wait::NodeAway { node });
    }
}

/// The live instances that each fill a slot (not draining, not being
/// stopped, and of a replacing pair the replacement), each with the live
/// instances it takes over from.
fn slots<'a>(live: &[&'a Instance], stopping: &HashSet<InstanceId>) -> Vec<Slot<'a>> {
    let active: Vec<&Instance> = live
        .iter()
        .copied()
        .filter(|i| {
            !i.state.is_terminal()
                && i.state != InstanceState::Draining
                && !stopping.contains(&i.id)
        })
        .collect();
    let ids: HashSet<InstanceId> = active.iter().map(|i| i.id).collect();
    let taken_over: HashSet<InstanceId> = active
        .iter()
        .flat_map(|i| i.replaces.into_iter().chain(i.relieves))
        .collect();
    let by_id: BTreeMap<InstanceId, &Instance> = active.iter().map(|i| (i.id, *i)).collect();
    active
        .iter()
        .filter(|i| !taken_over.contains(&i.id))
        .map(|i| Slot {
            instance: i,
            takes_over: taken_over_by(i, &by_id, &ids),
        })
        .collect()
}

/// Every live instance `instance` takes over from, directly or through a
/// chain of takeovers (a replacement of a replacement): the whole chain
/// fills one slot.
fn taken_over_by(
    instance: &Instance,
    by_id: &BTreeMap<InstanceId, &Instance>,
    ids: &HashSet<InstanceId>,
) -> Vec<InstanceId> {
    let mut found = Vec::new();
    let mut next: Vec<InstanceId> = instance
        .replaces
        .into_iter()
        .chain(instance.relieves)
        .collect();
    while let Some(old) = next.pop() {
        if old == instance.id || found.contains(&old) || !ids.contains(&old) {
            continue;
        }
        found.push(old);
        if let Some(older) = by_id.get(&old) {
            next.extend(older.replaces.into_iter().chain(older.relieves));
        }
    }
    found
}

/// One replica's worth of instances: usually one, two while one takes over
/// from another.
struct Slot<'a> {
    instance: &'a Instance,
    takes_over: Vec<InstanceId>,
}

/// The wait before the next start after `failures` failed replicas.
pub fn backoff_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(16);
    FAILURE_BACKOFF_MS
        .saturating_mul(1 << doublings)
        .min(FAILURE_BACKOFF_MAX_MS)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
