//! Noticing at once that a node's agent, or the leader, is gone. The NATS servers publish
//! an advisory whenever a client of the reef account disconnects
//! (`$SYS.ACCOUNT.<account>.DISCONNECT`, read through the system account).
//! When the connection of a node's credential was closed from the node's
//! side (its process exited or was killed, and its kernel closed the
//! socket), the node is treated as lost right away instead of after the
//! heartbeat grace. A connection the server gave up on (no answer to its
//! pings: a partition; or the server itself going away) still gets the
//! grace, so a node that is only cut off keeps its work that long. The
//! followers watch the same advisories for the leader's connection (see
//! `leader.rs`).

use crate::drive::Coordinator;
use crate::error::Report;
use futures::StreamExt;
use reef_proto::NodeId;
use serde::Deserialize;

/// The parts of a disconnect advisory reef reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Departure {
    /// The server the connection was on.
    #[serde(default)]
    pub(crate) server: DepartedServer,
    pub(crate) client: DepartedClient,
    #[serde(default)]
    pub(crate) reason: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DepartedServer {
    #[serde(default)]
    pub(crate) id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DepartedClient {
    /// The connection's id on its server.
    #[serde(default)]
    pub(crate) id: u64,
    /// The credential's public key, as the server authenticated it.
    #[serde(default)]
    pub(crate) user: String,
}

/// A subscription to the reef account's disconnect advisories through the
/// system account (None without one, logged).
pub(crate) async fn follow(authority: Option<&crate::Authority>) -> Option<async_nats::Subscriber> {
    let authority = authority?;
    match authority
        .system
        .subscribe(subject(&authority.dir.info.account))
        .await
    {
        Ok(subscriber) => Some(subscriber),
        Err(e) => {
            tracing::warn!(error = %Report(&e), "cannot follow disconnects; a gone node or leader is noticed by its silence only");
            None
        }
    }
}

/// The advisory in `payload`, if it is one.
pub(crate) fn parse(payload: &[u8]) -> Option<Departure> {
    serde_json::from_slice(payload).ok()
}

/// Whether a connection that ended for `reason` was closed by the client's
/// own side (nats-server's "Client Closed" for an orderly close or end of
/// file, "Read Error" for a reset): the process on the other end is gone.
pub(crate) fn closed_by_client(reason: &str) -> bool {
    matches!(reason, "Client Closed" | "Read Error")
}

/// The subject of the reef account's disconnect advisories.
pub(crate) fn subject(account: &str) -> String {
    format!("$SYS.ACCOUNT.{account}.DISCONNECT")
}

/// The next disconnect advisory; never, without a subscription.
pub(crate) async fn next(
    departures: Option<&mut async_nats::Subscriber>,
) -> Option<async_nats::Message> {
    match departures {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

impl Coordinator {
    /// Learns every node's credential key from the members bucket.
    pub(crate) async fn load_node_keys(&mut self) {
        match self.store.members.all().await {
            Ok(members) => {
                for member in members.into_iter().filter(|m| m.role == "node") {
                    if let Ok(node) = member.name.parse::<NodeId>() {
                        self.node_keys.insert(member.public_key, node);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %Report(&e), "could not read the nodes' credential keys")
            }
        }
    }

    /// Acts on one disconnect advisory.
    pub(crate) async fn handle_departure(&mut self, msg: async_nats::Message) {
        let Some(departure) = parse(&msg.payload) else {
            tracing::debug!(subject = %msg.subject, "not a disconnect advisory");
            return;
        };
        let Some(&node) = self.node_keys.get(&departure.client.user) else {
            return;
        };
        if !closed_by_client(&departure.reason) {
            tracing::info!(%node, reason = %departure.reason, "a node's connection dropped; it gets the grace period");
            return;
        }
        if self.cluster.gone(node) {
            tracing::warn!(%node, reason = %departure.reason, "a node's agent disconnected; its work moves now");
            self.check_liveness().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_closed_from_the_node_side_means_it_is_gone() {
        assert!(closed_by_client("Client Closed"));
        assert!(closed_by_client("Read Error"));
        for kept in [
            "Stale Connection",
            "Server Shutdown",
            "Slow Consumer (Write Deadline)",
            "Write Error",
            "",
        ] {
            assert!(!closed_by_client(kept), "{kept}");
        }
    }

    #[test]
    fn an_advisory_names_the_credential_and_the_reason() {
        let advisory = br#"{"type":"io.nats.server.advisory.v1.client_disconnect","id":"x",
            "server":{"name":"single","id":"NSERVER"},
            "client":{"id":7,"acc":"ACC","user":"UKEY","name":"reef-agent-node-1","name_tag":"n"},
            "sent":{"msgs":1},"reason":"Client Closed"}"#;
        let departure = parse(advisory).expect("parsed");
        assert_eq!(departure.client.user, "UKEY");
        assert_eq!(
            (departure.server.id.as_str(), departure.client.id),
            ("NSERVER", 7)
        );
        assert_eq!(departure.reason, "Client Closed");
        assert!(parse(b"not json").is_none());
        assert!(
            parse(br#"{"reason":"Client Closed"}"#).is_none(),
            "no client"
        );
        assert_eq!(subject("ACC"), "$SYS.ACCOUNT.ACC.DISCONNECT");
    }
}
