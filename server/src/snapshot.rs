//! JetStream's own snapshot and restore of a stream, over its API: a
//! snapshot is the stream's messages, its consumers and their state, exactly
//! (sequence numbers and KV revisions included), so a stream restored from
//! one carries on as if nothing had happened. Used to move a single
//! server's state into a NATS cluster ([`crate::migrate`]).
//!
//! The protocol: `$JS.API.STREAM.SNAPSHOT.<stream>` names an inbox; the
//! server answers with the stream's configuration and state, then sends the
//! snapshot there in chunks, each with a subject to acknowledge it on (its
//! flow control), and ends with an empty message whose status says whether
//! it is whole. `$JS.API.STREAM.RESTORE.<stream>` takes the configuration
//! and state and names a subject; each chunk is a request there, and an
//! empty request ends the restore and is answered with the stream's info.

use bytes::Bytes;
use futures::StreamExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A chunk of a snapshot, as asked of the server and sent back to it.
const CHUNK: usize = 128 * 1024;
/// How long the server may be silent in the middle of a transfer.
const SILENCE: Duration = Duration::from_secs(30);
/// How long the server may take to answer a restore's last request (it
/// then writes the stream whole).
const FINISH: Duration = Duration::from_secs(120);

/// What a snapshot or a restore can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("JetStream did not answer {subject}")]
    Request {
        subject: String,
        #[source]
        source: async_nats::RequestError,
    },
    #[error("JetStream refused {what} of stream {stream}: {reason}")]
    Refused {
        what: &'static str,
        stream: String,
        reason: String,
    },
    #[error("the snapshot of stream {stream} stopped: {reason}")]
    Interrupted { stream: String, reason: String },
    #[error("{}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not subscribe for the snapshot of stream {stream}")]
    Subscribe {
        stream: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    #[error("could not send to JetStream")]
    Publish(#[source] async_nats::PublishError),
}

/// A stream's configuration and state as its snapshot recorded them; a
/// restore gives them back unchanged.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Described {
    pub config: serde_json::Value,
    pub state: serde_json::Value,
}

/// The server's answer to an API call: its `error`, or the document.
fn answer(
    what: &'static str,
    stream: &str,
    payload: &[u8],
) -> Result<serde_json::Value, SnapshotError> {
    let refused = |reason: String| SnapshotError::Refused {
        what,
        stream: stream.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| refused(format!("not JSON: {e}")))?;
    if let Some(error) = value.get("error") {
        let reason = error
            .get("description")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        return Err(refused(reason));
    }
    Ok(value)
}

/// How often a request that found no one listening is sent again: in a
/// cluster, the subscription a restore made on one server reaches the
/// others a moment later.
const NO_RESPONDERS_TRIES: u32 = 50;

