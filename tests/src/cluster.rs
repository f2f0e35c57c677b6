//! A whole test cluster: one nats-server, one coordinator, N agents.

use crate::nats::NatsServer;
use crate::reef::{Cli, ReefProcess};

pub struct TestCluster {
    pub nats: NatsServer,
    pub coordinator: ReefProcess,
    pub agents: Vec<ReefProcess>,
    pub cli: Cli,
    /// Logs, agent data directories and job scratch files.
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts NATS, a coordinator and agents `node-1`..`node-N`, and waits
    /// until every agent is registered and ready.
    pub async fn start(nodes: usize) -> Self {
        let nats = NatsServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
        let agents = (1..=nodes)
            .map(|i| ReefProcess::agent(&nats.url, dir.path(), &format!("node-{i}"), &[]))
            .collect();
        let cli = Cli::new(&nats.url);
        let cluster = Self {
            nats,
            coordinator,
            agents,
            cli,
            dir,
        };
        cluster.cli.wait_for_nodes(nodes).await;
        cluster
    }

    /// A path inside the cluster's temp dir, for job scratch files.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Every process log, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = format!("--- coordinator ---\n{}", self.coordinator.log_text());
        for agent in &self.agents {
            out.push_str(&format!(
                "\n--- {} ---\n{}",
                agent.log.display(),
                agent.log_text()
            ));
        }
        out
    }
}
