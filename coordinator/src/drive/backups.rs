//! App backups on the leader: a task of each term makes the backups asked
//! for (`reef backup run`) and those of every app's `[backup]` schedule,
//! and carries out restores, one at a time.
//!
//! A backup asks each node that runs a healthy instance of the app for its
//! data part ([`BackupRequest::Make`]), and the node of its managed
//! Postgres for a dump of each database ([`BackupRequest::MakeDatabase`]);
//! the node encrypts each part to the cluster's backup key and stores it. A scheduled tick is claimed by
//! creating its record under `<app>.<tick>`, so it is made once even when
//! two leaders overlap; ticks that fall while no leader is up are not made
//! up (the next one runs). After a backup is made, the app's oldest beyond
//! `keep` are deleted, parts first.
//!
//! A restore first checks every part whole here (its digest, that this
//! cluster's key opens it, every frame), so a backup from another cluster
//! or a corrupted one is refused before any node is asked for anything;
//! then each node puts its part back with the content key sealed to it:
//! databases first, each with `pg_restore` in one transaction while the app
//! runs, then data directories ([`BackupRequest::Restore`]), whose local
//! instances step aside for the swap.

use crate::store::{Store, StoreError};
use reef_proto::backup::{
    self, part_context, BackupAnswer, BackupPart, BackupRecord, BackupRequest, BackupSpec,
    BackupState, PartKind, Trigger,
};
use reef_proto::cron::{time_zone, Schedule};
use reef_proto::{decode, encode, now_ms, subjects, NodeId, Report};
use reef_secrets::ClusterKey;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a node may take to make or restore its part.
const NODE_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the schedules are read again from the apps' releases.
const REFRESH: Duration = Duration::from_secs(5);
/// Work waiting for the task at most.
const QUEUE: usize = 64;

/// What the API hands the task.
#[derive(Debug)]
pub(crate) enum Work {
    /// Make the backup whose record (`Running`) was just created.
    Make { app: String, id: u64 },
    /// Restore the backup, whose record has a restore started at `started_ms`.
    Restore {
        app: String,
        id: u64,
        started_ms: u64,
    },
}

/// The backups task of one term.
pub(crate) struct Backups {
    work: mpsc::Sender<Work>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Backups {
    pub(crate) fn start(
        store: Store,
        client: async_nats::Client,
        key: Option<Arc<ClusterKey>>,
        shutdown: &CancellationToken,
    ) -> Self {
        let (work, queue) = mpsc::channel(QUEUE);
        let stop = shutdown.child_token();
        let task = tokio::spawn(
            Task {
                store,
                client,
                key,
                schedules: BTreeMap::new(),
            }
            .run(queue, stop.clone()),
        );
        Self { work, stop, task }
    }

    /// Where the API hands work to this term's task.
    pub(crate) fn sender(&self) -> mpsc::Sender<Work> {
        self.work.clone()
    }

    /// Stops it; a backup it was making stays `running` in its record.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %Report(&e), "the backups task failed");
        }
    }
}

/// An app's schedule, and its next tick.
struct Scheduled {
    spec: BackupSpec,
    schedule: Schedule,
    tz: jiff::tz::TimeZone,
    next_ms: Option<u64>,
}

struct Task {
    store: Store,
    client: async_nats::Client,
    key: Option<Arc<ClusterKey>>,
    schedules: BTreeMap<String, Scheduled>,
}

fn next_tick(schedule: &Schedule, tz: &jiff::tz::TimeZone, after_ms: u64) -> Option<u64> {
    let after = jiff::Timestamp::from_millisecond(i64::try_from(after_ms).ok()?).ok()?;
    let next = schedule.next_after(after, tz)?;
    u64::try_from(next.as_millisecond()).ok()
}

