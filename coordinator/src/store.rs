//! Cluster state in JetStream: the streams and KV buckets reef uses, created
//! idempotently, and typed reads and compare-and-set writes over them.

use crate::error::CoordinatorError;
use async_nats::jetstream::{self, kv, stream};
use reef_proto::{decode, encode, subjects, Message};
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            logs_max_bytes: 1 << 30,
            logs_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How long an ACME challenge answer stays in its bucket at most.
pub const CHALLENGE_MAX_AGE: Duration = Duration::from_secs(600);

/// Handles on every bucket the coordinator writes.
#[derive(Clone)]
pub struct Store {
    pub js: jetstream::Context,
    pub jobs: kv::Store,
    pub allocs: kv::Store,
    pub nodes: kv::Store,
    pub apps: kv::Store,
    pub releases: kv::Store,
    pub instances: kv::Store,
    pub secrets: kv::Store,
    /// Each app's healthy instances and their nodes' proxies (the leader writes it).
    pub routes: kv::Store,
    /// The coordinator leadership lease.
    pub leader: kv::Store,
    /// TLS certificates, and the ACME account.
    pub certs: kv::Store,
    /// ACME HTTP-01 answers while an order is validated.
    pub challenges: kv::Store,
    /// Credential holders by public key, and revocations.
    pub members: kv::Store,
    /// Join tokens.
    pub tokens: kv::Store,
    /// The cluster's servers (`reef server`).
    pub servers: kv::Store,
    pub artifacts: async_nats::jetstream::object_store::ObjectStore,
}

