//! HTTP/1.1 upgrades (WebSocket and any other protocol a client switches
//! to): the Upgrade request is forwarded with its `Connection: upgrade` and
//! `Upgrade` headers, and once the instance answers 101 both connections are
//! taken over from hyper and joined by a tunnel that copies bytes both ways.
//!
//! The tunnel keeps its request counted in flight until it closes, so a
//! blue-green drain waits for open WebSockets (up to its deadline). It runs
//! as a tracked task that shutdown ends once the grace period is over.

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::load::InFlight;

/// Whether `request` asks to switch protocols: HTTP/1.1 with an `Upgrade`
/// header that `Connection` names.
pub(crate) fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(UPGRADE)
        && request
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Puts back on the next hop the two headers an upgrade travels with
/// (hop-by-hop headers are dropped otherwise).
pub(crate) fn keep_upgrade_headers(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, upgrade);
}

/// Both halves of an upgraded exchange, waiting to be joined.
#[derive(Debug)]
pub(crate) struct Tunnel {
    /// The client's connection, handed over once hyper sent it the 101.
    pub(crate) client: OnUpgrade,
    /// The instance's connection, handed over with its 101.
    pub(crate) upstream: OnUpgrade,
    /// Keeps the backend counted until the tunnel closes.
    pub(crate) in_flight: InFlight,
    pub(crate) app: Arc<str>,
    pub(crate) backend: String,
    /// How long the handovers may take.
    pub(crate) handover_timeout: Duration,
}

impl Tunnel {
    /// Runs the tunnel as a task of `tasks` until either side closes, or
    /// until `close_now` is cancelled.
    pub(crate) fn spawn(self, tasks: &TaskTracker, close_now: CancellationToken) {
        tasks.spawn(async move {
            tokio::select! {
                () = self.run() => {}
                () = close_now.cancelled() => {
                    tracing::debug!("upgraded connection closed: shutdown grace is over");
                }
            }
        });
    }

    async fn run(self) {
        let Self {
            client,
            upstream,
            in_flight,
            app,
            backend,
            handover_timeout,
        } = self;
        let _in_flight = in_flight;
        let handovers = async { tokio::try_join!(client, upstream) };
        let (client, upstream) = match tokio::time::timeout(handover_timeout, handovers).await {
            Ok(Ok(both)) => both,
            Ok(Err(error)) => {
                tracing::debug!(%app, %backend, %error, "upgrade failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%app, %backend, "upgrade did not complete in time");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((sent, received)) => {
                tracing::debug!(%app, %backend, sent, received, "upgraded connection closed");
            }
            Err(error) => {
                tracing::debug!(%app, %backend, %error, "upgraded connection broke");
            }
        }
    }
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;