impl Task {
    async fn run(mut self, mut queue: mpsc::Receiver<Work>, stop: CancellationToken) {
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.wake();
            tokio::select! {
                () = stop.cancelled() => return,
                Some(work) = queue.recv() => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.carry_out(work) => {}
                    }
                }
                _ = refresh.tick() => self.refresh().await,
                () = tokio::time::sleep_until(wake) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.due() => {}
                    }
                }
            }
        }
    }

    fn wake(&self) -> tokio::time::Instant {
        let now = now_ms();
        let soonest = self.schedules.values().filter_map(|s| s.next_ms).min();
        let wait = soonest.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis(at.saturating_sub(now))
        });
        tokio::time::Instant::now() + wait
    }

    /// Reads every app's current `[backup]` again; a new or changed
    /// schedule starts from now.
    async fn refresh(&mut self) {
        let apps = match self.store.apps.all().await {
            Ok(apps) => apps,
            Err(e) => {
                tracing::debug!(error = %Report(&e), "backup schedules not read");
                return;
            }
        };
        let mut seen = BTreeSet::new();
        for app in apps {
            let Some(spec) = self.spec_of(&app.name, app.version).await else {
                continue;
            };
            let Some(text) = spec.schedule.clone() else {
                continue;
            };
            seen.insert(app.name.clone());
            if self
                .schedules
                .get(&app.name)
                .is_some_and(|s| s.spec == spec)
            {
                continue;
            }
            let (Ok(schedule), Ok(tz)) = (Schedule::parse(&text), time_zone(&spec.time_zone))
            else {
                continue;
            };
            let next_ms = next_tick(&schedule, &tz, now_ms());
            self.schedules.insert(
                app.name.clone(),
                Scheduled {
                    spec,
                    schedule,
                    tz,
                    next_ms,
                },
            );
        }
        self.schedules.retain(|app, _| seen.contains(app));
    }

    async fn spec_of(&self, app: &str, version: u32) -> Option<BackupSpec> {
        let (release, _) = self
            .store
            .releases
            .get(&subjects::release_key(app, version))
            .await
            .ok()??;
        release.spec.backup
    }

    /// Claims and makes every backup whose tick has come.
    async fn due(&mut self) {
        let now = now_ms();
        let due: Vec<(String, u64)> = self
            .schedules
            .iter()
            .filter_map(|(app, s)| {
                s.next_ms
                    .filter(|at| *at <= now)
                    .map(|at| (app.clone(), at))
            })
            .collect();
        for (app, tick) in due {
            if let Some(s) = self.schedules.get_mut(&app) {
                s.next_ms = next_tick(&s.schedule, &s.tz, tick.max(now_ms()));
            }
            match claim(&self.store, &app, tick, Trigger::Schedule).await {
                Ok(true) => self.make(&app, tick).await,
                Ok(false) => tracing::debug!(%app, tick, "a scheduled backup was already claimed"),
                Err(e) => {
                    tracing::warn!(%app, error = %Report(&e), "a scheduled backup could not be claimed")
                }
            }
        }
    }

    async fn carry_out(&mut self, work: Work) {
        match work {
            Work::Make { app, id } => self.make(&app, id).await,
            Work::Restore {
                app,
                id,
                started_ms,
            } => {
                let outcome = self.restore(&app, id).await;
                if let Err(e) = &outcome {
                    tracing::warn!(%app, id, error = %e, "a restore failed");
                }
                let finished = now_ms();
                let written = self
                    .store
                    .backups
                    .modify(&backup::key(&app, id), |record| {
                        match record
                            .restores
                            .iter_mut()
                            .find(|r| r.started_ms == started_ms)
                        {
                            Some(run) => {
                                run.finished_ms = Some(finished);
                                run.outcome = Some(outcome.clone());
                                true
                            }
                            None => false,
                        }
                    })
                    .await;
                if let Err(e) = written {
                    tracing::warn!(%app, id, error = %Report(&e), "a restore's outcome was not recorded");
                }
            }
        }
    }

    /// Makes backup `id` of `app` (its record exists, `Running`), records
    /// how it went, then deletes the oldest beyond what the app keeps.
    async fn make(&mut self, app: &str, id: u64) {
        let made = self.make_parts(app, id).await;
        let finished = now_ms();
        let key = backup::key(app, id);
        let written = self
            .store
            .backups
            .modify(&key, |record| {
                record.finished_ms = Some(finished);
                match &made {
                    Ok(parts) => {
                        record.parts = parts.clone();
                        record.state = BackupState::Done;
                    }
                    Err(reason) => {
                        record.state = BackupState::Failed {
                            reason: reason.clone(),
                        }
                    }
                }
                true
            })
            .await;
        match (&made, written) {
            (_, Err(e)) => {
                tracing::warn!(%app, id, error = %Report(&e), "a backup's outcome was not recorded")
            }
            (Ok(parts), Ok(_)) => tracing::info!(%app, id, parts = parts.len(), "backup made"),
            (Err(reason), Ok(_)) => tracing::warn!(%app, id, %reason, "backup failed"),
        }
        if made.is_ok() {
            let record = self.store.apps.get(app).await.ok().flatten();
            let keep = match record {
                Some((record, _)) => self
                    .spec_of(app, record.version)
                    .await
                    .map_or(DEFAULT_KEEP, |s| s.keep),
                None => DEFAULT_KEEP,
            };
            if let Err(e) = prune(&self.store, app, keep).await {
                tracing::warn!(%app, error = %Report(&e), "old backups were not deleted");
            }
        }
    }

    async fn make_parts(&self, app: &str, id: u64) -> Result<Vec<BackupPart>, String> {
        let key = self.key.as_ref().ok_or(NO_KEY)?;
        let pre_backup = match self
            .store
            .apps
            .get(app)
            .await
            .map_err(|e| Report(&e).to_string())?
        {
            Some((record, _)) => self
                .spec_of(app, record.version)
                .await
                .and_then(|s| s.pre_backup),
            None => return Err(format!("app {app} no longer exists")),
        };
        let routes = self
            .store
            .routes
            .get(app)
            .await
            .map_err(|e| Report(&e).to_string())?;
        let nodes: BTreeSet<NodeId> = routes
            .map(|(r, _)| r.backends.iter().map(|b| b.node).collect())
            .unwrap_or_default();
        if nodes.is_empty() {
            return Err(format!(
                "app {app} has no healthy instance: its data is backed up from the nodes that run it"
            ));
        }
        let recipient = key.backup_key().public();
        let mut parts = Vec::new();
        for node in nodes {
            let object = backup::object_name(app, id, node, &PartKind::Data);
            let request = BackupRequest::Make {
                app: app.to_string(),
                object: object.clone(),
                recipient,
                pre_backup: pre_backup.clone(),
            };
            match self.ask(node, &request).await? {
                BackupAnswer::Made {
                    sha256,
                    size,
                    plain_size,
                    hook,
                } => {
                    if let Some(hook) = hook {
                        tracing::info!(%app, %node, %hook, "pre_backup");
                    }
                    parts.push(BackupPart {
                        kind: PartKind::Data,
                        node,
                        object,
                        sha256,
                        size,
                        plain_size,
                    });
                }
                BackupAnswer::Failed { reason } => {
                    remove_parts(&self.store, &parts).await;
                    return Err(format!("node {node}: {reason}"));
                }
                other => return Err(format!("node {node} answered {other:?}")),
            }
        }
        if let Some(service) = self.postgres_of(app).await? {
            for database in &service.databases {
                let kind = PartKind::Postgres {
                    database: database.clone(),
                };
                let object = backup::object_name(app, id, service.node, &kind);
                let request = BackupRequest::MakeDatabase {
                    app: app.to_string(),
                    database: database.clone(),
                    version: service.version,
                    port: service.port,
                    object: object.clone(),
                    recipient,
                };
                match self.ask(service.node, &request).await {
                    Ok(BackupAnswer::Made {
                        sha256,
                        size,
                        plain_size,
                        ..
                    }) => parts.push(BackupPart {
                        kind,
                        node: service.node,
                        object,
                        sha256,
                        size,
                        plain_size,
                    }),
                    other => {
                        remove_parts(&self.store, &parts).await;
                        let why = match other {
                            Ok(BackupAnswer::Failed { reason }) | Err(reason) => reason,
                            Ok(answer) => format!("answered {answer:?}"),
                        };
                        return Err(format!(
                            "database {database} on node {}: {why}",
                            service.node
                        ));
                    }
                }
            }
        }
        Ok(parts)
    }

    /// The app's managed Postgres, if it has one.
    async fn postgres_of(
        &self,
        app: &str,
    ) -> Result<Option<reef_proto::services::ServiceRecord>, String> {
        let key = subjects::service_key(app, reef_proto::services::ServiceKind::Postgres.name());
        Ok(self
            .store
            .services
            .get(&key)
            .await
            .map_err(|e| Report(&e).to_string())?
            .map(|(record, _)| record))
    }

    async fn ask(&self, node: NodeId, request: &BackupRequest) -> Result<BackupAnswer, String> {
        let payload = encode(request).map_err(|e| Report(&e).to_string())?;
        let asked = self
            .client
            .send_request(
                subjects::backup(node),
                async_nats::Request::new()
                    .payload(payload)
                    .timeout(Some(NODE_TIMEOUT)),
            )
            .await
            .map_err(|e| format!("node {node} did not answer: {}", Report(&e)))?;
        decode::<BackupAnswer>(&asked.payload)
            .map_err(|e| format!("node {node}'s answer: {}", Report(&e)))
    }

    /// Checks every part of backup `id` whole, then has each node put its
    /// part back. Returns what was done.
    async fn restore(&self, app: &str, id: u64) -> Result<String, String> {
        let key = self.key.as_ref().ok_or(NO_KEY)?;
        let (record, _) = self
            .store
            .backups
            .get(&backup::key(app, id))
            .await
            .map_err(|e| Report(&e).to_string())?
            .ok_or_else(|| format!("app {app} has no backup {id}"))?;
        let backup_key = key.backup_key();
        let mut content_keys = Vec::new();
        for part in &record.parts {
            let content = self.check_part(&backup_key, part).await.map_err(|e| {
                format!(
                    "backup {id} is refused, nothing was changed: {} on node {}: {e}",
                    part.kind.describe(),
                    part.node
                )
            })?;
            content_keys.push(content);
        }
        let postgres = self.postgres_of(app).await?;
        let mut done = Vec::new();
        // Databases first (each in one transaction, the app still up), then
        // the data directories, whose instances step aside.
        let mut order: Vec<_> = record.parts.iter().zip(content_keys).collect();
        order.sort_by_key(|(part, _)| matches!(part.kind, PartKind::Data));
        for (part, content) in order {
            let node = self
                .store
                .nodes
                .get(&part.node.to_string())
                .await
                .map_err(|e| Report(&e).to_string())?
                .map(|(n, _)| n)
                .ok_or_else(|| {
                    format!(
                        "node {} that made the {} part is gone",
                        part.node,
                        part.kind.describe()
                    )
                })?;
            let sealed = reef_secrets::seal(
                &node.sealing_key,
                &part_context(&part.object),
                content.as_slice(),
            )
            .map_err(|e| Report(&e).to_string())?;
            let request = match &part.kind {
                PartKind::Data => BackupRequest::Restore {
                    app: app.to_string(),
                    object: part.object.clone(),
                    sha256: part.sha256.clone(),
                    key: sealed,
                },
                PartKind::Postgres { database } => {
                    let service = postgres
                        .as_ref()
                        .filter(|s| s.node == part.node && s.databases.contains(database))
                        .ok_or_else(|| {
                            restore_failed(
                                &done,
                                &node.name,
                                &format!("app {app} has no Postgres with database {database} on that node now"),
                            )
                        })?;
                    BackupRequest::RestoreDatabase {
                        app: app.to_string(),
                        database: database.clone(),
                        version: service.version,
                        port: service.port,
                        object: part.object.clone(),
                        sha256: part.sha256.clone(),
                        key: sealed,
                    }
                }
            };
            match self.ask(part.node, &request).await {
                Ok(BackupAnswer::Restored { files, instances }) => done.push(format!(
                    "{} on {}: {files} files back, {instances} instance(s) stopped and started again",
                    part.kind.describe(),
                    node.name
                )),
                Ok(BackupAnswer::RestoredDatabase { database }) => done.push(format!(
                    "database {database} on {}: restored in one transaction",
                    node.name
                )),
                Ok(BackupAnswer::Failed { reason }) => {
                    return Err(restore_failed(&done, &node.name, &reason))
                }
                Ok(other) => {
                    return Err(restore_failed(&done, &node.name, &format!("answered {other:?}")))
                }
                Err(reason) => return Err(restore_failed(&done, &node.name, &reason)),
            }
        }
        Ok(done.join("; "))
    }

    /// Reads a part from the store, checking its digest and every frame
    /// with this cluster's key; returns its content key.
    async fn check_part(
        &self,
        backup_key: &reef_secrets::backup::BackupKey,
        part: &BackupPart,
    ) -> Result<reef_secrets::Zeroizing<[u8; 32]>, String> {
        let mut object = self
            .store
            .backup_parts
            .get(&part.object)
            .await
            .map_err(|e| format!("its object {} cannot be read: {}", part.object, Report(&e)))?;
        let path = std::env::temp_dir().join(format!("reef-restore-{}", uuid::Uuid::now_v7()));
        let _remove = RemoveOnDrop(path.clone());
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = object
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading {}: {e}", part.object))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        drop(file);
        let found: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if found != part.sha256 {
            return Err(format!(
                "it is corrupted: its sha256 is {found}, {} was recorded when it was made",
                part.sha256
            ));
        }
        let context = part_context(&part.object);
        let header = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut input = std::io::BufReader::new(std::fs::File::open(&path)?);
                let header = reef_secrets::backup::read_header(&mut input);
                Ok::<_, std::io::Error>((header, input))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
        };
        let (header, input) = header;
        let header = header.map_err(|e| e.to_string())?;
        let content = backup_key
            .open(&context, &header)
            .map_err(|e| e.to_string())?;
        let checked = content.clone();
        tokio::task::spawn_blocking(move || {
            reef_secrets::backup::decrypt(&checked, &context, input, std::io::sink())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(content)
    }
}

