//! Every few seconds the leader gives every stream and bucket the copies
//! the servers call for (`plan::replicas`): three once there are three,
//! without stopping anything (JetStream copies a stream to its new
//! replicas while it serves).

use crate::drive::Coordinator;
use crate::error::Report;
use crate::plan::replicas::to_resize;
use std::time::{Duration, Instant};

/// How often the streams' replicas are compared with the servers.
const SIZE_EVERY: Duration = Duration::from_secs(5);

impl Coordinator {
    /// Gives every stream the copies the servers call for, at most every
    /// [`SIZE_EVERY`].
    pub(crate) async fn size_replicas(&mut self) {
        use futures::StreamExt as _;
        if self
            .replicas_sized
            .is_some_and(|last| last.elapsed() < SIZE_EVERY)
        {
            return;
        }
        self.replicas_sized = Some(Instant::now());
        let Ok(servers) = self.store.servers.keys().await else {
            return;
        };
        let mut infos = self.store.js.streams();
        let mut configs = Vec::new();
        while let Some(info) = infos.next().await {
            match info {
                Ok(info) => configs.push(info.config),
                Err(e) => {
                    tracing::debug!(error = %Report(&e), "streams not listed; their replicas are looked at later");
                    return;
                }
            }
        }
        let current: Vec<(String, usize)> = configs
            .iter()
            .map(|config| (config.name.clone(), config.num_replicas))
            .collect();
        let wanted = reef_proto::servers::replicas_for(servers.len());
        for name in to_resize(servers.len(), &current) {
            let Some(mut config) = configs.iter().find(|c| c.name == name).cloned() else {
                continue;
            };
            let from = config.num_replicas;
            config.num_replicas = wanted;
            match self.store.js.update_stream(&config).await {
                Ok(_) => {
                    tracing::info!(stream = %name, from, to = wanted, "stream replicas changed")
                }
                // A server that just joined may not be a JetStream peer yet.
                Err(e) => {
                    tracing::debug!(stream = %name, error = %Report(&e), "stream replicas not changed yet")
                }
            }
        }
    }
}
