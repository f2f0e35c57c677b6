//! The cluster's servers in `reef-servers`, from one server's side: its
//! own record kept current (its addresses can change with its flags), and
//! the list read back so the server's local copy (`servers.json`) and its
//! nats-server's routes follow the cluster. The bucket is tiny and is read
//! whole every few seconds: a read survives the bucket being made again
//! (as a move into a cluster does), where a watch would not.

use anyhow::{anyhow, Result};
use async_nats::jetstream;
use reef_proto::servers::ServerRecord;
use reef_proto::{decode, encode, subjects};
use std::time::Duration;

/// How long one read of the bucket may take.
const READ_WITHIN: Duration = Duration::from_secs(3);

async fn bucket(js: &jetstream::Context) -> Result<jetstream::kv::Store> {
    js.get_key_value(subjects::SERVERS_BUCKET)
        .await
        .map_err(|e| anyhow!("the servers' bucket: {e}"))
}

/// Every server recorded in the cluster, by name.
pub async fn read(js: &jetstream::Context) -> Result<Vec<ServerRecord>> {
    tokio::time::timeout(READ_WITHIN, async {
        use futures::TryStreamExt as _;
        let kv = bucket(js).await?;
        let keys: Vec<String> = kv
            .keys()
            .await
            .map_err(|e| anyhow!("the servers' bucket: {e}"))?
            .try_collect()
            .await
            .map_err(|e| anyhow!("the servers' bucket: {e}"))?;
        let mut servers = Vec::new();
        for key in keys {
            let Some(bytes) = kv
                .get(&key)
                .await
                .map_err(|e| anyhow!("the servers' bucket: {e}"))?
            else {
                continue;
            };
            match decode::<ServerRecord>(&bytes) {
                Ok(server) if server.validate().is_ok() => servers.push(server),
                _ => tracing::warn!(key, "skipping a malformed server record"),
            }
        }
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(servers)
    })
    .await
    .map_err(|_| anyhow!("the servers' bucket did not answer within {READ_WITHIN:?}"))?
}

/// Records `me` unless the bucket already holds exactly that; the time it
/// first joined is kept.
pub async fn record(js: &jetstream::Context, me: &ServerRecord) -> Result<()> {
    let kv = bucket(js).await?;
    let stored = kv
        .get(&me.name)
        .await
        .map_err(|e| anyhow!("the servers' bucket: {e}"))?
        .and_then(|bytes| decode::<ServerRecord>(&bytes).ok());
    let mut wanted = me.clone();
    if let Some(stored) = &stored {
        wanted.joined_at_ms = stored.joined_at_ms;
        if *stored == wanted {
            return Ok(());
        }
    }
    kv.put(&me.name, encode(&wanted)?)
        .await
        .map_err(|e| anyhow!("the servers' bucket: {e}"))?;
    Ok(())
}

/// Whether the cluster's state holds this server's record: the sign,
/// on a server that joined, that the first server's state has arrived.
pub async fn holds(js: &jetstream::Context, name: &str) -> bool {
    let found = tokio::time::timeout(READ_WITHIN, async {
        let kv = bucket(js).await.ok()?;
        kv.get(name).await.ok().flatten()
    })
    .await;
    matches!(found, Ok(Some(_)))
}
