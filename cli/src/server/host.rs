//! One server's machine as `reef server` sees it: its data dir (the
//! cluster directory, the key that encrypts secrets, its node's
//! credential), where its nats-server listens, what its certificate names,
//! and how its nats-server is configured and run for a [`Shape`].

use crate::client;
use anyhow::{anyhow, bail, Context as _, Result};
use reef_server::migrate::{self, MigrateError};
use reef_server::natsd;
use reef_server::topology::Shape;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Where a server is reached: the flags `reef server` and `reef join
/// --server` share.
#[derive(clap::Args, Clone, Debug)]
pub struct PlaceArgs {
    /// A name or IP address other machines reach this server at
    /// (repeatable); all go in its TLS certificate, and the first in join
    /// tokens and in its record [default: --advertise, else this machine's
    /// IP on its default route].
    #[arg(long = "host", value_name = "NAME|IP")]
    pub hosts: Vec<String>,
    /// Where nats-server listens for the agents, coordinators and the CLI.
    #[arg(long, default_value = "0.0.0.0:4222")]
    pub nats_listen: SocketAddr,
    /// Where nats-server listens for the other servers' routes (TLS, the
    /// cluster's CA on both sides).
    #[arg(long, default_value = "0.0.0.0:6222")]
    pub cluster_listen: SocketAddr,
}

impl PlaceArgs {
    /// The names and addresses other machines reach this server at.
    pub fn public_hosts(&self, advertise: Option<IpAddr>) -> Vec<String> {
        if !self.hosts.is_empty() {
            return self.hosts.clone();
        }
        let ip = advertise
            .or_else(|| (!self.nats_listen.ip().is_unspecified()).then(|| self.nats_listen.ip()))
            .or_else(default_route_ip);
        match ip {
            Some(ip) => vec![ip.to_string()],
            None => vec![crate::daemons::host_name()],
        }
    }
}

/// This machine's address on its default route (no packet is sent).
fn default_route_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // TEST-NET-1: routed like any public address, never answered.
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// The address this machine reaches a listener on `listen` at.
pub fn local(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// A host for a URL or an address: an IPv6 address in brackets.
pub fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_string(),
    }
}

/// One server's machine.
pub struct ServerHost {
    pub dir: PathBuf,
    pub name: String,
    pub cluster: reef_trust::ClusterDir,
    /// What its certificate names.
    pub cert_hosts: Vec<String>,
    pub cluster_listen: SocketAddr,
    pub nats_binary: PathBuf,
    /// Where other machines reach its routes and its clients' port: its
    /// record's addresses.
    pub advertised: reef_proto::servers::ServerRecord,
}

impl ServerHost {
    /// The host of `dir`, which holds a cluster.
    pub fn open(
        dir: &Path,
        name: &str,
        place: &PlaceArgs,
        hosts: &[String],
        nats_binary: PathBuf,
    ) -> Result<ServerHost> {
        let cluster = reef_trust::ClusterDir::open(dir)?;
        let mut cert_hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            local(place.nats_listen).ip().to_string(),
            local(place.cluster_listen).ip().to_string(),
            crate::daemons::host_name(),
        ];
        cert_hosts.extend(hosts.iter().cloned());
        cert_hosts.sort();
        cert_hosts.dedup();
        let advertised = own_record(dir, name, hosts, place)?;
        Ok(ServerHost {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            cluster,
            cert_hosts,
            cluster_listen: place.cluster_listen,
            nats_binary,
            advertised,
        })
    }

    /// Settings for a connection as the holder of `creds` (a file in the
    /// data dir) to `urls`.
    pub fn as_user(&self, creds: &str, urls: String) -> client::Nats {
        client::Nats {
            urls,
            creds: Some(self.dir.join(creds)),
            ca: Some(self.dir.join("tls/ca.pem")),
        }
    }

    /// The node credential of this server's agent.
    pub fn node_creds(&self) -> PathBuf {
        self.dir.join("node/node.creds")
    }
}

