//! A whole test cluster: one nats-server, one coordinator, N agents.

use crate::nats::NatsServer;
use crate::reef::{Cli, ReefProcess};
use std::time::Duration;

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
        Self::start_with(nodes, &[], |_| Vec::new()).await
    }

    /// [`TestCluster::start`], the coordinator given the extra arguments
    /// `coordinator` and agent `node-I` the extra arguments `extra(I)`.
    pub async fn start_with(
        nodes: usize,
        coordinator: &[&str],
        extra: impl Fn(usize) -> Vec<String>,
    ) -> Self {
        let nats = NatsServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let coordinator = ReefProcess::coordinator(&nats.url, dir.path(), coordinator);
        let agents = (1..=nodes)
            .map(|i| {
                let extra = extra(i);
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                ReefProcess::agent(&nats.url, dir.path(), &format!("node-{i}"), &extra)
            })
            .collect();
        let cli = Cli::new(&nats.url);
        let cluster = Self {
            nats,
            coordinator,
            agents,
            cli,
            dir,
        };
        cluster.wait_ready(nodes).await;
        cluster
    }

    /// Waits until `nodes` agents are ready; on timeout, fails with every
    /// process's log, which says why one was not.
    pub async fn wait_ready(&self, nodes: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let listed = self.cli.nodes().await;
            let ready = listed.iter().filter(|n| n["state"] == "ready").count();
            if ready == nodes {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{ready} of {nodes} nodes ready after 30s: {listed:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A path for job scratch files: in the directory every agent shares
    /// with its sandboxed work ([`crate::reef::shared_dir`]).
    pub fn path(&self, name: &str) -> String {
        crate::reef::shared_dir(self.dir.path())
            .join(name)
            .display()
            .to_string()
    }

    /// [`TestCluster::path`], created empty and writable by every uid (jobs
    /// run as uids of their own, and several may append to it).
    pub fn shared_file(&self, name: &str) -> String {
        crate::reef::shared_file(self.dir.path(), name)
            .display()
            .to_string()
    }

    /// The agent named `node-N`.
    pub fn agent(&self, name: &str) -> &ReefProcess {
        let n: usize = name
            .trim_start_matches("node-")
            .parse()
            .expect("agents are named node-N");
        &self.agents[n - 1]
    }

    /// The proxy port of the agent named `node-N`.
    pub fn proxy_port(&self, name: &str) -> u16 {
        self.agent(name).http_port.expect("agents run a proxy")
    }

    /// The names of every agent, `node-1`..`node-N`.
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.agents.len())
            .map(|i| format!("node-{i}"))
            .collect()
    }

    /// `reef deploy DIR`, insisting it succeeds.
    pub async fn deploy(&self, dir: &std::path::Path) {
        self.cli
            .ok(&["deploy", dir.to_str().expect("a UTF-8 path")])
            .await;
    }

    /// Waits until `app` has exactly `count` live instances, all healthy,
    /// and returns their nodes' names.
    pub async fn healthy_nodes(&self, app: &str, count: usize) -> Vec<String> {
        crate::eventually(
            &format!("{count} healthy instances of {app}"),
            std::time::Duration::from_secs(30),
            || async {
                let out = self.cli.run(&["status", app, "--json"]).await;
                if out.code != Some(0) {
                    return None;
                }
                let status = out.json();
                let instances = status["instances"].as_array().cloned().unwrap_or_default();
                let healthy: Vec<String> = instances
                    .iter()
                    .filter(|i| i["state"] == "healthy")
                    .filter_map(|i| i["node_name"].as_str().map(str::to_string))
                    .collect();
                (instances.len() == count && healthy.len() == count).then_some(healthy)
            },
        )
        .await
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
