//! The managed services this node runs for apps (`[services.postgres]`):
//! a task follows the services bucket (every key's latest entry, then each
//! change) and keeps one supervisor running for each record that names
//! this node and should run; a record that says the app was destroyed
//! stops it, and one that says its data goes also removes the service's
//! directory. The supervision itself is the same for every kind
//! (`supervisor.rs`); what is particular to a kind is in its own file
//! (`postgres.rs`), behind [`kind::Kind`].
//!
//! A service's files live in `<data-dir>/services/<app>.<kind>/`, owned by
//! a uid of the node's block kept for it alone (`postgres.<app>`, beside
//! the apps' uids): no app instance, which runs as its app's uid, can read
//! them.

mod kind;
mod postgres;
mod supervisor;
mod tunnel;

pub(crate) use tunnel::{forwarder, TunnelEnd};

/// Where the agent reaches `app`'s Postgres on this node as its superuser:
/// the unix socket's directory, and the superuser's name.
pub(crate) fn postgres_socket(data_dir: &std::path::Path, app: &str) -> (PathBuf, &'static str) {
    let dirs = Dirs::of(data_dir, app, ServiceKind::Postgres);
    (postgres::socket_dir(&dirs), postgres::SUPERUSER)
}

use crate::Agent;
use async_nats::jetstream::kv;
use futures::StreamExt;
use reef_proto::services::{ServiceDesired, ServiceEndpoint, ServiceKind, ServiceRecord};
use reef_proto::{decode, subjects};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// The services running here, by key (`<app>.<kind>`).
#[derive(Default)]
pub(crate) struct Managed {
    running: std::sync::Mutex<BTreeMap<String, Running>>,
    /// How each is, for the heartbeat.
    health: std::sync::Mutex<BTreeMap<String, reef_proto::services::ServiceHealth>>,
    /// This node's forwarders to other nodes' services, by key: the local
    /// port, and where the service is.
    forwarders: std::sync::Mutex<BTreeMap<String, Forwarder>>,
}

/// A forwarder's local port, and where its service is.
type Forwarder = (u16, Arc<std::sync::Mutex<ServiceEndpoint>>);

struct Running {
    updates: tokio::sync::watch::Sender<ServiceRecord>,
    stop: CancellationToken,
    /// Set when its supervisor has returned (its process is gone).
    done: tokio::sync::watch::Receiver<bool>,
}

/// Where a service's files are.
#[derive(Clone, Debug)]
pub(crate) struct Dirs {
    /// Owned by the service's uid: its data, socket and configuration.
    pub root: PathBuf,
    /// The one-line `/etc/passwd` its sandbox sees (root's, read-only).
    pub passwd: PathBuf,
    /// Its processes' output (root's).
    pub log: PathBuf,
}

impl Dirs {
    pub(crate) fn of(data_dir: &std::path::Path, app: &str, kind: ServiceKind) -> Self {
        let base = data_dir.join("services");
        let name = format!("{app}.{}", kind.name());
        Self {
            root: base.join(&name),
            passwd: base.join(format!("{name}.passwd")),
            log: base.join(format!("{name}.log")),
        }
    }
}

/// Why following the services stopped for a moment.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("cannot open the services bucket: {0}")]
    Open(String),
    #[error("cannot watch the services bucket: {0}")]
    Watch(String),
    #[error("the services watch ended")]
    Ended,
}

/// The PostgreSQL major versions installed under `root`
/// (`<root>/<N>/bin/postgres`), lowest first.
pub(crate) fn installed_postgres(root: &std::path::Path) -> Vec<u32> {
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version: u32 = e.file_name().to_str()?.parse().ok()?;
                    e.path().join("bin/postgres").is_file().then_some(version)
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    versions
}

impl Agent {
    /// The PostgreSQL versions this node offers: those installed, on a
    /// dedicated node whose sandbox runs them as an unprivileged uid
    /// (PostgreSQL refuses to run as root).
    pub(crate) fn postgres_versions(&self) -> Vec<u32> {
        if self.config.trust != reef_proto::node::TrustClass::Dedicated || !self.sandbox.enabled() {
            return Vec::new();
        }
        installed_postgres(std::path::Path::new(postgres::INSTALL_ROOT))
    }