/// This server's record: its node, and its addresses under its first host.
fn own_record(
    dir: &Path,
    name: &str,
    hosts: &[String],
    place: &PlaceArgs,
) -> Result<reef_proto::servers::ServerRecord> {
    let creds = dir.join("node/node.creds");
    let who = reef_trust::identity::read_creds_file(&creds)
        .map_err(|e| anyhow!("{}: {e}", creds.display()))?;
    let (node, _) = who
        .node
        .ok_or_else(|| anyhow!("{} is not a node's credential", creds.display()))?;
    let at = url_host(&hosts[0]);
    let record = reef_proto::servers::ServerRecord {
        name: name.to_string(),
        node,
        route: format!("{at}:{}", place.cluster_listen.port()),
        client: format!("{at}:{}", place.nats_listen.port()),
        joined_at_ms: reef_proto::now_ms(),
    };
    record.validate().map_err(|e| anyhow!("--host: {e}"))?;
    Ok(record)
}

impl migrate::Host for ServerHost {
    fn configure(&self, shape: &Shape, client: SocketAddr) -> Result<(), MigrateError> {
        let cluster = match shape {
            Shape::Standalone => None,
            Shape::Clustered { routes } => Some(reef_trust::natsconf::ClusterRoutes {
                name: self.cluster.info.name.clone(),
                listen: self.cluster_listen.to_string(),
                routes: routes.clone(),
                advertise: Some(self.advertised.route.clone()),
            }),
        };
        self.cluster
            .write_server_config(reef_trust::ServerSpec {
                name: self.name.clone(),
                listen: client.to_string(),
                hosts: self.cert_hosts.clone(),
                dir: self.nats_dir(),
                cluster,
                max_payload: None,
                // Clients fail over to the addresses servers tell them of:
                // the ones other machines reach, not the listeners' own.
                client_advertise: Some(self.advertised.client.clone()),
            })
            .map(drop)
            .map_err(|e| MigrateError::Configure(e.to_string()))
    }

    fn spec(&self, client: SocketAddr) -> natsd::Spec {
        let dir = self.nats_dir();
        natsd::Spec {
            binary: self.nats_binary.clone(),
            config: dir.join("nats.conf"),
            log: dir.join("nats-server.log"),
            probe: local(client),
            pid_file: dir.join("nats-server.pid"),
        }
    }

    async fn connect(&self, at: SocketAddr) -> Result<async_nats::Client, MigrateError> {
        let admin = self.as_user("admin.creds", format!("tls://{}", local(at)));
        client::connect(&admin)
            .await
            .map(|conn| conn.client)
            .map_err(|e| MigrateError::Connect {
                at,
                reason: format!("{e:#}"),
            })
    }

    fn nats_dir(&self) -> PathBuf {
        self.dir.join("nats")
    }
}

/// Makes `dir` a server's data dir if it is not one: on an empty one, a
/// new cluster named `cluster_name` (true then). Either way the key that
/// encrypts secrets and this server's node credential are there after.
pub fn prepare(dir: &Path, cluster_name: &str) -> Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    if dir.join("node.creds").exists() && !dir.join("cluster.json").exists() {
        bail!(
            "{} holds a node that joined a cluster (`reef join`), not a server's cluster: \
             pass another --data-dir",
            dir.display()
        );
    }
    let created = !dir.join("cluster.json").exists();
    let cluster = match created {
        true => reef_trust::ClusterDir::init(dir, cluster_name)?,
        false => reef_trust::ClusterDir::open(dir)?,
    };
    let key = dir.join(reef_trust::bundle::CLUSTER_KEY);
    reef_secrets::ClusterKey::load_or_create(&key)
        .map_err(|e| anyhow!("{}: {e}", key.display()))?;
    let creds = dir.join("node/node.creds");
    if !creds.exists() {
        // A node that ran before keeps its id.
        let id = std::fs::read_to_string(dir.join("node/node-id"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(reef_proto::NodeId::new);
        let text = cluster.issue_node(id, reef_trust::NodeTrust::Dedicated)?;
        std::fs::create_dir_all(dir.join("node"))?;
        crate::cluster::write_private(&creds, text.as_bytes())?;
    }
    Ok(created)
}