/// Backups kept of an app with no `keep` (one without `[backup]`).
const DEFAULT_KEEP: u32 = 7;

const NO_KEY: &str =
    "this coordinator has no cluster key (--secrets-key), which backups are encrypted with";

fn restore_failed(done: &[String], node: &str, reason: &str) -> String {
    if done.is_empty() {
        format!("node {node}: {reason}")
    } else {
        format!(
            "node {node}: {reason} (already restored: {})",
            done.join("; ")
        )
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates backup `id`'s record, `Running`; false if it exists (claimed).
pub(crate) async fn claim(
    store: &Store,
    app: &str,
    id: u64,
    trigger: Trigger,
) -> Result<bool, StoreError> {
    let release = store.apps.get(app).await?.map(|(r, _)| r.version);
    let record = BackupRecord {
        app: app.to_string(),
        id,
        trigger,
        state: BackupState::Running,
        parts: Vec::new(),
        started_ms: now_ms(),
        finished_ms: None,
        release,
        restores: Vec::new(),
    };
    Ok(store
        .backups
        .create(&backup::key(app, id), &record)
        .await?
        .is_some())
}

/// An app's backups, newest first.
pub(crate) async fn of_app(store: &Store, app: &str) -> Result<Vec<BackupRecord>, StoreError> {
    let prefix = format!("{app}.");
    let keys: Vec<String> = store
        .backups
        .keys()
        .await?
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    let mut records: Vec<BackupRecord> = store
        .backups
        .read_many(keys)
        .await?
        .into_iter()
        .map(|(_, r, _)| r)
        .collect();
    records.sort_by_key(|r| std::cmp::Reverse(r.id));
    Ok(records)
}

/// Deletes the app's finished backups beyond the newest `keep`, and failed
/// ones older than the oldest kept.
async fn prune(store: &Store, app: &str, keep: u32) -> Result<(), StoreError> {
    let records = of_app(store, app).await?;
    for record in crate::plan::backups::to_delete(&records, keep as usize) {
        remove_parts(store, &record.parts).await;
        store.backups.purge(&backup::key(app, record.id)).await?;
        tracing::info!(%app, id = record.id, "old backup deleted");
    }
    Ok(())
}

async fn remove_parts(store: &Store, parts: &[BackupPart]) {
    for part in parts {
        if let Err(e) = store.backup_parts.delete(&part.object).await {
            tracing::warn!(object = %part.object, error = %Report(&e), "a backup part was not deleted");
        }
    }
}
