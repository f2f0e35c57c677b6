//! The leader's notifier: every cluster event, read from its stream through
//! a durable consumer, is POSTed as JSON to each webhook that wants its
//! kind, tried three times, and counted as delivered or failed in the
//! webhook's record (`reef notify list`). An event is acknowledged once
//! every webhook had its tries, so one a leader was delivering when it
//! stopped is delivered by the next (at least once).

use crate::store::Store;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reef_proto::events::ClusterEvent;
use reef_proto::notify::Webhook;
use reef_proto::{decode, subjects, Report};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The durable consumer the notifier reads events with.
const CONSUMER: &str = "notifier";
/// Tries per event and webhook, and the waits between them.
const RETRY_WAITS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
/// How long one POST may take, connection included.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read (and then dropped).
const MAX_ANSWER: usize = 64 * 1024;
/// Between attempts to open the consumer.
const REOPEN: Duration = Duration::from_secs(2);

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The notifier of one term.
pub(crate) struct Notifier {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Notifier {
    pub(crate) fn start(store: Store, shutdown: &CancellationToken) -> Self {
        let stop = shutdown.child_token();
        let task = tokio::spawn(run(store, stop.clone()));
        Self { stop, task }
    }

    /// Stops it; an event it was delivering stays for the next leader.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %Report(&e), "the notifier failed");
        }
    }
}

async fn run(store: Store, stop: CancellationToken) {
    let client = match client() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks are not sent: no HTTP client");
            return;
        }
    };
    loop {
        let mut messages = tokio::select! {
            () = stop.cancelled() => return,
            opened = open(&store.js) => match opened {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::debug!(error = %e, "events not followed yet");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(REOPEN) => continue,
                    }
                }
            },
        };
        loop {
            let msg = tokio::select! {
                () = stop.cancelled() => return,
                msg = messages.next() => msg,
            };
            let msg = match msg {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    tracing::debug!(error = %Report(&e), "reading events failed; reading again");
                    break;
                }
                None => break,
            };
            match decode::<ClusterEvent>(&msg.payload) {
                Ok(event) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = notify(&store, &client, &event) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %Report(&e), "an event that does not decode was skipped")
                }
            }
            if let Err(e) = msg.ack().await {
                tracing::debug!(error = %Report(&*e), "an event was not acknowledged; it may be sent again");
            }
        }
    }
}

async fn open(js: &jetstream::Context) -> Result<consumer::pull::Stream, async_nats::Error> {
    let stream = js.get_stream(subjects::CLUSTER_EVENTS_STREAM).await?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                // What happened before a leader first followed events is history.
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::Explicit,
                // Every webhook's tries fit well inside.
                ack_wait: Duration::from_secs(300),
                ..Default::default()
            },
        )
        .await?;
    Ok(consumer.messages().await?)
}

/// Sends `event` to every webhook that wants it, one after another.
async fn notify(store: &Store, client: &HttpClient, event: &ClusterEvent) {
    let hooks = match store.webhooks.all().await {
        Ok(hooks) => hooks,
        Err(e) => {
            tracing::warn!(error = %Report(&e), "webhooks could not be read; this event is not sent");
            return;
        }
    };
    let body = Bytes::from(body(event).to_string());
    for hook in hooks.iter().filter(|h| h.wants(event.kind)) {
        let outcome = deliver(client, hook, &body).await;
        let changed = store
            .webhooks
            .modify(&hook.name, |h| {
                match &outcome {
                    Ok(()) => h.delivered += 1,
                    Err(error) => {
                        h.failed += 1;
                        h.last_error = Some(reef_proto::audit::clip(error));
                        h.last_failure_ms = Some(reef_proto::now_ms());
                    }
                }
                true
            })
            .await;
        if let Err(e) = changed {
            tracing::warn!(webhook = %hook.name, error = %Report(&e), "a webhook's count could not be written");
        }
        if let Err(error) = outcome {
            tracing::warn!(webhook = %hook.name, kind = event.kind.name(), %error, "a webhook did not take an event");
        }
    }
}

/// The JSON a webhook receives.
pub(crate) fn body(event: &ClusterEvent) -> serde_json::Value {
    serde_json::json!({
        "at_ms": event.at_ms,
        "kind": event.kind.name(),
        "target": event.target,
        "message": event.message,
    })
}

/// POSTs `body` to `hook`, trying again after each wait; why the last try
/// failed, if every one did.
async fn deliver(client: &HttpClient, hook: &Webhook, body: &Bytes) -> Result<(), String> {
    let mut last = post(client, &hook.url, body.clone()).await;
    for wait in RETRY_WAITS {
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(wait).await;
        last = post(client, &hook.url, body.clone()).await;
    }
    last
}

async fn post(client: &HttpClient, url: &str, body: Bytes) -> Result<(), String> {
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("reef/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| format!("bad request: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| Report(&e).to_string())?;
        let status = response.status();
        // Read (a bounded part of) the answer, so the connection can be reused.
        let _ = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await;
        match status.is_success() {
            true => Ok(()),
            false => Err(format!("it answered HTTP {}", status.as_u16())),
        }
    };
    match tokio::time::timeout(POST_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {POST_TIMEOUT:?}")),
    }
}

/// An HTTP and HTTPS client trusting the public web roots.
fn client() -> Result<HttpClient, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let connector = reef_acme::web_connector(roots, POST_TIMEOUT, false)?;
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
