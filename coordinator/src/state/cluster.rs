//! The coordinator's working view of the cluster: registered nodes with their
//! liveness and committed resources, live allocations and app instances,
//! and pending jobs. It is rebuilt from the KV buckets on start; the buckets
//! stay the truth.
//!
//! Its fields are private: every change goes through a method here, so the
//! writers of, say, the live instances are the callers of
//! [`Cluster::commit_instance`], [`Cluster::refresh_instance`] and
//! [`Cluster::release_instance`].

use crate::plan::scheduler::Candidate;
use crate::plan::verdict::Standing;
use reef_proto::alloc::Allocation;
use reef_proto::api::{NodeState, NodeStatus};
use reef_proto::app::Instance;
use reef_proto::job::Resources;
use reef_proto::job::{JobRecord, JobSpec};
use reef_proto::node::{Eligibility, NodeRecord};
use reef_proto::{AllocId, InstanceId, JobId, NodeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

pub(crate) struct NodeEntry {
    pub record: NodeRecord,
    /// When this coordinator last heard a heartbeat (None: not since it started).
    pub last_seen: Option<Instant>,
    pub last_seen_ms: u64,
    pub allocated: Resources,
    pub allocations: u32,
    /// Indices of this node's GPUs given to live allocations.
    pub gpus_in_use: BTreeSet<u32>,
    /// Declared lost: its work was moved or ended. Cleared when it is heard again.
    pub lost: bool,
    /// Its agent's connection was closed from its side: lost at the next
    /// check, without waiting out the grace. Cleared when it is heard again.
    pub gone: bool,
    /// What the node's last heartbeat said it runs (jobs and instances).
    pub running: u32,
    /// Its last heartbeat said its owner paused it: no new work.
    pub paused: bool,
    /// The managed services its last heartbeat said it runs.
    pub services: Vec<reef_proto::services::ServiceHealth>,
}

/// A job waiting for room, as kept in memory between placement passes.
pub(crate) struct Pending {
    pub spec: JobSpec,
    pub reason: String,
    /// Nodes where earlier attempts were lost.
    pub avoid: BTreeSet<NodeId>,
    /// The replicated job it is a copy of: it must not go where another
    /// copy went.
    pub group: Option<JobId>,
}

/// What hearing from a node told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Not in the view.
    Unknown,
    Known,
    /// Declared lost, and heard from again.
    Back,
}

pub(crate) struct Cluster {
    nodes: HashMap<NodeId, NodeEntry>,
    live: HashMap<AllocId, Allocation>,
    /// Last known KV revisions of live allocations, and the records of their
    /// jobs: caches that save a read per event (see `Bucket::modify_from`).
    alloc_revisions: HashMap<AllocId, u64>,
    live_jobs: HashMap<JobId, (JobRecord, u64)>,
    /// Live app instances, with the resources reserved for each.
    instances: HashMap<InstanceId, (Instance, Resources)>,
    /// Jobs waiting for a node, oldest first (ids are time-ordered), with the
    /// reason last written to their record.
    pending: BTreeMap<JobId, Pending>,
    /// Undecided replicated jobs, with the nodes their copies went to.
    replica_nodes: HashMap<JobId, BTreeSet<NodeId>>,
    /// Each node's standing from the verdicts on replicated jobs.
    standing: HashMap<NodeId, Standing>,
    grace: Duration,
    /// Placements made, which picks where each sampled scan starts.
    scans: std::sync::atomic::AtomicUsize,
}

impl Cluster {
    pub fn new(grace: Duration) -> Self {
        Self {
            nodes: HashMap::new(),
            live: HashMap::new(),
            alloc_revisions: HashMap::new(),
            live_jobs: HashMap::new(),
            instances: HashMap::new(),
            pending: BTreeMap::new(),
            replica_nodes: HashMap::new(),
            standing: HashMap::new(),
            grace,
            scans: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Heard from within the grace period, and not gone or lost since.
    fn is_ready(&self, entry: &NodeEntry, now: Instant) -> bool {
        !entry.gone
            && !entry.lost
            && entry
                .last_seen
                .is_some_and(|seen| now.duration_since(seen) <= self.grace)
    }

    /// Whether `node` is registered and heard from within the grace period.
    pub fn node_ready(&self, node: NodeId, now: Instant) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|entry| self.is_ready(entry, now))
    }

