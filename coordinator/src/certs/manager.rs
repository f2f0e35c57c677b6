//! The certificate manager: one task per term as leader. A pass
//!
//! 1. seals every stored certificate's key to the nodes registered since it
//!    was stored, and drops the copies of nodes that were removed;
//! 2. with ACME on, finds the domains of the apps that should run, and for
//!    each one no certificate covers (or whose ACME certificate is due for
//!    renewal) starts an order, a few at a time, each in its own task;
//! 3. forgets expired ACME certificates no app wants.
//!
//! Passes run every [`PASS_EVERY`], soon after an app, release or node
//! changes in KV (deploys included), after `reef certs add` or `rm`, and
//! after each order ends. A failed order is retried with a doubling delay;
//! the failures are kept in the certificates bucket, so a new leader waits
//! out the same delay rather than ordering again at once (CAs limit failed
//! validations).

use super::acme_task::IssueError;
use super::acme_task::Issuer;
use super::bucket::{self, Stored};
use super::sink::KvChallenges;
use super::status::{DomainStatus, Handle};
use super::{keys, plan};
use crate::error::{CoordinatorError, Report};
use crate::store::Store;
use futures::stream::{select_all, BoxStream};
use futures::StreamExt;
use reef_proto::certs::{acme_attempts_key, is_attempts_key, AcmeAttempts};
use reef_proto::events::EventKind;
use reef_proto::{subjects, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How often a pass runs when nothing asks for one.
pub(crate) const PASS_EVERY: Duration = Duration::from_secs(10);
/// How long after a change the pass runs, so that a burst of changes makes one pass.
const SETTLE: Duration = Duration::from_millis(200);
/// The most orders running at once.
const MAX_ORDERS: usize = 2;
/// How long stopping waits for the task.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The manager's settings.
#[derive(Clone)]
pub(crate) struct Settings {
    pub store: Store,
    pub cluster_key: Option<Arc<reef_secrets::ClusterKey>>,
    pub acme: Option<reef_acme::AcmeConfig>,
    pub events: crate::cluster_events::ClusterEvents,
}

/// The running manager of one term.
pub(crate) struct Manager {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Manager {
    /// Starts the manager; `handle` is shared with the term's API.
    pub(crate) fn start(settings: Settings, handle: Handle, shutdown: &CancellationToken) -> Self {
        let stop = shutdown.child_token();
        let task = tokio::spawn(run(settings, handle, stop.clone()));
        Self { stop, task }
    }

    /// Stops the manager and its orders (an order cut short leaves its
    /// challenge answers to expire), and waits for it.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        match tokio::time::timeout(STOP_WAIT, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %Report(&e), "the certificate manager failed"),
            Err(_) => tracing::warn!("the certificate manager did not stop in time"),
        }
    }
}

/// Changes in the buckets a pass depends on.
type Changes = BoxStream<'static, Result<(), async_nats::jetstream::kv::WatcherError>>;

struct State {
    settings: Settings,
    cluster_key: Arc<reef_secrets::ClusterKey>,
    issuer: Option<Arc<Issuer>>,
    handle: Handle,
    orders: JoinSet<(String, Result<(), IssueError>)>,
}

