//! The subjects each role may publish and subscribe to, enforced by the
//! NATS server from the user's JWT. `docs/security.md` shows the same table.
//!
//! Allow lists only: what a role is not given, it cannot do. Every client
//! uses its own inbox prefix ([`subjects::inbox_prefix`]) and may subscribe
//! only to that one, so no client reads another's replies.

use crate::jwt::{Permission, Responses};
use reef_proto::roles::Role;
use reef_proto::subjects;

/// What one credential may publish and subscribe to, and how much.
#[derive(Clone, Debug, PartialEq)]
pub struct Permissions {
    pub publish: Permission,
    pub subscribe: Permission,
    /// Whether it may answer requests sent to it.
    pub responses: Option<Responses>,
    pub limits: Limits,
}

/// Per-connection limits, so that one credential cannot exhaust a server;
/// -1 is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Subscriptions at once.
    pub subs: i64,
    /// The largest message it may publish, in bytes.
    pub payload: i64,
}

impl Limits {
    pub const NONE: Limits = Limits {
        subs: -1,
        payload: -1,
    };
}

/// The largest message reef sends, with room for headers.
const MESSAGE: i64 = reef_proto::envelope::MAX_MESSAGE_BYTES as i64 + 64 * 1024;

/// A node's place in the cluster, from its join token, never from itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeTrust {
    /// A server the operator runs: apps, routes, certificates.
    Dedicated,
    /// A lent machine: batch jobs only.
    Contributed,
}

fn allow(subjects: Vec<String>) -> Permission {
    Permission {
        allow: subjects,
        deny: Vec::new(),
    }
}

/// The JetStream API subjects that read a KV bucket or object store
/// (`stream` is its stream, `KV_<bucket>` or `OBJ_<store>`): look it up,
/// get entries, and watch it through an ephemeral consumer.
fn read_stream(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        format!("$JS.FC.{stream}.>"),
    ]
}