    /// Follows the services bucket until shutdown, then waits for every
    /// service it started to stop.
    pub(crate) async fn watch_services(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut watching = false;
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                result = self.follow_services(&mut watching) => result,
            };
            if watching {
                backoff = FIRST_BACKOFF;
            }
            let Err(error) = result;
            tracing::debug!(error = %error, retry_in = ?backoff, "services watch interrupted");
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn follow_services(
        self: &Arc<Self>,
        watching: &mut bool,
    ) -> Result<std::convert::Infallible, WatchError> {
        let bucket: kv::Store = tokio::time::timeout(
            NATS_TIMEOUT,
            self.js.get_key_value(subjects::SERVICES_BUCKET),
        )
        .await
        .map_err(|_| WatchError::Open("timed out".into()))?
        .map_err(|e| WatchError::Open(e.to_string()))?;
        let mut watch = tokio::time::timeout(NATS_TIMEOUT, bucket.watch_with_history(">"))
            .await
            .map_err(|_| WatchError::Watch("timed out".into()))?
            .map_err(|e| WatchError::Watch(e.to_string()))?;
        *watching = true;
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(|e| WatchError::Watch(e.to_string()))?;
            let record = match entry.operation {
                kv::Operation::Put => match decode::<ServiceRecord>(&entry.value) {
                    Ok(record) => Some(record),
                    Err(e) => {
                        tracing::warn!(key = %entry.key, error = %e, "unreadable service record");
                        continue;
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => None,
            };
            self.apply_service(&entry.key, record);
        }
        Err(WatchError::Ended)
    }

    /// Starts, updates or stops the service under `key` as `record` says.
    fn apply_service(self: &Arc<Self>, key: &str, record: Option<ServiceRecord>) {
        let ours = record.filter(|r| r.node == self.node);
        let mut running = self.managed.lock();
        match ours {
            Some(record) if record.desired == ServiceDesired::Running => {
                if let Some(service) = running.get(key) {
                    if !*service.done.borrow() {
                        service.updates.send_replace(record);
                        return;
                    }
                }
                let (updates, receiver) = tokio::sync::watch::channel(record.clone());
                let (finished, done) = tokio::sync::watch::channel(false);
                let stop = CancellationToken::new();
                let span =
                    tracing::info_span!("service", app = %record.app, kind = record.kind.name());
                self.tasks.spawn(
                    supervisor::supervise(self.clone(), receiver, stop.clone(), finished)
                        .instrument(span),
                );
                running.insert(
                    key.to_string(),
                    Running {
                        updates,
                        stop,
                        done,
                    },
                );
            }
            other => {
                let service = running.remove(key);
                drop(running);
                let delete = other
                    .as_ref()
                    .filter(|r| r.desired == ServiceDesired::Deleted)
                    .map(|r| Dirs::of(&self.config.data_dir, &r.app, r.kind));
                if service.is_none() && delete.is_none() {
                    return;
                }
                let agent = self.clone();
                self.tasks.spawn(
                    async move {
                        if let Some(service) = service {
                            service.stop.cancel();
                            let mut done = service.done;
                            let _ = done.wait_for(|d| *d).await;
                        }
                        if let Some(dirs) = delete {
                            agent.delete_service_data(&dirs).await;
                        }
                    }
                    .in_current_span(),
                );
            }
        }
    }

    /// Removes a service's files once its process is gone.
    async fn delete_service_data(&self, dirs: &Dirs) {
        for file in [&dirs.passwd, &dirs.log] {
            let _ = tokio::fs::remove_file(file).await;
        }
        match tokio::fs::remove_dir_all(&dirs.root).await {
            Ok(()) => tracing::info!(dir = %dirs.root.display(), "service data deleted"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(dir = %dirs.root.display(), error = %e, "cannot delete service data")
            }
        }
    }
}

/// The environment of an instance of `app` whose manifest asks for
/// `[services.nats]`: its credential (`creds`, the `.creds` text) and the
/// cluster's CA written to `<data_dir>/.reef/` (0600, the app's uid), and
/// `NATS_URL`, `NATS_CREDS`, `NATS_CA` and `NATS_INBOX_PREFIX` naming them.
pub(crate) fn nats_env(
    agent: &Agent,
    app: &str,
    data_dir: &std::path::Path,
    creds: &str,
) -> Result<Vec<(String, String)>, crate::service::error::StartError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir.join(".reef");
    let fail = |source: std::io::Error| crate::service::error::StartError::DataDir {
        path: dir.clone(),
        source,
    };
    let uid = agent
        .sandbox
        .enabled()
        .then(|| agent.sandbox.app_uid(app).ok())
        .flatten();
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let mut files = vec![(dir.join("nats.creds"), creds.as_bytes().to_vec())];
    if let Some(ca) = &agent.config.cluster_ca {
        files.push((dir.join("nats-ca.pem"), ca.clone()));
    }
    for (path, bytes) in &files {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes).map_err(fail)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        if let Some(uid) = uid {
            std::os::unix::fs::lchown(&partial, Some(uid), Some(uid)).map_err(fail)?;
        }
        std::fs::rename(&partial, path).map_err(fail)?;
    }
    if let Some(uid) = uid {
        std::os::unix::fs::lchown(&dir, Some(uid), Some(uid)).map_err(fail)?;
    }
    let mut env = vec![
        ("NATS_URL".to_string(), agent.config.nats_servers.join(",")),
        (
            "NATS_CREDS".to_string(),
            dir.join("nats.creds").display().to_string(),
        ),
        (
            "NATS_INBOX_PREFIX".to_string(),
            reef_proto::services::app_inbox_prefix(app),
        ),
    ];
    if agent.config.cluster_ca.is_some() {
        env.push((
            "NATS_CA".to_string(),
            dir.join("nats-ca.pem").display().to_string(),
        ));
    }
    Ok(env)
}