fn setup_error(what: &str, err: impl std::fmt::Display) -> CoordinatorError {
    CoordinatorError::Setup {
        what: what.to_string(),
        reason: err.to_string(),
    }
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
    Ok(Store {
        jobs: open_bucket(&js, bucket(subjects::JOBS_BUCKET)).await?,
        allocs: open_bucket(&js, bucket(subjects::ALLOCS_BUCKET)).await?,
        nodes: open_bucket(&js, bucket(subjects::NODES_BUCKET)).await?,
        apps: open_bucket(&js, bucket(subjects::APPS_BUCKET)).await?,
        releases: open_bucket(&js, bucket(subjects::RELEASES_BUCKET)).await?,
        instances: open_bucket(&js, bucket(subjects::INSTANCES_BUCKET)).await?,
        secrets: open_bucket(&js, bucket(subjects::SECRETS_BUCKET)).await?,
        routes: open_bucket(&js, bucket(subjects::ROUTES_BUCKET)).await?,
        leader: open_bucket(&js, bucket(subjects::LEADER_BUCKET)).await?,
        certs: open_bucket(&js, bucket(subjects::CERTS_BUCKET)).await?,
        members: open_bucket(&js, bucket(subjects::MEMBERS_BUCKET)).await?,
        tokens: open_bucket(&js, bucket(subjects::TOKENS_BUCKET)).await?,
        servers: open_bucket(&js, bucket(subjects::SERVERS_BUCKET)).await?,
        challenges: open_bucket(
            &js,
            kv::Config {
                // An order cut short cannot retract its answers; they go by themselves.
                max_age: CHALLENGE_MAX_AGE,
                ..bucket(subjects::CHALLENGES_BUCKET)
            },
        )
        .await?,
        artifacts: open_object_store(&js, config.replicas).await?,
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
    replicas: usize,
) -> Result<async_nats::jetstream::object_store::ObjectStore, CoordinatorError> {
    use async_nats::jetstream::object_store;
    let name = subjects::ARTIFACTS_STORE;
    if let Ok(store) = js.get_object_store(name).await {
        return Ok(store);
    }
    let created = js
        .create_object_store(object_store::Config {
            bucket: name.to_string(),
            description: Some("release artifacts, named by sha256".into()),
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

/// Reads and decodes one value with its revision.
pub async fn get<T: Message>(
    kv: &kv::Store,
    key: &str,
) -> Result<Option<(T, u64)>, CoordinatorError> {
    let Some(entry) = kv.entry(key).await.map_err(CoordinatorError::store)? else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    let value = decode::<T>(&entry.value).map_err(|e| CoordinatorError::Corrupt {
        what: format!("{}/{key}", kv.name),
        reason: e.to_string(),
    })?;
    Ok(Some((value, entry.revision)))
}

/// Creates `key`, failing if it already exists.
pub async fn create<T: Message>(
    kv: &kv::Store,
    key: &str,
    value: &T,
) -> Result<u64, CoordinatorError> {
    let bytes = encode(value).map_err(CoordinatorError::store)?;
    kv.create(key, bytes).await.map_err(CoordinatorError::store)
}

/// Writes `value` only if `key` is still at `revision`; `Ok(None)` on conflict.
pub async fn put_if<T: Message>(
    kv: &kv::Store,
    key: &str,
    value: &T,
    revision: u64,
) -> Result<Option<u64>, CoordinatorError> {
    let bytes = encode(value).map_err(CoordinatorError::store)?;
    match kv.update(key, bytes, revision).await {
        Ok(rev) => Ok(Some(rev)),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
        Err(e) => Err(CoordinatorError::store(e)),
    }
}

/// Read-modify-write with compare-and-set, retried on conflict. `change`
/// returns false to leave the value as it is. Returns the value as stored.
pub async fn modify<T: Message + Clone>(
    kv: &kv::Store,
    key: &str,
    change: impl FnMut(&mut T) -> bool,
) -> Result<Option<T>, CoordinatorError> {
    Ok(modify_from(kv, key, None, change)
        .await?
        .map(|(value, _)| value))
}

/// Like [`modify`], starting from a cached value and revision when there is
/// one, which saves a read when the cache is current. A stale cache costs one
/// failed write and then a read; a decision not to write is never taken on
/// cached data alone. Returns the value as stored and its revision.
pub async fn modify_from<T: Message + Clone>(
    kv: &kv::Store,
    key: &str,
    mut cached: Option<(T, u64)>,
    mut change: impl FnMut(&mut T) -> bool,
) -> Result<Option<(T, u64)>, CoordinatorError> {
    for _ in 0..16 {
        let from_cache = cached.is_some();
        let (mut value, revision) = match cached.take() {
            Some(hit) => hit,
            None => match get::<T>(kv, key).await? {
                Some(fresh) => fresh,
                None => return Ok(None),
            },
        };
        if !change(&mut value) {
            if from_cache {
                continue;
            }
            return Ok(Some((value, revision)));
        }
        if let Some(new_revision) = put_if(kv, key, &value, revision).await? {
            return Ok(Some((value, new_revision)));
        }
    }
    Err(CoordinatorError::Conflict {
        key: format!("{}/{key}", kv.name),
    })
}

/// Every key in a bucket.
pub async fn keys(kv: &kv::Store) -> Result<Vec<String>, CoordinatorError> {
    use futures::TryStreamExt;
    kv.keys()
        .await
        .map_err(CoordinatorError::store)?
        .try_collect()
        .await
        .map_err(CoordinatorError::store)
}

/// Every value in a bucket; corrupt entries are logged and skipped.
pub async fn all<T: Message>(kv: &kv::Store) -> Result<Vec<T>, CoordinatorError> {
    use futures::StreamExt;
    let keys = keys(kv).await?;
    let values = futures::stream::iter(keys)
        .map(|key| async move { (get::<T>(kv, &key).await, key) })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::with_capacity(values.len());
    for (value, key) in values {
        match value {
            Ok(Some((v, _))) => out.push(v),
            Ok(None) => {}
            Err(CoordinatorError::Corrupt { what, reason }) => {
                tracing::warn!(%what, %reason, key, "skipping corrupt entry");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
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
    let stream = js
        .get_stream(subjects::ASSIGN_STREAM)
        .await
        .map_err(CoordinatorError::store)?;
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
        .map_err(CoordinatorError::store)?;
    Ok(())
}
