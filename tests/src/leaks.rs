//! Looking for a secret where it must not be: in any message of any
//! JetStream stream, or in any file under a directory.

use std::path::{Path, PathBuf};

/// Fails if `needle` appears in any message of any JetStream stream (every
/// KV bucket, the logs, events and commands); returns the streams scanned.
pub async fn assert_nowhere_in_nats(
    nats: &crate::NatsUrl,
    needle: &[u8],
    what: &str,
) -> Vec<String> {
    let client = nats.connect().await;
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = futures::StreamExt::collect::<Vec<_>>(js.stream_names())
        .await
        .into_iter()
        .map(|n| n.expect("name"))
        .collect();
    let mut scanned = 0;
    for name in &names {
        let mut stream = js.get_stream(name).await.expect("stream");
        let info = stream.info().await.expect("info").clone();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if let Ok(msg) = stream.get_raw_message(seq).await {
                scanned += 1;
                assert!(
                    !msg.payload.windows(needle.len()).any(|w| w == needle),
                    "{what} in the clear in stream {name} at {seq}"
                );
            }
        }
    }
    assert!(scanned > 0, "no message was scanned");
    names
}

/// Files under `dir` that contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            found.push(path);
        }
    }
    found
}