    /// Adds or refreshes a node record, keeping its liveness and accounting.
    pub fn upsert_node(&mut self, record: NodeRecord) {
        match self.nodes.get_mut(&record.id) {
            Some(entry) => entry.record = record,
            None => {
                self.nodes.insert(
                    record.id,
                    NodeEntry {
                        record,
                        last_seen: None,
                        last_seen_ms: 0,
                        allocated: Resources {
                            cpu_millis: 0,
                            memory_bytes: 0,
                        },
                        allocations: 0,
                        gpus_in_use: BTreeSet::new(),
                        lost: false,
                        gone: false,
                        running: 0,
                        paused: false,
                        services: Vec::new(),
                    },
                );
            }
        }
    }

    /// Marks `node` gone (its agent's connection closed from its side): it
    /// is lost at the next check, whatever the grace. False if unknown or
    /// already lost.
    pub fn gone(&mut self, node: NodeId) -> bool {
        match self.nodes.get_mut(&node) {
            Some(entry) if !entry.lost && !entry.gone => {
                entry.gone = true;
                true
            }
            _ => false,
        }
    }

    /// Records a heartbeat; false if the node is not known here.
    pub fn heard_from(&mut self, node: NodeId, now: Instant, now_ms: u64) -> Heard {
        match self.nodes.get_mut(&node) {
            Some(entry) => {
                entry.last_seen = Some(now);
                entry.last_seen_ms = now_ms;
                entry.gone = false;
                if entry.lost {
                    tracing::info!(%node, name = %entry.record.name, "lost node is back");
                    entry.lost = false;
                    return Heard::Back;
                }
                Heard::Known
            }
            None => Heard::Unknown,
        }
    }

    /// Nodes silent for longer than the grace period (or never heard since
    /// `since`, this coordinator's start, for that long) that are not yet
    /// declared lost. Marks them lost.
    pub fn newly_lost(&mut self, now: Instant, since: Instant) -> Vec<NodeId> {
        let grace = self.grace;
        let mut lost = Vec::new();
        for entry in self.nodes.values_mut() {
            let silent = entry.gone
                || match entry.last_seen {
                    Some(seen) => now.duration_since(seen) > grace,
                    None => now.duration_since(since) > grace * 2,
                };
            if silent && !entry.lost {
                entry.lost = true;
                lost.push(entry.record.id);
            }
        }
        lost
    }