/// How long an instance waits for its app's services to accept connections
/// before it starts anyway (and its app reports what it finds).
const SERVICES_WAIT: Duration = Duration::from_secs(120);

/// Returns once every service of `app` in `endpoints` accepts connections
/// from this node (on loopback here, else through a tunnel), or after
/// [`SERVICES_WAIT`].
pub(crate) async fn reachable(agent: &Agent, app: &str, endpoints: &[ServiceEndpoint]) {
    let deadline = tokio::time::Instant::now() + SERVICES_WAIT;
    for endpoint in endpoints {
        let local = endpoint.node == agent.node;
        let addr = match local {
            true => format!("127.0.0.1:{}", endpoint.port),
            false => format!("a tunnel to {:?}", endpoint.peer),
        };
        let mut told = false;
        loop {
            let ok = if local {
                matches!(
                    tokio::time::timeout(
                        Duration::from_secs(2),
                        tokio::net::TcpStream::connect(("127.0.0.1", endpoint.port)),
                    )
                    .await,
                    Ok(Ok(_))
                )
            } else {
                tunnel::open(agent, app, endpoint).await.is_ok()
            };
            if ok {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(kind = endpoint.kind.name(), %addr, "the app's service is not reachable; starting anyway");
                return;
            }
            if !told {
                tracing::info!(kind = endpoint.kind.name(), %addr, "waiting for the app's service");
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Managed {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_health(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, reef_proto::services::ServiceHealth>> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes how `record`'s service is (None: it is stopped, nothing to say).
    pub(crate) fn note(&self, record: &ServiceRecord, state: Option<String>) {
        let key = subjects::service_key(&record.app, record.kind.name());
        let mut health = self.lock_health();
        match state {
            Some(state) => {
                health.insert(
                    key,
                    reef_proto::services::ServiceHealth {
                        app: record.app.clone(),
                        kind: record.kind,
                        state,
                    },
                );
            }
            None => {
                health.remove(&key);
            }
        }
    }

    fn lock_forwarders(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Forwarder>> {
        self.forwarders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loopback port of the service `key` (`<app>.<kind>`) if it runs here.
    fn local_port(&self, key: &str) -> Option<u16> {
        self.lock()
            .get(key)
            .filter(|service| !*service.done.borrow())
            .map(|service| service.updates.borrow().port)
    }

    /// Every service's state, for the heartbeat.
    pub(crate) fn reports(&self) -> Vec<reef_proto::services::ServiceHealth> {
        self.lock_health().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn installed_versions_are_those_with_a_server_binary() {
        let root = tempfile::tempdir().unwrap();
        for (version, binary) in [("15", true), ("13", true), ("16", false), ("common", true)] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if binary {
                std::fs::write(bin.join("postgres"), b"").unwrap();
            }
        }
        assert_eq!(super::installed_postgres(root.path()), vec![13, 15]);
        assert!(super::installed_postgres(&root.path().join("none")).is_empty());
    }
}