async fn request(
    client: &async_nats::Client,
    subject: String,
    payload: Bytes,
    timeout: Duration,
) -> Result<async_nats::Message, SnapshotError> {
    let mut tries = 0;
    loop {
        let sent = client
            .send_request(
                subject.clone(),
                async_nats::Request::new()
                    .payload(payload.clone())
                    .timeout(Some(timeout)),
            )
            .await;
        match sent {
            Err(e)
                if e.kind() == async_nats::RequestErrorKind::NoResponders
                    && tries < NO_RESPONDERS_TRIES =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map_err(|source| SnapshotError::Request { subject, source }),
        }
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a snapshot of `stream` (its consumers included) to `out`;
/// returns its configuration and state.
pub async fn save(
    client: &async_nats::Client,
    stream: &str,
    out: &Path,
) -> Result<Described, SnapshotError> {
    let inbox = client.new_inbox();
    let mut chunks =
        client
            .subscribe(inbox.clone())
            .await
            .map_err(|source| SnapshotError::Subscribe {
                stream: stream.to_string(),
                source,
            })?;
    let ask = serde_json::json!({ "deliver_subject": inbox, "chunk_size": CHUNK });
    let reply = request(
        client,
        format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        Bytes::from(ask.to_string()),
        SILENCE,
    )
    .await?;
    let described = answer("a snapshot", stream, &reply.payload)?;
    let described = Described {
        config: described["config"].clone(),
        state: described["state"].clone(),
    };
    let mut file = tokio::fs::File::create(out)
        .await
        .map_err(file_error(out))?;
    let interrupted = |reason: String| SnapshotError::Interrupted {
        stream: stream.to_string(),
        reason,
    };
    loop {
        let chunk = tokio::time::timeout(SILENCE, chunks.next())
            .await
            .map_err(|_| interrupted(format!("nothing for {}s", SILENCE.as_secs())))?
            .ok_or_else(|| interrupted("the subscription ended".into()))?;
        if chunk.payload.is_empty() {
            // The end: a status other than 204 (or none, for an empty
            // stream) says the snapshot is not whole.
            match chunk.status.map(u16::from) {
                None | Some(204) => break,
                Some(code) => {
                    return Err(interrupted(format!(
                        "status {code}: {}",
                        chunk.description.unwrap_or_default()
                    )))
                }
            }
        }
        file.write_all(&chunk.payload)
            .await
            .map_err(file_error(out))?;
        if let Some(ack) = chunk.reply {
            client
                .publish(ack, Bytes::new())
                .await
                .map_err(SnapshotError::Publish)?;
        }
    }
    file.sync_all().await.map_err(file_error(out))?;
    Ok(described)
}

/// Creates `stream` from the snapshot in `from`, as `described`.
pub async fn restore(
    client: &async_nats::Client,
    stream: &str,
    described: &Described,
    from: &Path,
) -> Result<(), SnapshotError> {
    let ask = serde_json::json!({ "config": described.config, "state": described.state });
    let reply = request(
        client,
        format!("$JS.API.STREAM.RESTORE.{stream}"),
        Bytes::from(ask.to_string()),
        SILENCE,
    )
    .await?;
    let started = answer("a restore", stream, &reply.payload)?;
    let Some(deliver) = started["deliver_subject"].as_str().map(str::to_string) else {
        return Err(SnapshotError::Refused {
            what: "a restore",
            stream: stream.to_string(),
            reason: "no subject to send the snapshot to".into(),
        });
    };
    let mut file = tokio::fs::File::open(from)
        .await
        .map_err(file_error(from))?;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = file.read(&mut buffer).await.map_err(file_error(from))?;
        if read == 0 {
            break;
        }
        let ack = request(
            client,
            deliver.clone(),
            Bytes::copy_from_slice(&buffer[..read]),
            SILENCE,
        )
        .await?;
        if !ack.payload.is_empty() {
            answer("a restore", stream, &ack.payload)?;
        }
    }
    let done = request(client, deliver, Bytes::new(), FINISH).await?;
    answer("a restore", stream, &done.payload).map(drop)
}

/// Deletes `stream`.
pub async fn delete(client: &async_nats::Client, stream: &str) -> Result<(), SnapshotError> {
    let reply = request(
        client,
        format!("$JS.API.STREAM.DELETE.{stream}"),
        Bytes::new(),
        SILENCE,
    )
    .await?;
    answer("the deletion", stream, &reply.payload).map(drop)
}

/// The names of every stream of the account.
pub async fn streams(client: &async_nats::Client) -> Result<Vec<String>, SnapshotError> {
    let mut names = Vec::new();
    loop {
        let ask = serde_json::json!({ "offset": names.len() });
        let reply = request(
            client,
            "$JS.API.STREAM.NAMES".into(),
            Bytes::from(ask.to_string()),
            SILENCE,
        )
        .await?;
        let page = answer("the list", "*", &reply.payload)?;
        let batch: Vec<String> = page["streams"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let empty = batch.is_empty();
        names.extend(batch);
        if empty || names.len() >= total {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// Whether the account's JetStream answers (in a cluster: has a leader).
pub async fn jetstream_ready(client: &async_nats::Client) -> bool {
    match request(
        client,
        "$JS.API.INFO".into(),
        Bytes::new(),
        Duration::from_secs(2),
    )
    .await
    {
        Ok(reply) => answer("the account info", "*", &reply.payload).is_ok(),
        Err(_) => false,
    }
}
