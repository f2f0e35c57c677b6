//! `[services.nats]` end to end: the app's instances get a credential of
//! the app's own on the cluster's NATS (`NATS_URL`, `NATS_CREDS`, `NATS_CA`,
//! `NATS_INBOX_PREFIX`), which works on `app.<name>.>` and nothing of reef's
//! or another app's, and is revoked when the app is destroyed.

use futures::StreamExt;
use reef_tests::app::write_named_app;
use reef_tests::{eventually, http, TestCluster};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn env(port: u16, name: &str) -> Option<String> {
    http::get(port, "chat.test", &format!("/env/{name}"))
        .await
        .ok()
        .filter(|r| r.status == 200 && !r.body.is_empty())
        .map(|r| r.body)
}

/// Connects as the app does, from its environment; the server's errors on
/// this connection are collected in the second value.
async fn connect(
    url: &str,
    creds: &str,
    ca: &str,
    inbox: &str,
) -> Result<(async_nats::Client, Arc<Mutex<Vec<String>>>), async_nats::ConnectError> {
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let seen = refusals.clone();
    let client = async_nats::ConnectOptions::with_credentials_file(creds)
        .await
        .expect("the creds file reads")
        .add_root_certificates(ca.into())
        .require_tls(true)
        .custom_inbox_prefix(inbox)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().expect("refusals").push(e.to_string());
                }
            }
        })
        .connect(url)
        .await?;
    Ok((client, refusals))
}

async fn refused(refusals: &Mutex<Vec<String>>, what: &str, subject: &str) -> bool {
    let wanted = format!("permissions violation for {what} to \"{subject}\"").to_lowercase();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if refusals
            .lock()
            .expect("refusals")
            .iter()
            .any(|e| e.to_lowercase().contains(&wanted))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_gets_a_nats_credential_of_its_own_limited_to_its_subjects() {
    let cluster = TestCluster::start(1).await;
    let chat = cluster.dir.path().join("chat");
    write_named_app(&chat, "chat", &["chat.test"], "", "\n[services.nats]\n");
    cluster.deploy(&chat).await;
    cluster.healthy_nodes("chat", 1).await;
    let port = cluster.proxy_port("node-1");
    let var = |name: &'static str| async move {
        eventually(name, Duration::from_secs(10), || env(port, name)).await
    };
    let url = var("NATS_URL").await;
    let creds = var("NATS_CREDS").await;
    let ca = var("NATS_CA").await;
    let inbox = var("NATS_INBOX_PREFIX").await;
    assert_eq!(inbox, "_INBOX_app_chat");
    // The credential is the app's to read, nobody else's.
    let meta = std::fs::metadata(&creds).expect("the creds file");
    assert_eq!(meta.mode() & 0o777, 0o600, "{creds}");
    assert_ne!(meta.uid(), 0, "{creds} belongs to the app's uid");
    let names = cluster.cli.ok(&["secrets", "list", "chat"]).await.stdout;
    assert!(names.contains("NATS_CREDS"), "{names}");

    let (client, refusals) = connect(&url, &creds, &ca, &inbox)
        .await
        .expect("the app's credential connects");
    // Its own subjects, both ways, and request and reply on its own inbox.
    let mut echo = client.subscribe("app.chat.echo").await.expect("subscribe");
    let answerer = client.clone();
    let answering = tokio::spawn(async move {
        if let Some(message) = echo.next().await {
            if let Some(reply) = message.reply {
                answerer
                    .publish(reply, message.payload)
                    .await
                    .expect("answer");
            }
        }
    });
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.request("app.chat.echo", "hello".into()),
    )
    .await
    .expect("answered in time")
    .expect("a reply");
    assert_eq!(&answer.payload[..], b"hello");
    answering.await.expect("the answer was sent");

    // Nothing of reef's, nor another app's.
    for subject in [
        "reef.api.admin.admin.app.list",
        "app.other.x",
        "$KV.reef-secrets.x",
    ] {
        client
            .publish(subject, "forged".into())
            .await
            .expect("publish");
        client.flush().await.expect("flush");
        assert!(
            refused(&refusals, "publish", subject).await,
            "publish to {subject} was not refused: {:?}",
            refusals.lock().expect("refusals")
        );
    }
    for subject in ["reef.>", "_INBOX.>", "app.other.>"] {
        let _subscription = client.subscribe(subject).await.expect("subscribe");
        client.flush().await.expect("flush");
        assert!(
            refused(&refusals, "subscription", subject).await,
            "subscribe to {subject} was not refused"
        );
    }

    // Destroyed: the credential is revoked (kept aside: the app's data
    // directory may go with it).
    let kept = cluster.dir.path().join("chat.creds");
    std::fs::copy(&creds, &kept).expect("copy the creds");
    let creds = kept.display().to_string();
    cluster.cli.ok(&["destroy", "chat", "--yes"]).await;
    eventually(
        "the credential refused",
        Duration::from_secs(15),
        || async {
            let attempt = tokio::time::timeout(
                Duration::from_secs(5),
                async_nats::ConnectOptions::with_credentials_file(creds.as_str())
                    .await
                    .expect("the creds file reads")
                    .add_root_certificates(ca.clone().into())
                    .require_tls(true)
                    .connection_timeout(Duration::from_secs(3))
                    .connect(url.as_str()),
            )
            .await;
            matches!(attempt, Ok(Err(_))).then_some(())
        },
    )
    .await;
}
