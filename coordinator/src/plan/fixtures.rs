//! Values the unit tests of the pure decisions build their worlds from.

use proptest::prelude::*;
use reef_proto::app::{Instance, InstanceState};
use reef_proto::job::{JobRecord, JobSpec, JobState};
use reef_proto::{InstanceId, JobId, NodeId};

/// An assigned job running `true`, placed nowhere yet.
pub(crate) fn job(spec: JobSpec) -> JobRecord {
    JobRecord {
        id: JobId::new(),
        spec,
        state: JobState::Assigned,
        alloc: None,
        node: None,
        submitted_at_ms: 0,
        started_at_ms: None,
        finished_at_ms: None,
        stop_requested: false,
        output_lines: None,
        usage: None,
        lost_on: Vec::new(),
        result: None,
        replica: None,
        verification: None,
        cron: None,
    }
}

/// A fresh instance of release `version` of `app` on `node`, created at 0.
pub(crate) fn instance(app: &str, version: u32, node: NodeId, state: InstanceState) -> Instance {
    Instance {
        id: InstanceId::new(),
        app: app.into(),
        version,
        node,
        state,
        port: None,
        replaces: None,
        relieves: None,
        gpus: Vec::new(),
        restarts: 0,
        message: None,
        event_seq: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

/// A dedicated, eligible node's record with nothing declared.
pub(crate) fn node_record(name: &str) -> reef_proto::node::NodeRecord {
    reef_proto::node::NodeRecord {
        id: NodeId::new(),
        name: name.into(),
        labels: Default::default(),
        resources: Default::default(),
        version: "1".into(),
        started_at_ms: 0,
        registered_at_ms: 0,
        sealing_key: [0; 32],
        gpus: Vec::new(),
        trust: Default::default(),
        eligibility: Default::default(),
        proxy_addr: None,
        sandbox: true,
        job_network: false,
        public_http: None,
        postgres_versions: Vec::new(),
    }
}

/// Any state a live (not yet finished) instance can be in.
pub(crate) fn live_state() -> impl Strategy<Value = InstanceState> {
    prop_oneof![
        Just(InstanceState::Assigned),
        Just(InstanceState::Preparing),
        Just(InstanceState::Starting),
        Just(InstanceState::Healthy),
        Just(InstanceState::Unhealthy),
        Just(InstanceState::Draining),
        Just(InstanceState::Stopped),
    ]
}
