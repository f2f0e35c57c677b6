//! The cluster's servers on the leader: `server.join` enrolls a machine
//! that holds a server token as a server (its node's credential, the
//! cluster's keys sealed to the X25519 key it made, and its record in
//! `reef-servers`, from which every server renders its nats-server's
//! routes), and `server.list` shows the servers and every stream's copies.

use crate::drive::Coordinator;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::servers::{ServerRecord, StreamHealth};
use reef_proto::{now_ms, NodeId};

/// What a joining server receives.
pub(crate) struct JoinedServer {
    pub node: NodeId,
    pub jwt: String,
    /// The cluster directory's shared files, sealed to the server.
    pub bundle: Vec<u8>,
    /// Every server, the new one included.
    pub servers: Vec<ServerRecord>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ApiErrorKind::Unavailable, e.to_string())
}

impl Coordinator {
    /// Enrolls the machine holding server token `token` as server `name`.
    pub(crate) async fn join_server(
        &mut self,
        token: &str,
        name: String,
        public_key: String,
        sealing_key: [u8; 32],
        route: String,
        client: String,
    ) -> Result<JoinedServer, ApiError> {
        let invalid = |m: String| ApiError::new(ApiErrorKind::Invalid, m);
        let authority = self.authority()?;
        let Some(cluster_key) = authority.cluster_key.clone() else {
            return Err(unavailable(
                "this coordinator has no cluster key file to hand to a new server",
            ));
        };
        let mut record = ServerRecord {
            name,
            // Replaced below, once the token is used.
            node: NodeId::new(),
            route,
            client,
            joined_at_ms: now_ms(),
        };
        record.validate().map_err(invalid)?;
        // Everything that can be refused is refused before the token is used.
        let servers = self.list_servers().await?;
        if servers.is_empty() {
            return Err(invalid(
                "no server is recorded in this cluster: its NATS is not run by `reef server`, \
                 so another server cannot join it; join this machine as a node (`reef join TOKEN`)"
                    .into(),
            ));
        }
        if servers.iter().any(|server| server.name == record.name) {
            return Err(invalid(format!(
                "a server named {} is already in the cluster: join with another --name",
                record.name
            )));
        }
        let (node, jwt) = self.join(token, public_key).await?;
        record.node = node;
        let document = reef_trust::bundle::pack(&authority.dir, &cluster_key)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        let bundle = reef_secrets::seal(
            &sealing_key,
            &reef_trust::bundle::context(&node.to_string()),
            &document,
        )
        .map_err(|e| invalid(format!("sealing_key: {e}")))?;
        self.store
            .servers
            .create_new(&record.name, &record)
            .await
            .map_err(|e| {
                unavailable(format!(
                    "server {} could not be recorded ({e}); its token is used up: \
                     create another with `reef token create --server`",
                    record.name
                ))
            })?;
        tracing::info!(server = %record.name, %node, route = %record.route, "server joined");
        let servers = self.list_servers().await?;
        Ok(JoinedServer {
            node,
            jwt,
            bundle,
            servers,
        })
    }

    /// Every server of the cluster, by name.
    pub(crate) async fn list_servers(&self) -> Result<Vec<ServerRecord>, ApiError> {
        let mut servers = self.store.servers.all().await.map_err(unavailable)?;
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(servers)
    }

    /// Every stream's copies, by name.
    pub(crate) async fn stream_health(&self) -> Result<Vec<StreamHealth>, ApiError> {
        use futures::StreamExt as _;
        let mut infos = self.store.js.streams();
        let mut streams = Vec::new();
        while let Some(info) = infos.next().await {
            let info = info.map_err(unavailable)?;
            let (leader, followers) = match info.cluster {
                Some(cluster) => (
                    cluster.leader,
                    cluster
                        .replicas
                        .into_iter()
                        .map(|peer| (peer.name, peer.current && !peer.offline))
                        .collect(),
                ),
                None => (None, Vec::new()),
            };
            streams.push(StreamHealth {
                name: info.config.name,
                replicas: info.config.num_replicas,
                leader,
                followers,
            });
        }
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(streams)
    }
}