fn kv(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// An app's own credential (`[services.nats]`): its own subjects
/// (`app.<app>.>`) and its own inbox prefix, nothing of reef's.
pub fn app(app: &str) -> Permissions {
    let own = reef_proto::services::app_subjects(app).to_vec();
    Permissions {
        publish: allow(own.clone()),
        subscribe: allow(own),
        responses: None,
        limits: Limits {
            subs: 1024,
            payload: MESSAGE,
        },
    }
}

/// A node's permissions: its own assignments, events, heartbeats and logs;
/// registration under its own id; read access to what its work needs.
pub fn node(node: reef_proto::NodeId, trust: NodeTrust) -> Permissions {
    let id = node.to_string();
    let consumer = subjects::assign_consumer(node);
    let assign = subjects::ASSIGN_STREAM;
    let mut publish = vec![
        subjects::api_caller(Role::Node, &id),
        subjects::heartbeat(node),
        format!("reef.events.{id}.>"),
        subjects::node_logs(node),
        format!("$JS.API.INFO"),
        format!("$JS.API.STREAM.INFO.{assign}"),
        format!("$JS.API.CONSUMER.INFO.{assign}.{consumer}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{assign}.{consumer}"),
        format!("$JS.ACK.{assign}.{consumer}.>"),
    ];
    if trust == NodeTrust::Dedicated {
        for bucket in [
            subjects::ROUTES_BUCKET,
            subjects::CERTS_BUCKET,
            subjects::CHALLENGES_BUCKET,
            subjects::SERVICES_BUCKET,
        ] {
            publish.extend(read_stream(&kv(bucket)));
        }
        publish.extend(read_stream(&format!("OBJ_{}", subjects::ARTIFACTS_STORE)));
        // App backups: a dedicated node writes the parts it makes and reads
        // the parts it restores (encrypted: it cannot open one it made).
        publish.extend(read_stream(&format!("OBJ_{}", subjects::BACKUPS_STORE)));
        publish.push(format!("$O.{}.>", subjects::BACKUPS_STORE));
    }
    let mut subscribe = vec![
        format!("{}.>", subjects::inbox_prefix(Role::Node, &id)),
        subjects::doctor(node),
    ];
    if trust == NodeTrust::Dedicated {
        subscribe.push(subjects::backup(node));
    }
    Permissions {
        publish: allow(publish),
        subscribe: allow(subscribe),
        // Only to answer `reef doctor` and the leader's backup requests on
        // its own subjects.
        responses: Some(Responses { max: 1, ttl: 0 }),
        limits: Limits {
            subs: 256,
            payload: MESSAGE,
        },
    }
}

/// A join token's credential: it may ask to join under the token's id,
/// and nothing else; a server token's may also ask to join as a server,
/// which hands out the cluster's keys.
pub fn joiner(token: &str, server: bool) -> Permissions {
    let mut publish = vec![
        subjects::api(Role::Joiner, token, subjects::verbs::NODE_JOIN),
        "$JS.API.INFO".into(),
    ];
    if server {
        publish.push(subjects::api(
            Role::Joiner,
            token,
            subjects::verbs::SERVER_JOIN,
        ));
    }
    Permissions {
        publish: allow(publish),
        subscribe: allow(vec![format!(
            "{}.>",
            subjects::inbox_prefix(Role::Joiner, token)
        )]),
        responses: None,
        limits: Limits {
            subs: 8,
            payload: 64 * 1024,
        },
    }
}

/// A coordinator's permissions: the control plane's subjects and JetStream,
/// and answers to the requests it takes.
pub fn coordinator(name: &str) -> Permissions {
    Permissions {
        publish: allow(vec![
            "reef.>".into(),
            "$JS.API.>".into(),
            "$JS.ACK.>".into(),
            "$JS.FC.>".into(),
            "$KV.>".into(),
            "$O.>".into(),
        ]),
        subscribe: allow(vec![
            "reef.>".into(),
            format!("{}.>", subjects::inbox_prefix(Role::Coordinator, name)),
        ]),
        responses: Some(Responses { max: 1, ttl: 0 }),
        limits: Limits::NONE,
    }
}

/// A person's or a tool's permissions: API calls under its own role and
/// name, and the streams its role reads or writes directly.
pub fn user(role: Role, name: &str) -> Permissions {
    if role == Role::Admin {
        // Everything, the nats CLI's defaults included, for repairs.
        return Permissions {
            publish: allow(vec![">".into()]),
            subscribe: allow(vec![">".into()]),
            responses: None,
            limits: Limits::NONE,
        };
    }
    let logs = subjects::LOGS_STREAM;
    let mut publish = vec![subjects::api_caller(role, name), "$JS.API.INFO".into()];
    let log_filter = match role {
        Role::Deployer => Some("reef.logs.*.app.>".to_string()),
        Role::Submitter => Some(subjects::owned_job_logs(name)),
        Role::Viewer => Some("reef.logs.>".to_string()),
        _ => None,
    };
    if let Some(filter) = log_filter {
        publish.extend([
            format!("$JS.API.STREAM.INFO.{logs}"),
            format!("$JS.API.CONSUMER.CREATE.{logs}.*.{filter}"),
            format!("$JS.API.CONSUMER.INFO.{logs}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{logs}.>"),
            format!("$JS.API.CONSUMER.DELETE.{logs}.>"),
        ]);
    }
    // Following a job's state (`reef run`, `reef logs -f`) reads the jobs
    // bucket; following a deploy or a stop reads the instances bucket. A
    // submitter reads neither (the jobs bucket holds everyone's jobs): it
    // asks the coordinator about its own.
    let follows: &[&str] = match role {
        Role::Deployer => &[subjects::INSTANCES_BUCKET, subjects::JOBS_BUCKET],
        Role::Viewer => &[subjects::JOBS_BUCKET, subjects::INSTANCES_BUCKET],
        _ => &[],
    };
    for bucket in follows {
        publish.extend(read_stream(&kv(bucket)));
    }
    // The cluster's events (`reef events`) name nodes, apps and domains: a
    // deployer and a viewer read them, a submitter (who sees its own jobs
    // only) does not.
    if matches!(role, Role::Deployer | Role::Viewer) {
        publish.extend(read_stream(subjects::CLUSTER_EVENTS_STREAM));
    }
    if role == Role::Deployer {
        let store = format!("OBJ_{}", subjects::ARTIFACTS_STORE);
        publish.extend(read_stream(&store));
        publish.push(format!("$O.{}.>", subjects::ARTIFACTS_STORE));
    }
    let mut publish = allow(publish);
    if role == Role::Submitter {
        // Job logs only: not the apps'.
        publish.deny = vec![format!(
            "$JS.API.CONSUMER.CREATE.{logs}.*.reef.logs.*.app.>"
        )];
    }
    Permissions {
        publish,
        subscribe: allow(vec![format!("{}.>", subjects::inbox_prefix(role, name))]),
        responses: None,
        limits: Limits {
            subs: 128,
            payload: MESSAGE,
        },
    }
}
