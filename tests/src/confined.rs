//! A NATS connection under one credential that records every permissions
//! violation the server reports on it, for tests of what a role may not do.

use crate::nats::NatsUrl;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client connected with one credential, and the server's refusals.
pub struct Confined {
    pub client: async_nats::Client,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl Confined {
    /// Connects with `creds` (over TLS, with the credential's own inbox).
    pub async fn connect(nats: &NatsUrl, creds: &Path) -> Self {
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let seen = refusals.clone();
        let text = std::fs::read_to_string(creds).expect("read creds");
        let who = reef_trust::identity::from_creds(&text).expect("a reef credential");
        let client = async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .expect("creds")
            .add_root_certificates(nats.ca())
            .require_tls(true)
            .custom_inbox_prefix(reef_proto::subjects::inbox_prefix(who.role, &who.name))
            .event_callback(move |event| {
                let seen = seen.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        seen.lock().expect("refusals").push(e.to_string());
                    }
                }
            })
            .connect(nats.to_string())
            .await
            .expect("connect with the credential");
        Self { client, refusals }
    }

    fn refused(&self, kind: &str, subject: &str) -> bool {
        let wanted = format!("permissions violation for {kind} to \"{subject}\"");
        self.refusals
            .lock()
            .expect("refusals")
            .iter()
            .any(|e| e.to_lowercase().contains(&wanted.to_lowercase()))
    }

    async fn wait_refused(&self, kind: &str, subject: &str) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if self.refused(kind, subject) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Publishes to `subject`; true once the server said it may not.
    pub async fn publish_refused(&self, subject: &str) -> bool {
        self.client
            .publish(subject.to_string(), "forged".into())
            .await
            .expect("publish");
        self.client.flush().await.expect("flush");
        self.wait_refused("publish", subject).await
    }

    /// Subscribes to `subject`; true once the server said it may not.
    pub async fn subscribe_refused(&self, subject: &str) -> bool {
        let _subscription = self
            .client
            .subscribe(subject.to_string())
            .await
            .expect("subscribe");
        self.client.flush().await.expect("flush");
        self.wait_refused("subscription", subject).await
    }

    /// Waits (up to 15 s: the server may take its time on a busy machine)
    /// for the server to report an error containing `text`
    /// (case-insensitive) on this connection.
    pub async fn told(&self, text: &str) -> bool {
        let wanted = text.to_lowercase();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            if self
                .refusals
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

    /// Sends a request on `subject` and returns the answer.
    pub async fn request(&self, subject: &str, payload: bytes::Bytes) -> async_nats::Message {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.client.request(subject.to_string(), payload),
        )
        .await
        .expect("an answer in time")
        .expect("an answer")
    }
}
