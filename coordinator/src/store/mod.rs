//! Cluster state in JetStream: the streams and KV buckets reef uses,
//! created idempotently, each bucket behind a handle typed by what it
//! stores ([`Bucket`]).
//!
//! - `bucket`: typed reads and compare-and-set writes.
//! - `history`: a bucket read through its stream in write order, from
//!   either end.
//! - `error`: what a failed read or write says.

pub(crate) mod bucket;
mod error;
mod history;

pub use bucket::{Bucket, Ciphertext, Stored};
pub use error::StoreError;
pub use history::{Next, Written};

use crate::error::{BoxError, CoordinatorError};
use async_nats::jetstream::{self, kv, stream};
use reef_proto::alloc::Allocation;
use reef_proto::app::{AppRecord, Instance, Release};
use reef_proto::app_routes::AppRoutes;
use reef_proto::certs::{AcmeAttempts, AcmeChallenge, CertRecord};
use reef_proto::cron::{CronClaim, CronRecord};
use reef_proto::job::JobRecord;
use reef_proto::leader::{Checkpoint, LeaderLease, NodeStatuses};
use reef_proto::members::{JoinTokenRecord, Member};
use reef_proto::node::NodeRecord;
use reef_proto::servers::ServerRecord;
use reef_proto::subjects;
use std::time::Duration;

/// How streams and buckets are created.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Copies of every stream and bucket (1 for a single server, 3 in production).
    pub replicas: usize,
    /// Upper bound of the logs stream; the oldest lines are dropped beyond it.
    pub logs_max_bytes: i64,
    /// How long log lines are kept.
    pub logs_max_age: Duration,
    /// How long audit entries are kept.
    pub audit_max_age: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            logs_max_bytes: 1 << 30,
            logs_max_age: Duration::from_secs(7 * 24 * 3600),
            audit_max_age: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// Upper bound of the audit stream; the oldest entries go beyond it, so a
/// flood of refused calls cannot fill a server's disk.
pub const AUDIT_MAX_BYTES: i64 = 1 << 30;

/// How long the cluster's events are kept, and their upper bound.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
pub const EVENTS_MAX_BYTES: i64 = 256 << 20;

/// How long an ACME challenge answer stays in its bucket at most.
pub const CHALLENGE_MAX_AGE: Duration = Duration::from_secs(600);

/// Handles on every bucket the coordinator reads or writes.
#[derive(Clone)]
pub struct Store {
    pub js: jetstream::Context,
    pub jobs: Bucket<JobRecord>,
    pub allocs: Bucket<Allocation>,
    pub nodes: Bucket<NodeRecord>,
    pub apps: Bucket<AppRecord>,
    pub releases: Bucket<Release>,
    pub instances: Bucket<Instance>,
    /// Secret values, encrypted with the cluster key.
    pub secrets: Bucket<Ciphertext>,
    /// Where each app's managed services run (pinned to their node).
    pub services: Bucket<reef_proto::services::ServiceRecord>,
    /// Each app's healthy instances and their nodes' proxies (the leader writes it).
    pub routes: Bucket<AppRoutes>,
    /// The coordinator leadership lease.
    pub leader: Bucket<LeaderLease>,
    /// The nodes as the leader last saw them (in the leader bucket).
    pub node_statuses: Bucket<NodeStatuses>,
    /// Where the next leader starts (in the leader bucket).
    pub checkpoints: Bucket<Checkpoint>,
    /// TLS certificates (keys named by [`reef_proto::certs::cert_key`]).
    pub certs: Bucket<CertRecord>,
    /// The ACME accounts, encrypted with the cluster key (in the
    /// certificates bucket, under `_acme-account.<hash>`).
    pub acme_accounts: Bucket<Ciphertext>,
    /// Failed ACME orders per domain (in the certificates bucket, under
    /// `_acme-attempts.<domain>`).
    pub acme_attempts: Bucket<AcmeAttempts>,
    /// ACME HTTP-01 answers while an order is validated.
    pub challenges: Bucket<AcmeChallenge>,
    /// Credential holders by public key, and revocations.
    pub members: Bucket<Member>,
    /// Join tokens.
    pub tokens: Bucket<JoinTokenRecord>,
    /// The cluster's servers (`reef server`).
    pub servers: Bucket<ServerRecord>,
    /// Periodic jobs, by name.
    pub crons: Bucket<CronRecord>,
    /// The claim on each tick of a periodic job, kept
    /// [`reef_proto::cron::CLAIM_MAX_AGE_MS`].
    pub cron_ticks: Bucket<CronClaim>,
    /// Webhooks for the cluster's events, by name.
    pub webhooks: Bucket<reef_proto::notify::Webhook>,
    pub artifacts: async_nats::jetstream::object_store::ObjectStore,
    pub backups: Bucket<reef_proto::backup::BackupRecord>,
    /// App backups' encrypted parts.
    pub backup_parts: async_nats::jetstream::object_store::ObjectStore,
}

