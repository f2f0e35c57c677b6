//! Following the cluster's routes: a task watches the routes bucket (every
//! key's latest entry first, then each change) and hands each app's entry to
//! the proxy routing, so this node forwards requests for apps it does not
//! run to the nodes that do. A failed or ended watch is started again after
//! a backoff (entries seen again are recognised by revision); the task ends
//! on shutdown.

use crate::Agent;
use async_nats::jetstream::kv;
use futures::StreamExt;
use reef_proto::app_routes::AppRoutes;
use reef_proto::{decode, subjects};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The first wait after a failed watch; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one read or watch setup may take.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a draining instance waits for a fresh read of its app's routes.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// Why following the routes stopped for a moment.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoutesError {
    /// The bucket is not there yet (no coordinator has started) or NATS is away.
    #[error("cannot open the routes bucket: {0}")]
    Open(String),
    #[error("cannot watch the routes bucket: {0}")]
    Watch(String),
    #[error("the routes watch ended")]
    Ended,
}

impl Agent {
    /// Follows the routes bucket until shutdown.
    pub(crate) async fn watch_routes(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        let mut ever_watched = false;
        loop {
            let mut watching = false;
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                result = self.follow_routes(&mut watching) => result,
            };
            if watching {
                backoff = FIRST_BACKOFF;
            }
            let Err(error) = result;
            ever_watched |= watching;
            if ever_watched {
                tracing::warn!(error = %error, retry_in = ?backoff, "routes watch interrupted");
            } else {
                // Normal until a coordinator has created the bucket.
                tracing::debug!(error = %error, retry_in = ?backoff, "routes not watched yet");
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One watch: every key's latest entry, then every change, until it fails.
    async fn follow_routes(
        &self,
        watching: &mut bool,
    ) -> Result<std::convert::Infallible, RoutesError> {
        let bucket = self.routes_bucket().await?;
        let mut watch = tokio::time::timeout(NATS_TIMEOUT, bucket.watch_with_history(">"))
            .await
            .map_err(|_| RoutesError::Watch("timed out".into()))?
            .map_err(|e| RoutesError::Watch(e.to_string()))?;
        tracing::debug!("following the cluster's routes");
        *watching = true;
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(|e| RoutesError::Watch(e.to_string()))?;
            self.apply_routes_entry(&entry);
        }
        Err(RoutesError::Ended)
    }

    /// The routes bucket, opened once.
    async fn routes_bucket(&self) -> Result<kv::Store, RoutesError> {
        if let Some(bucket) = self.services.routing.bucket.get() {
            return Ok(bucket.clone());
        }
        let bucket =
            tokio::time::timeout(NATS_TIMEOUT, self.js.get_key_value(subjects::ROUTES_BUCKET))
                .await
                .map_err(|_| RoutesError::Open("timed out".into()))?
                .map_err(|e| RoutesError::Open(e.to_string()))?;
        Ok(self.services.routing.bucket.get_or_init(|| bucket).clone())
    }

    /// Reads `app`'s routes now, bypassing the watch (bounded; on failure the
    /// routing stays as the watch left it).
    pub(crate) async fn refresh_cluster_routes(&self, app: &str) {
        let read = async {
            let bucket = self.routes_bucket().await?;
            bucket
                .entry(app)
                .await
                .map_err(|e| RoutesError::Watch(e.to_string()))
        };
        match tokio::time::timeout(REFRESH_TIMEOUT, read).await {
            Ok(Ok(Some(entry))) => self.apply_routes_entry(&entry),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!(%app, error = %e, "could not read the app's routes"),
            Err(_) => tracing::debug!(%app, "reading the app's routes timed out"),
        }
    }

    fn apply_routes_entry(&self, entry: &kv::Entry) {
        let routes = match entry.operation {
            kv::Operation::Delete | kv::Operation::Purge => None,
            kv::Operation::Put => match decode::<AppRoutes>(&entry.value) {
                Ok(routes) if routes.app == entry.key => Some(routes),
                Ok(routes) => {
                    self.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key = %entry.key, app = %routes.app, "ignoring routes stored under another app's key");
                    return;
                }
                Err(e) => {
                    self.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key = %entry.key, error = %e, "ignoring malformed routes");
                    return;
                }
            },
        };
        let backends = routes.as_ref().map_or(0, |r| r.backends.len());
        if self.services.routing.apply_cluster(
            &self.router,
            self.node,
            &entry.key,
            entry.revision,
            routes,
        ) {
            tracing::debug!(app = %entry.key, revision = entry.revision, backends, "cluster routes applied");
        }
    }
}
