//! `reef join --server TOKEN`: a machine becomes a server of the cluster.
//! It makes its node's key and an X25519 key, and presents both with where
//! it can be reached (`server.join`, with the token's credential). The
//! leader answers with the node's credential, the cluster's keys sealed to
//! the X25519 key, and every server of the cluster. The machine writes the
//! keys into its data dir, records the servers (`servers.json`), writes
//! `/etc/reef/server.toml`, prints a server token for the next machine
//! (made while the cluster is reachable, before this server's own
//! nats-server joins it), and starts `reef server`.

use crate::join::{self, JoinArgs, Unit};
use anyhow::{anyhow, bail, Context as _, Result};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_server::topology;
use reef_trust::token::JoinToken;
use std::path::Path;
use std::time::Duration;

/// How long the token printed for the next machine may be used.
const NEXT_TOKEN_TTL: Duration = Duration::from_secs(3600);

pub async fn join(args: JoinArgs, given: &clap::ArgMatches) -> Result<()> {
    // Everything that can be refused is refused before the token is used.
    let name = args.name.clone().unwrap_or_else(crate::daemons::host_name);
    reef_proto::node::validate_node_name(&name).map_err(|e| anyhow!("--name: {e}"))?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| "/var/lib/reef".into());
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| join::SERVER_CONFIG.into());
    if !args.foreground {
        if !join::systemd_runs() {
            bail!(
                "systemd does not run this machine, so there is no reef-server unit to start: \
                 run `reef join --server --foreground TOKEN` to run the server in place \
                 (nothing was changed, and the token is still unused)"
            );
        }
        if config != Path::new(join::SERVER_CONFIG) {
            bail!(
                "--config {}: the reef-server unit reads {}; with another file, run the \
                 server yourself with --foreground",
                config.display(),
                join::SERVER_CONFIG
            );
        }
    }
    crate::dev::find_nats_server()?;
    let token = JoinToken::decode(&args.token)?;
    if data_dir.join("cluster.json").exists() {
        let ours = std::fs::read_to_string(data_dir.join("tls/ca.pem")).unwrap_or_default();
        if ours.trim() != token.ca_pem.trim() {
            bail!(
                "{} holds another cluster (its CA is not the token's): pass another \
                 --data-dir; nothing was changed",
                data_dir.display()
            );
        }
        eprintln!(
            "{} is already a server of this cluster; the token was not used",
            data_dir.display()
        );
    } else {
        if data_dir.join("node.creds").exists() {
            bail!(
                "{} holds a node that joined as an agent: pass another --data-dir; nothing \
                 was changed",
                data_dir.display()
            );
        }
        enroll(&args, &name, &token, &data_dir).await?;
        next_token(&data_dir, &token).await;
    }
    let flags = <crate::server::PlaceArgs as clap::Args>::augment_args(
        <crate::daemons::ControlArgs as clap::Args>::augment_args(
            <crate::daemons::NodeArgs as clap::Args>::augment_args(clap::Command::new("s")),
        ),
    );
    let ids: Vec<&str> = flags.get_arguments().map(|a| a.get_id().as_str()).collect();
    join::write_config(&config, Unit::Server, &name, &data_dir, given, &ids)?;
    println!(
        "joined as server {name}; its config is {}",
        config.display()
    );
    join::start(Unit::Server, &config, args.foreground).await
}

/// Joins as server `name` and writes what it receives into `data_dir`.
async fn enroll(args: &JoinArgs, name: &str, token: &JoinToken, data_dir: &Path) -> Result<()> {
    let hosts = args.place.public_hosts(args.node.advertise);
    let at = super::host::url_host(&hosts[0]);
    let key = nkeys::KeyPair::new_user();
    let sealing = reef_secrets::NodeKey::generate().map_err(|e| anyhow!("a sealing key: {e}"))?;
    let request = ApiRequest::JoinServer {
        name: name.to_string(),
        public_key: key.public_key(),
        sealing_key: sealing.public(),
        route: format!("{at}:{}", args.place.cluster_listen.port()),
        client: format!("{at}:{}", args.place.nats_listen.port()),
    };
    let ApiResponse::ServerJoined {
        node,
        jwt,
        bundle,
        servers,
    } = join::call_with_token(token, &request).await?
    else {
        bail!("unexpected reply to the join");
    };
    let document = sealing
        .open(&reef_trust::bundle::context(&node.to_string()), &bundle)
        .map_err(|e| anyhow!("the cluster's keys as received could not be opened: {e}"))?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("could not create {}", data_dir.display()))?;
    reef_trust::bundle::unpack(&document, data_dir)?;
    let seed = zeroize::Zeroizing::new(key.seed().map_err(|e| anyhow!("the node's key: {e}"))?);
    let creds = data_dir.join("node/node.creds");
    std::fs::create_dir_all(data_dir.join("node"))?;
    crate::cluster::write_private(&creds, reef_trust::creds::render(&jwt, &seed).as_bytes())?;
    topology::save(data_dir, &servers)?;
    tracing::info!(%node, "joined the cluster as a server");
    Ok(())
}

/// Prints a server token for the next machine, made with the admin's
/// credential this server now holds; a failure only costs the hint.
async fn next_token(data_dir: &Path, token: &JoinToken) {
    let servers = topology::load(data_dir).unwrap_or_default();
    let admin = crate::client::Nats {
        urls: token.urls.join(","),
        creds: Some(data_dir.join("admin.creds")),
        ca: Some(data_dir.join("tls/ca.pem")),
    };
    let minted = join::mint(
        &admin,
        topology::client_urls(&servers),
        token.ca_pem.clone(),
        join::Kind::Server,
        NEXT_TOKEN_TTL,
    )
    .await;
    match minted {
        Ok((next, expires_at_ms)) => {
            println!(
                "To add another server, run on it (single use, expires in {}):",
                join::left(expires_at_ms)
            );
            println!("  reef join --server {next}");
        }
        Err(e) => eprintln!(
            "reef join: no token for the next machine ({e:#}); make one with `reef token create --server`"
        ),
    }
}