fn setup_error(
    what: &str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> CoordinatorError {
    CoordinatorError::setup(what, err)
}

/// Creates (or opens) every stream and bucket. Safe to run from several
/// coordinators at once.
pub async fn ensure(
    js: jetstream::Context,
    config: &StoreConfig,
) -> Result<Store, CoordinatorError> {
    let max_message = reef_proto::envelope::MAX_MESSAGE_BYTES as i32;
    let streams = [
        stream::Config {
            name: subjects::ASSIGN_STREAM.into(),
            subjects: vec![subjects::ASSIGN_WILDCARD.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_message_size: max_message,
            duplicate_window: Duration::from_secs(120),
            num_replicas: config.replicas,
            ..Default::default()
        },
        stream::Config {
            name: subjects::EVENTS_STREAM.into(),
            subjects: vec![subjects::EVENTS_WILDCARD.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_message_size: max_message,
            duplicate_window: Duration::from_secs(120),
            num_replicas: config.replicas,
            ..Default::default()
        },
        stream::Config {
            name: subjects::LOGS_STREAM.into(),
            subjects: vec![subjects::LOGS_WILDCARD.into()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_bytes: config.logs_max_bytes,
            max_age: config.logs_max_age,
            max_message_size: max_message,
            num_replicas: config.replicas,
            ..Default::default()
        },
        stream::Config {
            name: subjects::CLUSTER_EVENTS_STREAM.into(),
            subjects: vec![subjects::CLUSTER_EVENTS_WILDCARD.into()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_bytes: EVENTS_MAX_BYTES,
            max_age: EVENTS_MAX_AGE,
            max_message_size: max_message,
            duplicate_window: Duration::from_secs(120),
            num_replicas: config.replicas,
            ..Default::default()
        },
        stream::Config {
            name: subjects::AUDIT_STREAM.into(),
            subjects: vec![subjects::AUDIT_WILDCARD.into()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_bytes: AUDIT_MAX_BYTES,
            max_age: config.audit_max_age,
            max_message_size: max_message,
            duplicate_window: Duration::from_secs(120),
            num_replicas: config.replicas,
            ..Default::default()
        },
    ];
    for cfg in streams {
        let name = cfg.name.clone();
        js.get_or_create_stream(cfg)
            .await
            .map_err(|e| setup_error(&format!("stream {name}"), e))?;
    }
    let bucket = |name: &str| kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_value_size: max_message,
        num_replicas: config.replicas,
        ..Default::default()
    };
    let certs = open_bucket(&js, bucket(subjects::CERTS_BUCKET)).await?;
    let leader = open_bucket(&js, bucket(subjects::LEADER_BUCKET)).await?;
    Ok(Store {
        jobs: Bucket::new(open_bucket(&js, bucket(subjects::JOBS_BUCKET)).await?),
        allocs: Bucket::new(open_bucket(&js, bucket(subjects::ALLOCS_BUCKET)).await?),
        nodes: Bucket::new(open_bucket(&js, bucket(subjects::NODES_BUCKET)).await?),
        apps: Bucket::new(open_bucket(&js, bucket(subjects::APPS_BUCKET)).await?),
        releases: Bucket::new(open_bucket(&js, bucket(subjects::RELEASES_BUCKET)).await?),
        instances: Bucket::new(open_bucket(&js, bucket(subjects::INSTANCES_BUCKET)).await?),
        secrets: Bucket::new(open_bucket(&js, bucket(subjects::SECRETS_BUCKET)).await?),
        routes: Bucket::new(open_bucket(&js, bucket(subjects::ROUTES_BUCKET)).await?),
        node_statuses: Bucket::new(leader.clone()),
        checkpoints: Bucket::new(leader.clone()),
        leader: Bucket::new(leader),
        acme_accounts: Bucket::new(certs.clone()),
        acme_attempts: Bucket::new(certs.clone()),
        certs: Bucket::new(certs),
        members: Bucket::new(open_bucket(&js, bucket(subjects::MEMBERS_BUCKET)).await?),
        tokens: Bucket::new(open_bucket(&js, bucket(subjects::TOKENS_BUCKET)).await?),
        servers: Bucket::new(open_bucket(&js, bucket(subjects::SERVERS_BUCKET)).await?),
        crons: Bucket::new(open_bucket(&js, bucket(subjects::CRON_BUCKET)).await?),
        webhooks: Bucket::new(open_bucket(&js, bucket(subjects::NOTIFY_BUCKET)).await?),
        services: Bucket::new(open_bucket(&js, bucket(subjects::SERVICES_BUCKET)).await?),
        cron_ticks: Bucket::new(
            open_bucket(
                &js,
                kv::Config {
                    // A claim matters until its tick can no longer run late.
                    max_age: Duration::from_millis(reef_proto::cron::CLAIM_MAX_AGE_MS),
                    ..bucket(subjects::CRON_TICKS_BUCKET)
                },
            )
            .await?,
        ),
        challenges: Bucket::new(
            open_bucket(
                &js,
                kv::Config {
                    // An order cut short cannot retract its answers; they go by themselves.
                    max_age: CHALLENGE_MAX_AGE,
                    ..bucket(subjects::CHALLENGES_BUCKET)
                },
            )
            .await?,
        ),
        artifacts: open_object_store(
            &js,
            subjects::ARTIFACTS_STORE,
            "release artifacts, named by sha256",
            config.replicas,
        )
        .await?,
        backups: Bucket::new(open_bucket(&js, bucket(subjects::BACKUPS_BUCKET)).await?),
        backup_parts: open_object_store(
            &js,
            subjects::BACKUPS_STORE,
            "app backups' encrypted parts",
            config.replicas,
        )
        .await?,
        js,
    })
}

async fn open_bucket(
    js: &jetstream::Context,
    cfg: kv::Config,
) -> Result<kv::Store, CoordinatorError> {
    let name = cfg.bucket.clone();
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    match js.create_key_value(cfg).await {
        Ok(store) => Ok(store),
        // Another coordinator created it between our two calls.
        Err(_) => js
            .get_key_value(&name)
            .await
            .map_err(|e| setup_error(&format!("bucket {name}"), e)),
    }
}

async fn open_object_store(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    replicas: usize,
) -> Result<async_nats::jetstream::object_store::ObjectStore, CoordinatorError> {
    use async_nats::jetstream::object_store;
    if let Ok(store) = js.get_object_store(name).await {
        return Ok(store);
    }
    let created = js
        .create_object_store(object_store::Config {
            bucket: name.to_string(),
            description: Some(description.into()),
            num_replicas: replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        Err(_) => js
            .get_object_store(name)
            .await
            .map_err(|e| setup_error(&format!("object store {name}"), e)),
    }
}

/// Creates node `node`'s durable assignment consumer if it is missing. The
/// coordinators create it, so a node's credential needs no right to create
/// consumers and can bind only its own.
pub async fn ensure_assign_consumer(
    js: &jetstream::Context,
    node: reef_proto::NodeId,
) -> Result<(), CoordinatorError> {
    use jetstream::consumer;
    let name = subjects::assign_consumer(node);
    let setup = |e: BoxError| CoordinatorError::Setup {
        what: format!("the assignment consumer of node {node}"),
        source: e,
    };
    let stream = js
        .get_stream(subjects::ASSIGN_STREAM)
        .await
        .map_err(|e| setup(e.into()))?;
    stream
        .get_or_create_consumer::<consumer::pull::Config>(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects::assign(node),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| setup(e.into()))?;
    Ok(())
}