async fn run(settings: Settings, handle: Handle, stop: CancellationToken) {
    let Some(cluster_key) = settings.cluster_key.clone() else {
        tracing::info!("no cluster key: certificates are not managed");
        return;
    };
    let issuer = settings.acme.clone().map(|config| {
        Arc::new(Issuer::new(
            &settings.store,
            KvChallenges {
                challenges: settings.store.challenges.clone(),
            },
            cluster_key.clone(),
            config,
        ))
    });
    let mut state = State {
        settings,
        cluster_key,
        issuer,
        handle,
        orders: JoinSet::new(),
    };
    state.load_attempts().await;
    let mut changes = state.watch_changes().await;
    let mut every = tokio::time::interval(PASS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let soon = tokio::time::Instant::now() + SETTLE;
        tokio::select! {
            () = stop.cancelled() => break,
            _ = every.tick() => {
                due = Some(tokio::time::Instant::now());
                if changes.is_none() {
                    changes = state.watch_changes().await;
                }
            }
            () = state.handle.nudged() => due = due.or(Some(soon)),
            change = next_change(&mut changes) => match change {
                Some(()) => due = due.or(Some(soon)),
                None => changes = None,
            },
            Some(done) = state.orders.join_next(), if !state.orders.is_empty() => {
                state.finished(done).await;
                due = due.or(Some(soon));
            }
            () = sleep_until(due), if due.is_some() => {
                due = None;
                if let Err(e) = state.pass().await {
                    tracing::warn!(error = %Report(&e), "certificate pass failed; trying again later");
                }
            }
        }
    }
    // Dropping an order cuts it short; its challenges expire with the bucket's age limit.
    state.orders.shutdown().await;
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// The next change from the watches; None when they failed (reopened on the next tick).
async fn next_change(changes: &mut Option<Changes>) -> Option<()> {
    let Some(stream) = changes.as_mut() else {
        return std::future::pending().await;
    };
    match stream.next().await {
        Some(Ok(())) => Some(()),
        Some(Err(e)) => {
            tracing::debug!(error = %Report(&e), "a watch for certificate passes failed; reopening it");
            None
        }
        None => None,
    }
}

impl State {
    /// Watches the apps, releases and nodes buckets for changes (new ones only).
    async fn watch_changes(&self) -> Option<Changes> {
        let store = &self.settings.store;
        let mut streams = Vec::new();
        for kv in [store.apps.kv(), store.releases.kv(), store.nodes.kv()] {
            match kv.watch_all().await {
                Ok(watch) => streams.push(watch.map(|entry| entry.map(|_| ())).boxed()),
                Err(e) => {
                    tracing::debug!(bucket = %kv.name, error = %Report(&e), "cannot watch; passes run on the timer");
                    return None;
                }
            }
        }
        Some(select_all(streams).boxed())
    }

    /// Takes up the failed orders an earlier leader recorded, so that the
    /// backoff goes on where it was.
    async fn load_attempts(&self) {
        let attempts_bucket = &self.settings.store.acme_attempts;
        let keys = match attempts_bucket.keys().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %Report(&e), "cannot read earlier failed certificate orders");
                return;
            }
        };
        let now_ms = reef_proto::now_ms();
        for key in keys.into_iter().filter(|key| is_attempts_key(key)) {
            let attempts = match attempts_bucket.get(&key).await {
                Ok(Some((attempts, _))) => attempts,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%key, error = %Report(&e), "cannot read an earlier failed certificate order");
                    continue;
                }
            };
            let wait = Duration::from_millis(attempts.retry_at_ms.saturating_sub(now_ms));
            tracing::info!(
                domain = %attempts.domain,
                failures = attempts.failures,
                retry_in = ?wait,
                "waiting out earlier failed certificate orders"
            );
            self.handle.update(|domains| {
                let status = domains.entry(attempts.domain.clone()).or_default();
                status.failures = attempts.failures;
                status.last_error = Some(attempts.last_error.clone());
                status.retry_at = Some(Instant::now() + wait);
            });
        }
    }

    /// Records how an order ended, in memory and in the certificates bucket.
    async fn finished(
        &mut self,
        done: Result<(String, Result<(), IssueError>), tokio::task::JoinError>,
    ) {
        let (domain, result) = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %Report(&e), "a certificate order task failed");
                return;
            }
        };
        let attempts = self.handle.update(|domains| {
            let status = domains.entry(domain.clone()).or_default();
            status.issuing = false;
            match result {
                Ok(()) => {
                    status.failures = 0;
                    status.last_error = None;
                    status.retry_at = None;
                    self.settings
                        .events
                        .emit(EventKind::CertIssued, &domain, "issued over ACME");
                    None
                }
                Err(error) => {
                    let error = Report(&error).to_string();
                    status.failures = status.failures.saturating_add(1);
                    let delay = plan::retry_delay(status.failures);
                    tracing::warn!(%domain, %error, retry_in = ?delay, "certificate order failed");
                    self.settings.events.emit(
                        EventKind::CertFailed,
                        &domain,
                        format!(
                            "{error} (next try in {})",
                            reef_proto::units::format_duration(delay)
                        ),
                    );
                    status.last_error = Some(error.clone());
                    status.retry_at = Some(Instant::now() + delay);
                    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    Some(AcmeAttempts {
                        domain: domain.clone(),
                        failures: status.failures,
                        last_error: error,
                        retry_at_ms: reef_proto::now_ms().saturating_add(delay_ms),
                    })
                }
            }
        });
        let bucket = &self.settings.store.acme_attempts;
        let key = acme_attempts_key(&domain);
        let recorded = match attempts {
            Some(attempts) => bucket.put(&key, &attempts).await.map(drop),
            None => bucket.delete(&key).await,
        };
        if let Err(e) = recorded {
            tracing::warn!(%domain, error = %Report(&e), "could not record how the certificate order ended");
        }
    }

    async fn pass(&mut self) -> Result<(), CoordinatorError> {
        let store = self.settings.store.clone();
        let nodes = bucket::node_keys(&store.nodes).await?;
        let mut certs = bucket::read_all(&store.certs).await?;
        self.reseal(&mut certs, &nodes).await;
        if self.issuer.is_some() {
            let wanted = wanted(&store).await?;
            self.order(&wanted, &certs);
            for key in plan::expired_and_unwanted(
                &certs
                    .iter()
                    .map(|s| (s.key.clone(), s.record.clone()))
                    .collect::<Vec<_>>(),
                &wanted,
                SystemTime::now(),
            ) {
                tracing::info!(%key, "dropping an expired certificate no app wants");
                if let Err(e) = store.certs.purge(key).await {
                    tracing::warn!(%key, error = %Report(&e), "could not drop the certificate");
                }
            }
        }
        Ok(())
    }

    /// Brings every certificate's sealed copies in line with the registered nodes.
    async fn reseal(&self, certs: &mut [Stored], nodes: &keys::NodeKeys) {
        let ids: BTreeSet<NodeId> = nodes.keys().copied().collect();
        for stored in certs.iter_mut() {
            let plan = plan::reseal(&stored.record, &ids);
            if plan.is_empty() {
                continue;
            }
            let mut record = stored.record.clone();
            match keys::reseal(
                &mut record,
                &self.cluster_key,
                nodes,
                &plan.missing,
                &plan.extra,
            ) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(key = %stored.key, error = %Report(&e), "cannot seal the certificate for new nodes");
                    continue;
                }
            }
            match self
                .settings
                .store
                .certs
                .put_if(&stored.key, &record, stored.revision)
                .await
            {
                Ok(Some(revision)) => {
                    tracing::info!(key = %stored.key, added = plan.missing.len(), removed = plan.extra.len(), "certificate sealed for the current nodes");
                    stored.record = record;
                    stored.revision = revision;
                }
                // Written meanwhile: the next pass looks again.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(key = %stored.key, error = %Report(&e), "could not store the resealed certificate")
                }
            }
        }
    }

    /// Starts orders for the wanted domains that need one, within the limits.
    fn order(&mut self, wanted: &BTreeMap<String, String>, certs: &[Stored]) {
        let Some(issuer) = self.issuer.clone() else {
            return;
        };
        let records: Vec<_> = certs.iter().map(|s| s.record.clone()).collect();
        let now = SystemTime::now();
        let mut start = Vec::new();
        self.handle.update(|domains| {
            domains.retain(|d, s| wanted.contains_key(d) || s.issuing);
            for (domain, app) in wanted {
                let status = domains
                    .entry(domain.clone())
                    .or_insert_with(|| DomainStatus {
                        app: app.clone(),
                        ..Default::default()
                    });
                status.app.clone_from(app);
                let Some(need) = plan::need(domain, &records, now, reef_acme::DEFAULT_RENEW_BEFORE)
                else {
                    status.last_error = None;
                    continue;
                };
                if let Err(e) = reef_acme::validate_domain(domain) {
                    status.last_error = Some(format!("cannot be ordered over ACME: {e}"));
                    continue;
                }
                let waiting = status.retry_at.is_some_and(|at| at > Instant::now());
                if status.issuing || waiting || start.len() + self.orders.len() >= MAX_ORDERS {
                    continue;
                }
                status.issuing = true;
                start.push((domain.clone(), need));
            }
        });
        for (domain, need) in start {
            tracing::info!(%domain, ?need, "ordering a certificate");
            let issuer = issuer.clone();
            self.orders.spawn(async move {
                let result = issuer.issue(&domain).await;
                (domain, result)
            });
        }
    }
}

/// The domains the running apps want, from the apps bucket and their current releases.
pub(crate) async fn wanted(store: &Store) -> Result<BTreeMap<String, String>, CoordinatorError> {
    let apps = store.apps.all().await?;
    let mut releases = BTreeMap::new();
    for app in &apps {
        let key = subjects::release_key(&app.name, app.version);
        if let Some((release, _)) = store.releases.get(&key).await? {
            releases.insert(app.name.clone(), release);
        }
    }
    Ok(plan::wanted_domains(&apps, &releases))
}
