//! Reading the coordinator leadership lease straight from its bucket.

use reef_proto::leader::LeaderLease;
use reef_proto::{decode, subjects};

/// The current leader's lease, or None when no coordinator holds it (or the
/// bucket does not exist yet).
pub async fn current(client: &async_nats::Client) -> Option<LeaderLease> {
    let js = async_nats::jetstream::new(client.clone());
    let kv = js.get_key_value(subjects::LEADER_BUCKET).await.ok()?;
    let value = kv.get(subjects::LEADER_KEY).await.ok()??;
    decode::<LeaderLease>(&value).ok()
}

/// Waits (up to 15 s) until a coordinator holds the lease; returns it.
pub async fn wait(client: &async_nats::Client) -> LeaderLease {
    crate::eventually("a leader", std::time::Duration::from_secs(15), || async {
        current(client).await
    })
    .await
}