    pub fn candidates(&self, now: Instant) -> Vec<Candidate<'_>> {
        self.nodes
            .values()
            .map(|entry| Candidate {
                id: entry.record.id,
                name: &entry.record.name,
                ready: self.is_ready(entry, now),
                labels: &entry.record.labels,
                capacity: entry.record.resources,
                allocated: entry.allocated,
                allocations: entry.allocations,
                gpus: &entry.record.gpus,
                gpus_in_use: &entry.gpus_in_use,
                trust: entry.record.trust,
                eligible: entry.record.eligibility == Eligibility::Eligible && !entry.paused,
                job_network: entry.record.job_network,
                distrust: self
                    .standing
                    .get(&entry.record.id)
                    .map_or(0.0, |s| s.distrust()),
            })
            .collect()
    }

    /// Where the next sampled scan of the candidates starts: a different
    /// place every time, so sampled placements spread over every node.
    pub fn scan_start(&self) -> usize {
        // A large odd stride visits every offset before repeating.
        const STRIDE: usize = 0x9E37_79B9;
        self.scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(STRIDE)
    }

    fn reserve(&mut self, node: NodeId, resources: Resources) {
        if let Some(node) = self.nodes.get_mut(&node) {
            node.allocated.cpu_millis += resources.cpu_millis;
            node.allocated.memory_bytes += resources.memory_bytes;
            node.allocations += 1;
        }
    }

    fn unreserve(&mut self, node: NodeId, resources: Resources) {
        if let Some(node) = self.nodes.get_mut(&node) {
            node.allocated.cpu_millis = node
                .allocated
                .cpu_millis
                .saturating_sub(resources.cpu_millis);
            node.allocated.memory_bytes = node
                .allocated
                .memory_bytes
                .saturating_sub(resources.memory_bytes);
            node.allocations = node.allocations.saturating_sub(1);
        }
    }

    /// Counts a live allocation against its node. Idempotent per allocation id.
    pub fn commit(&mut self, alloc: Allocation) {
        if let Some(known) = self.live.get_mut(&alloc.id) {
            *known = alloc;
            return;
        }
        self.reserve(alloc.node, alloc.resources);
        if let Some(node) = self.nodes.get_mut(&alloc.node) {
            node.gpus_in_use.extend(alloc.gpus.iter().copied());
        }
        self.live.insert(alloc.id, alloc);
    }

    /// Releases a finished allocation's resources and forgets its caches.
    pub fn release(&mut self, alloc: AllocId) -> Option<Allocation> {
        self.alloc_revisions.remove(&alloc);
        let alloc = self.live.remove(&alloc)?;
        self.live_jobs.remove(&alloc.job);
        self.unreserve(alloc.node, alloc.resources);
        if let Some(node) = self.nodes.get_mut(&alloc.node) {
            for gpu in &alloc.gpus {
                node.gpus_in_use.remove(gpu);
            }
        }
        Some(alloc)
    }

    /// Counts a live app instance (needing `resources`) against its node.
    /// Idempotent per instance id.
    pub fn commit_instance(&mut self, instance: Instance, resources: Resources) {
        if let Some(known) = self.instances.get_mut(&instance.id) {
            known.0 = instance;
            return;
        }
        self.reserve(instance.node, resources);
        if let Some(node) = self.nodes.get_mut(&instance.node) {
            node.gpus_in_use.extend(instance.gpus.iter().copied());
        }
        self.instances.insert(instance.id, (instance, resources));
    }

    /// Releases a finished instance's resources.
    pub fn release_instance(&mut self, id: InstanceId) -> Option<Instance> {
        let (instance, resources) = self.instances.remove(&id)?;
        self.unreserve(instance.node, resources);
        // A replacement on the same node inherits its predecessor's GPUs:
        // a GPU is free only once nothing live on the node holds it.
        let held: BTreeSet<u32> = self
            .instances
            .values()
            .filter(|(i, _)| i.node == instance.node)
            .flat_map(|(i, _)| i.gpus.iter().copied())
            .chain(
                self.live
                    .values()
                    .filter(|a| a.node == instance.node)
                    .flat_map(|a| a.gpus.iter().copied()),
            )
            .collect();
        if let Some(node) = self.nodes.get_mut(&instance.node) {
            for gpu in &instance.gpus {
                if !held.contains(gpu) {
                    node.gpus_in_use.remove(gpu);
                }
            }
        }
        Some(instance)
    }

    /// A node's name, or its id when it is not in the view.
    pub fn node_name(&self, id: NodeId) -> String {
        self.nodes
            .get(&id)
            .map_or_else(|| id.to_string(), |n| n.record.name.clone())
    }

    /// A registered node.
    pub fn node(&self, id: NodeId) -> Option<&NodeEntry> {
        self.nodes.get(&id)
    }

    /// Every registered node.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values()
    }

    /// Notes what a node's heartbeat says it runs and whether it is paused.
    pub fn note_heartbeat(
        &mut self,
        node: NodeId,
        running: u32,
        paused: bool,
        services: Vec<reef_proto::services::ServiceHealth>,
    ) {
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry.running = running;
            entry.paused = paused;
            entry.services = reef_proto::services::ServiceHealth::bounded(services);
        }
    }

    /// Sets a node's eligibility as stored.
    pub fn set_eligibility(&mut self, node: NodeId, eligibility: Eligibility) {
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry.record.eligibility = eligibility;
        }
    }

    /// Takes back a loss that could not be carried out: the next check
    /// declares the node lost again.
    pub fn unmark_lost(&mut self, node: NodeId) {
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry.lost = false;
        }
    }

    /// Forgets a removed node.
    pub fn remove_node(&mut self, node: NodeId) {
        self.nodes.remove(&node);
    }

    /// A live allocation.
    pub fn alloc(&self, id: AllocId) -> Option<&Allocation> {
        self.live.get(&id)
    }

    /// Every live allocation.
    pub fn allocs(&self) -> impl Iterator<Item = &Allocation> {
        self.live.values()
    }

    /// A live allocation with its last known revision, when both are known.
    pub fn cached_alloc(&self, id: AllocId) -> Option<(Allocation, u64)> {
        self.live
            .get(&id)
            .cloned()
            .zip(self.alloc_revisions.get(&id).copied())
    }

    /// Remembers the revision an allocation was last written at.
    pub fn note_alloc_revision(&mut self, id: AllocId, revision: u64) {
        self.alloc_revisions.insert(id, revision);
    }

    /// Takes a live job's record as last written, if cached.
    pub fn take_cached_job(&mut self, id: JobId) -> Option<(JobRecord, u64)> {
        self.live_jobs.remove(&id)
    }

    /// Caches a live job's record as written at `revision`.
    pub fn cache_job(&mut self, job: JobRecord, revision: u64) {
        self.live_jobs.insert(job.id, (job, revision));
    }

    /// A live app instance.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(&id).map(|(i, _)| i)
    }

    /// Every live app instance.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values().map(|(i, _)| i)
    }

    /// The live instances of `app`.
    pub fn instances_of<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a Instance> {
        self.instances().filter(move |i| i.app == app)
    }

    /// Replaces a live instance's record with a newer one (its resources
    /// stay reserved); an instance not live here is left out.
    pub fn refresh_instance(&mut self, instance: &Instance) {
        if let Some((known, _)) = self.instances.get_mut(&instance.id) {
            *known = instance.clone();
        }
    }

    /// The jobs waiting for a node, oldest first.
    pub fn pending(&self) -> &BTreeMap<JobId, Pending> {
        &self.pending
    }

    /// Puts a job in the waiting list (or updates its entry).
    pub fn wait(&mut self, id: JobId, pending: Pending) {
        self.pending.insert(id, pending);
    }

    /// Takes a job off the waiting list.
    pub fn unwait(&mut self, id: JobId) -> Option<Pending> {
        self.pending.remove(&id)
    }

    /// The nodes an undecided replicated job's copies went to.
    pub fn copies_went_to(&self, group: JobId) -> Option<&BTreeSet<NodeId>> {
        self.replica_nodes.get(&group)
    }

    /// Notes that a copy of `group` went to `node`.
    pub fn note_copy(&mut self, group: JobId, node: NodeId) {
        self.replica_nodes.entry(group).or_default().insert(node);
    }

    /// Forgets a replicated job that was decided.
    pub fn forget_group(&mut self, group: JobId) {
        self.replica_nodes.remove(&group);
    }

    /// Counts a verdict's word on `node`.
    pub fn count_standing(&mut self, node: NodeId, agreed: bool) {
        self.standing.entry(node).or_default().count(agreed);
    }

    /// Takes up the replicated jobs and standings read at the start of a term.
    pub fn load_replicated(
        &mut self,
        groups: HashMap<JobId, BTreeSet<NodeId>>,
        standing: HashMap<NodeId, Standing>,
    ) {
        self.replica_nodes = groups;
        self.standing = standing;
    }

    /// Every node's standing from the verdicts on replicated jobs.
    pub fn standings(&self) -> impl Iterator<Item = (NodeId, &Standing)> {
        self.standing.iter().map(|(node, s)| (*node, s))
    }

    /// The undecided replicated jobs and the nodes their copies went to.
    pub fn groups(&self) -> impl Iterator<Item = (JobId, &BTreeSet<NodeId>)> {
        self.replica_nodes
            .iter()
            .map(|(group, nodes)| (*group, nodes))
    }

    /// How many nodes, live allocations and pending jobs the view holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.live.len(), self.pending.len())
    }

    pub fn node_statuses(&self, now: Instant) -> Vec<NodeStatus> {
        let mut out: Vec<NodeStatus> = self
            .nodes
            .values()
            .map(|entry| NodeStatus {
                record: entry.record.clone(),
                state: if self.is_ready(entry, now) {
                    NodeState::Ready
                } else {
                    NodeState::Down
                },
                last_seen_ms: entry.last_seen_ms,
                allocated: entry.allocated,
                allocations: entry.allocations,
                paused: entry.paused,
                services: entry.services.clone(),
                verdicts: self
                    .standing
                    .get(&entry.record.id)
                    .map(|s| (s.agreed, s.disagreed)),
            })
            .collect();
        out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        out
    }
}
