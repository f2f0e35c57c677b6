//! The one-time move of a single server's state into a NATS cluster, when
//! a second server joins. A standalone nats-server cannot become a
//! clustered one in place: started clustered on its old store, it would
//! delete every stream as unknown to the cluster's JetStream leader. So the
//! first server
//!
//! 1. restarts its nats-server standalone on a private port, which every
//!    client loses (so nothing is written while it copies),
//! 2. snapshots every stream (messages, consumers and their state, exactly),
//! 3. records the plan (`nats/migrate/plan.json`) and puts the old store
//!    aside (`nats/jetstream.standalone`),
//! 4. starts clustered, with routes to the other servers, on a fresh store,
//! 5. once the cluster's JetStream answers, restores every stream, the
//!    servers' bucket last: the other servers wait for their own record in
//!    it before they start their coordinators, so its presence means the
//!    move is complete,
//! 6. removes the snapshots and the old store.
//!
//! A crash after step 3 resumes at step 4 ([`Stage::Restore`]); a crash
//! before it leaves the old store in place, and the move starts again. If
//! the cluster does not answer within [`FORM_WITHIN`] (the other server is
//! not there after all), the old store goes back and the server runs
//! standalone again. The cluster's apps keep serving throughout: only the
//! control plane waits.

use crate::natsd::{self, Supervisor};
use crate::snapshot::{self, Described};
use crate::topology::Shape;
use reef_proto::subjects;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a new cluster may take to elect a JetStream leader.
pub const FORM_WITHIN: Duration = Duration::from_secs(120);

/// What the move needs from the server it runs on.
pub trait Host: Sync {
    /// Writes the nats-server configuration for `shape`, with clients on
    /// `client`.
    fn configure(&self, shape: &Shape, client: SocketAddr) -> Result<(), MigrateError>;
    /// How to run the nats-server as last configured, with clients on `client`.
    fn spec(&self, client: SocketAddr) -> natsd::Spec;
    /// A connection at `at` with the rights to snapshot and restore every
    /// stream (the cluster admin's credential).
    fn connect(
        &self,
        at: SocketAddr,
    ) -> impl Future<Output = Result<async_nats::Client, MigrateError>> + Send;
    /// The nats-server's directory (`DATA_DIR/nats`): its store is
    /// `jetstream` in it.
    fn nats_dir(&self) -> PathBuf;
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("nats-server did not start for the move")]
    Start(#[source] Arc<natsd::NatsdError>),
    #[error("{0}")]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("{}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the plan of the move in {} is unreadable: {reason}", path.display())]
    Plan { path: PathBuf, reason: String },
    #[error("the cluster's JetStream did not answer within {}s: is the other server's nats-server up, and are the routes between the servers open?", FORM_WITHIN.as_secs())]
    NoCluster,
    #[error("could not connect to nats-server at {at}: {reason}")]
    Connect { at: SocketAddr, reason: String },
    #[error("could not write the nats-server configuration: {0}")]
    Configure(String),
}

/// One stream of the move: how its snapshot describes it, and whether it
/// is restored yet.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Planned {
    name: String,
    described: Described,
    restored: bool,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Plan {
    streams: Vec<Planned>,
}

/// Where a server stands with the move, from what is on its disk.
#[derive(Debug, PartialEq, Eq)]
pub enum Stage {
    /// No move under way.
    None,
    /// Snapshots were being taken and not all were: the old store is
    /// intact; they are thrown away.
    Abandoned,
    /// Every snapshot is taken: restore them into the cluster.
    Restore,
}

/// Where a server stands, from whether the plan and the snapshots'
/// directory exist.
pub fn stage(plan: bool, work: bool) -> Stage {
    match (plan, work) {
        (true, _) => Stage::Restore,
        (false, true) => Stage::Abandoned,
        (false, false) => Stage::None,
    }
}

/// The order streams are restored in: the servers' bucket last, since the
/// other servers take its presence to mean the move is complete.
pub fn restore_order(mut names: Vec<String>) -> Vec<String> {
    let last = format!("KV_{}", subjects::SERVERS_BUCKET);
    names.sort();
    names.sort_by_key(|name| *name == last);
    names
}

fn work_dir(host: &impl Host) -> PathBuf {
    host.nats_dir().join("migrate")
}

