//! Serving the API from a follower: every coordinator takes API requests from
//! the shared queue group, and a follower hands each one to the leader on the
//! leader's own subject and passes the answer back. During a failover the
//! relay waits (within the client's patience) for the next leader instead of
//! failing at once.

use crate::error::Report;
use async_nats::{Client, Message};
use reef_proto::api::{ApiError, ApiErrorKind, ApiReply};
use reef_proto::{encode, subjects};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a relayed request may wait for a leader to answer in all; the
/// CLI gives up after 5 s.
const RELAY_BUDGET: Duration = Duration::from_secs(4);
/// Pause before trying again when no leader answered.
const RELAY_RETRY: Duration = Duration::from_millis(100);

/// Relays one API request to the current leader (whose id `leader` holds) and
/// publishes its reply, or an `unavailable` error if no leader answered in time.
pub(crate) async fn relay(
    client: Client,
    mut leader: watch::Receiver<Option<String>>,
    msg: Message,
) {
    let Some(reply_to) = msg.reply.clone() else {
        tracing::debug!(subject = %msg.subject, "dropping API message without a reply subject");
        return;
    };
    let verb = super::tail(&msg.subject).to_string();
    let deadline = Instant::now() + RELAY_BUDGET;
    let mut last_error = String::from("no coordinator holds the leader lease");
    while Instant::now() < deadline {
        let current = leader.borrow_and_update().clone();
        let Some(id) = current else {
            // Wait for a leader to be seen, or for the budget to run out.
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, leader.changed()).await;
            continue;
        };
        let subject = format!("{}.{verb}", subjects::coordinator_api_prefix(&id));
        let left = deadline.saturating_duration_since(Instant::now());
        let request = client.request(subject, msg.payload.clone());
        match tokio::time::timeout(left, request).await {
            Ok(Ok(answer)) => {
                if let Err(e) = client.publish(reply_to, answer.payload).await {
                    tracing::warn!(error = %Report(&e), "could not pass a relayed API reply on");
                }
                return;
            }
            Ok(Err(e)) => last_error = format!("the leader did not answer: {e}"),
            Err(_) => last_error = "the leader did not answer in time".into(),
        }
        tokio::time::sleep(RELAY_RETRY.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
    tracing::debug!(%verb, error = %last_error, "relayed API request failed");
    let reply = ApiReply(Err(ApiError::new(
        ApiErrorKind::Unavailable,
        format!("{last_error}; a coordinator failover may be under way, retry in a few seconds"),
    )));
    if let Ok(bytes) = encode(&reply) {
        if let Err(e) = client.publish(reply_to, bytes).await {
            tracing::warn!(error = %Report(&e), "could not send an API error reply");
        }
    }
}
