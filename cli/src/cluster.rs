//! `reef cluster`: create a cluster's identity (operator, accounts, CA,
//! first credentials), write nats-server configurations that enforce it,
//! and issue credentials from the cluster directory on this machine.

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use reef_proto::roles::Role;
use reef_trust::natsconf::ClusterRoutes;
use reef_trust::{ClusterDir, NodeTrust, ServerSpec};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster's keys, the first admin's and the coordinators'
    /// credentials, a CA, and a nats-server configuration for this machine.
    Init(InitArgs),
    /// Write the configuration (and a certificate) for one more nats-server.
    NatsConfig(NatsConfigArgs),
    /// Issue a credentials file from the cluster directory: a user, the
    /// coordinators, or a node (which gets a fresh node id).
    Creds(CredsArgs),
    /// Replace the CA: a new CA key signs from now on, and `tls/ca.pem`
    /// trusts both until `--finish` (see docs/security.md for the steps).
    RotateCa(RotateCaArgs),
}

#[derive(Args)]
pub struct RotateCaArgs {
    /// The cluster directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// End the rotation: trust the new CA alone.
    #[arg(long)]
    pub finish: bool,
}

#[derive(Args)]
pub struct InitArgs {
    /// Where to keep the cluster's keys (created; must not hold a cluster).
    #[arg(long)]
    pub dir: PathBuf,
    /// The cluster's name.
    #[arg(long, default_value = "reef")]
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// One nats-server's address and certificate names.
#[derive(Args)]
pub struct ServerArgs {
    /// Where this nats-server listens for clients.
    #[arg(long, default_value = "127.0.0.1:4222")]
    pub listen: String,
    /// A name or IP address clients reach the server at, for its TLS
    /// certificate (repeatable) [always: localhost, 127.0.0.1, ::1].
    #[arg(long = "host", value_name = "NAME|IP")]
    pub hosts: Vec<String>,
}

#[derive(Args)]
pub struct NatsConfigArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// The server's name (unique in the NATS cluster).
    #[arg(long)]
    pub server_name: String,
    /// The server's own directory: certificate, JetStream store, accounts.
    #[arg(long)]
    pub server_dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where this server listens for the other servers' routes (clustered).
    #[arg(long)]
    pub cluster_listen: Option<String>,
    /// Every server's route URL, e.g. tls://10.0.0.2:6222 (repeatable).
    #[arg(long = "route")]
    pub routes: Vec<String>,
    /// The NATS cluster's name.
    #[arg(long, default_value = "reef")]
    pub cluster_name: String,
    /// The largest message the server accepts, in bytes.
    #[arg(long)]
    pub max_payload: Option<usize>,
}

#[derive(Args)]
pub struct CredsArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// admin, deployer, submitter, viewer, coordinator or node.
    #[arg(long, value_parser = Role::parse)]
    pub role: Role,
    /// The user's name (not for nodes, which are named by id).
    #[arg(long)]
    pub name: Option<String>,
    /// For nodes: dedicated or contributed.
    #[arg(long, default_value = "dedicated", value_parser = parse_node_trust)]
    pub trust: NodeTrust,
    /// Where to write the credentials (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn parse_node_trust(input: &str) -> Result<NodeTrust, String> {
    match input {
        "dedicated" => Ok(NodeTrust::Dedicated),
        "contributed" => Ok(NodeTrust::Contributed),
        _ => Err(format!(
            "unknown trust class {input:?}: expected dedicated or contributed"
        )),
    }
}

pub fn cluster(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Init(args) => {
            let cluster = init(&args.dir, &args.name, &args.server)?;
            println!(
                "cluster {} created in {}",
                cluster.info.name,
                args.dir.display()
            );
            println!(
                "  nats-server -c {}",
                args.dir.join("nats/nats.conf").display()
            );
            println!(
                "  {}",
                export_line(&format!("tls://{}", args.server.listen), &args.dir)
            );
            println!(
                "Keep {} safe: whoever holds it holds the cluster.",
                args.dir.join("keys").display()
            );
            Ok(())
        }
        ClusterCommand::RotateCa(args) => {
            let cluster = ClusterDir::open(&args.dir)?;
            let ca = cluster.ca_file();
            if args.finish {
                cluster.finish_ca_rotation()?;
                println!("{} now holds the new CA alone", ca.display());
                return Ok(());
            }
            cluster.rotate_ca()?;
            println!("a new CA signs from now on; {} trusts both", ca.display());
            println!(
                "next: copy {} to every machine, run `reef cluster nats-config` for each \
                 server and restart it, then, once every node has renewed its certificate, \
                 `reef cluster rotate-ca --dir {} --finish`",
                ca.display(),
                args.dir.display()
            );
            Ok(())
        }
        ClusterCommand::NatsConfig(args) => {
            let cluster = ClusterDir::open(&args.dir)?;
            let path = cluster.write_server_config(ServerSpec {
                name: args.server_name,
                listen: args.server.listen.clone(),
                hosts: hosts(&args.server),
                dir: args.server_dir,
                cluster: args.cluster_listen.map(|listen| ClusterRoutes {
                    name: args.cluster_name,
                    listen,
                    routes: args.routes,
                    advertise: None,
                }),
                max_payload: args.max_payload,
                client_advertise: None,
            })?;
            println!("{}", path.display());
            Ok(())
        }
        ClusterCommand::Creds(args) => {
            let cluster = ClusterDir::open(&args.dir)?;
            if args.out.exists() {
                bail!("{} exists; nothing was written", args.out.display());
            }
            let text = match args.role {
                Role::Node => {
                    if args.name.is_some() {
                        bail!("--name: nodes are named by id, which the credential gets");
                    }
                    let node = reef_proto::NodeId::new();
                    println!("node {node}");
                    cluster.issue_node(node, args.trust)?
                }
                role => {
                    let Some(name) = &args.name else {
                        bail!("--name: a {role} credential needs a name");
                    };
                    cluster.issue_user(role, name)?
                }
            };
            write_private(&args.out, text.as_bytes())
        }
    }
}

/// The server certificate's names: localhost's always, and the ones given.
fn hosts(server: &ServerArgs) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|h| h.to_string())
        .collect();
    if let Some((ip, _)) = server.listen.rsplit_once(':') {
        let ip = ip.trim_matches(['[', ']']);
        if !ip.is_empty() && ip != "0.0.0.0" && ip != "::" {
            hosts.push(ip.to_string());
        }
    }
    for host in &server.hosts {
        hosts.push(host.clone());
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Creates a cluster in `dir` with one nats-server configuration in
/// `dir/nats`.
pub fn init(dir: &Path, name: &str, server: &ServerArgs) -> Result<ClusterDir> {
    let cluster = ClusterDir::init(dir, name)?;
    let key = dir.join("cluster.key");
    reef_secrets::ClusterKey::load_or_create(&key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    cluster.write_server_config(ServerSpec {
        name: format!("{name}-1"),
        listen: server.listen.clone(),
        hosts: hosts(server),
        dir: dir.join("nats"),
        cluster: None,
        max_payload: None,
        client_advertise: None,
    })?;
    Ok(cluster)
}

/// The line that points the CLI at a cluster as its admin.
pub fn export_line(urls: &str, dir: &Path) -> String {
    format!(
        "export REEF_NATS_URL={urls} REEF_CREDS={} REEF_NATS_CA={}",
        dir.join("admin.creds").display(),
        dir.join("tls/ca.pem").display()
    )
}

/// Writes a new private file (0600); refuses to replace one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        // Nothing half-written stays behind.
        let _ = std::fs::remove_file(path);
    }
    written.with_context(|| format!("could not write {}", path.display()))
}