fn plan_file(host: &impl Host) -> PathBuf {
    work_dir(host).join("plan.json")
}

fn aside(host: &impl Host) -> PathBuf {
    host.nats_dir().join("jetstream.standalone")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Where this server stands with the move; an abandoned one is cleared.
pub fn resume_stage(host: &impl Host) -> Result<Stage, MigrateError> {
    let stage = stage(plan_file(host).exists(), work_dir(host).exists());
    if stage == Stage::Abandoned {
        let work = work_dir(host);
        std::fs::remove_dir_all(&work).map_err(io(&work))?;
        tracing::warn!("an earlier move into a cluster stopped before its snapshots were whole; the single server's store is untouched");
    }
    Ok(stage)
}

/// A free port on loopback for the private listener.
fn private_port() -> Result<SocketAddr, MigrateError> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io(Path::new("127.0.0.1")))?;
    listener.local_addr().map_err(io(Path::new("127.0.0.1")))
}

async fn start(spec: natsd::Spec) -> Result<Supervisor, MigrateError> {
    let mut nats = Supervisor::start(spec);
    nats.ready().await.map_err(MigrateError::Start)?;
    Ok(nats)
}

fn write_plan(path: &Path, plan: &Plan) -> Result<(), MigrateError> {
    let text = serde_json::to_vec_pretty(plan).map_err(|e| MigrateError::Plan {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let staged = path.with_extension("json.new");
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&staged)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&staged, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(io(path))
}

fn read_plan(path: &Path) -> Result<Plan, MigrateError> {
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| MigrateError::Plan {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Steps 1 to 3: the running standalone `nats` is stopped, every stream
/// snapshotted on a private port, the plan recorded and the store put aside.
pub async fn take_snapshots(host: &impl Host, nats: Supervisor) -> Result<(), MigrateError> {
    nats.stop().await;
    let private = private_port()?;
    host.configure(&Shape::Standalone, private)?;
    let quiet = start(host.spec(private)).await?;
    let taken = snapshot_all(host, private).await;
    quiet.stop().await;
    let plan = taken?;
    let store = host.nats_dir().join("jetstream");
    if store.exists() {
        std::fs::rename(&store, aside(host)).map_err(io(&store))?;
    }
    // Written last: from here on the move goes forward.
    write_plan(&plan_file(host), &plan)
}

async fn snapshot_all(host: &impl Host, at: SocketAddr) -> Result<Plan, MigrateError> {
    let client = host.connect(at).await?;
    let work = work_dir(host);
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let mut streams = Vec::new();
    for name in snapshot::streams(&client).await? {
        let file = work.join(format!("{name}.snapshot"));
        let described = snapshot::save(&client, &name, &file).await?;
        tracing::info!(stream = %name, "snapshot taken");
        streams.push(Planned {
            name,
            described,
            restored: false,
        });
    }
    Ok(Plan { streams })
}

/// Steps 4 to 6: starts clustered as `shape` with clients on `client` and
/// restores every planned stream ([`finish`]). Returns the running
/// nats-server. When the cluster does not form in time and nothing is
/// restored yet, the old store goes back and the server runs standalone
/// again (the error says why); past that point only going forward is safe,
/// and a failure is returned with the plan kept: [`finish`] goes on.
pub async fn restore(
    host: &impl Host,
    shape: &Shape,
    client: SocketAddr,
) -> Result<Supervisor, (Supervisor, MigrateError)> {
    let plan = match read_plan(&plan_file(host)) {
        Ok(plan) => plan,
        Err(e) => return Err((start_standalone_again(host, client).await, e)),
    };
    if let Err(e) = host.configure(shape, client) {
        return Err((start_standalone_again(host, client).await, e));
    }
    let nats = match start(host.spec(client)).await {
        Ok(nats) => nats,
        Err(e) => return Err((start_standalone_again(host, client).await, e)),
    };
    if let Err(e) = formed(host, client).await {
        if plan.streams.iter().any(|stream| stream.restored) {
            return Err((nats, e));
        }
        nats.stop().await;
        return Err((start_standalone_again(host, client).await, e));
    }
    match finish(host, client).await {
        Ok(()) => Ok(nats),
        Err(e) => Err((nats, e)),
    }
}

/// Whether a move into a cluster waits to be finished here.
pub fn unfinished(host: &impl Host) -> bool {
    plan_file(host).exists()
}

/// Restores, into the running cluster at `client`, every stream the plan
/// has not restored yet, then removes the snapshots and the old store.
/// Safe to call again after a failure: each restored stream is recorded.
pub async fn finish(host: &impl Host, client: SocketAddr) -> Result<(), MigrateError> {
    let plan_path = plan_file(host);
    let mut plan = read_plan(&plan_path)?;
    let connection = formed(host, client).await?;
    let names = restore_order(plan.streams.iter().map(|s| s.name.clone()).collect());
    for name in names {
        let Some(index) = plan.streams.iter().position(|s| s.name == name) else {
            continue;
        };
        if plan.streams[index].restored {
            continue;
        }
        let file = work_dir(host).join(format!("{name}.snapshot"));
        restore_one(&connection, &name, &plan.streams[index].described, &file).await?;
        plan.streams[index].restored = true;
        write_plan(&plan_path, &plan)?;
        tracing::info!(stream = %name, "restored into the cluster");
    }
    // Done: the snapshots and the old store go.
    for path in [work_dir(host), aside(host)] {
        if path.exists() {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove what the move left");
            }
        }
    }
    Ok(())
}

/// Restores one stream; one that exists already (made by someone before
/// the move ended, or restored just before a crash) is replaced, since the
/// snapshot is what the cluster must hold.
async fn restore_one(
    client: &async_nats::Client,
    name: &str,
    described: &Described,
    file: &Path,
) -> Result<(), MigrateError> {
    let first = snapshot::restore(client, name, described, file).await;
    match first {
        // One half made by a restore that failed, or made by someone else.
        Err(snapshot::SnapshotError::Refused { reason, .. })
            if reason.contains("already in use") || reason.contains("exists") =>
        {
            tracing::warn!(stream = %name, "a stream of that name is in the cluster already; replacing it with the snapshot");
            snapshot::delete(client, name).await?;
            snapshot::restore(client, name, described, file)
                .await
                .map_err(Into::into)
        }
        other => other.map_err(Into::into),
    }
}

/// Waits until the cluster's JetStream answers at `client`.
async fn formed(host: &impl Host, client: SocketAddr) -> Result<async_nats::Client, MigrateError> {
    let connection = host.connect(client).await?;
    let deadline = tokio::time::Instant::now() + FORM_WITHIN;
    while !snapshot::jetstream_ready(&connection).await {
        if tokio::time::Instant::now() > deadline {
            return Err(MigrateError::NoCluster);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(connection)
}

/// The old store back in place and the server standalone again, as before
/// the move. If even that fails, the supervisor keeps trying to start it.
async fn start_standalone_again(host: &impl Host, client: SocketAddr) -> Supervisor {
    let store = host.nats_dir().join("jetstream");
    let old = aside(host);
    if old.exists() {
        if store.exists() {
            if let Err(e) = std::fs::remove_dir_all(&store) {
                tracing::error!(error = %e, "could not clear the cluster's store to put the single server's back");
            }
        }
        if let Err(e) = std::fs::rename(&old, &store) {
            tracing::error!(error = %e, "could not put the single server's store back");
        }
    }
    let work = work_dir(host);
    if work.exists() {
        let _ = std::fs::remove_dir_all(&work);
    }
    if let Err(e) = host.configure(&Shape::Standalone, client) {
        // The last configuration written runs: the best there is.
        tracing::error!(error = %e, "could not write the standalone configuration again");
    }
    Supervisor::start(host.spec(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_bucket_is_restored_last() {
        let names = vec![
            "KV_reef-servers".to_string(),
            "KV_reef-apps".into(),
            "REEF_EVENTS".into(),
            "OBJ_reef-artifacts".into(),
        ];
        assert_eq!(
            restore_order(names),
            [
                "KV_reef-apps",
                "OBJ_reef-artifacts",
                "REEF_EVENTS",
                "KV_reef-servers"
            ]
        );
        assert_eq!(restore_order(vec![]), Vec::<String>::new());
    }

    #[test]
    fn a_plan_on_disk_means_restore_and_snapshots_alone_are_abandoned() {
        assert_eq!(stage(false, false), Stage::None);
        assert_eq!(stage(false, true), Stage::Abandoned);
        assert_eq!(stage(true, true), Stage::Restore);
        assert_eq!(stage(true, false), Stage::Restore);
    }
}
