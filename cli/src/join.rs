//! `reef token create`, and enrolment for `reef join TOKEN` and `reef
//! agent --join TOKEN`: the machine makes its own key, presents the token's
//! short-lived credential with its public key, and keeps the credential it
//! gets back in its data dir (`node.creds`, with `ca.pem` and `nats-urls`
//! beside it) for every later start. `reef join` also writes the agent's
//! config file and starts the agent: as the `reef-agent` systemd unit, or
//! in place with `--foreground`.

use crate::client::{self, call, connect};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use reef_proto::api::{ApiReply, ApiRequest, ApiResponse};
use reef_proto::roles::Role;
use reef_proto::units::parse_duration;
use reef_proto::{decode, encode, subjects};
use reef_trust::token::JoinToken;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
pub struct TokenArgs {
    /// The trust class the joining node gets.
    #[arg(long, default_value = "dedicated", value_parser = crate::daemons::parse_trust)]
    pub trust: reef_proto::node::TrustClass,
    #[command(flatten)]
    pub labels: crate::LabelArgs,
    /// How long the token may be used (once).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// A token for a server (`reef join --server TOKEN`), which receives
    /// the cluster's keys: treat it like the admin's credential. It also
    /// joins a machine as a dedicated node.
    #[arg(long, conflicts_with_all = ["trust", "labels"])]
    pub server: bool,
}

/// `reef token create`: prints a single-use, expiring join token.
pub async fn create(nats: &client::Nats, args: TokenArgs) -> Result<()> {
    let Some(ca) = &nats.ca else {
        bail!("--nats-ca: the token carries the cluster's CA certificate, so pass it");
    };
    let ca_pem =
        std::fs::read_to_string(ca).with_context(|| format!("--nats-ca {}", ca.display()))?;
    let urls = nats.urls.split(',').map(|u| u.trim().to_string()).collect();
    let labels = crate::parse_pairs("label", &args.labels.labels)?;
    let kind = match args.server {
        true => Kind::Server,
        false => Kind::Node {
            trust: args.trust,
            labels,
        },
    };
    let (token, expires_at_ms) = mint(nats, urls, ca_pem, kind, args.ttl).await?;
    println!("{token}");
    let run = match args.server {
        true => "reef join --server TOKEN",
        false => "reef join TOKEN",
    };
    eprintln!(
        "single use, expires in {}: on the new machine run\n  {run}",
        left(expires_at_ms)
    );
    Ok(())
}

/// What a token makes of the machine that uses it.
pub enum Kind {
    /// A node of this trust class, with these labels.
    Node {
        trust: reef_proto::node::TrustClass,
        labels: std::collections::BTreeMap<String, String>,
    },
    /// A server (or a dedicated node, if it joins as one).
    Server,
}

/// How long until `expires_at_ms`, for people.
pub fn left(expires_at_ms: u64) -> String {
    reef_proto::units::format_duration(Duration::from_millis(
        expires_at_ms.saturating_sub(reef_proto::now_ms()),
    ))
}

/// Asks the leader for a join token naming `urls` (what the new machine
/// connects to) and `ca_pem`; returns it and when it expires.
pub async fn mint(
    nats: &client::Nats,
    urls: Vec<String>,
    ca_pem: String,
    kind: Kind,
    ttl: Duration,
) -> Result<(String, u64)> {
    let client = connect(nats).await?;
    let ttl_ms = ttl.as_millis().min(u64::MAX as u128) as u64;
    let request = match kind {
        Kind::Node { trust, labels } => ApiRequest::CreateToken {
            trust,
            labels,
            ttl_ms,
        },
        Kind::Server => ApiRequest::CreateServerToken { ttl_ms },
    };
    let ApiResponse::Token {
        id,
        creds,
        expires_at_ms,
    } = call(&client, request).await?
    else {
        bail!("unexpected reply from the coordinator");
    };
    let token = JoinToken {
        id,
        urls,
        ca_pem,
        creds,
    };
    Ok((token.encode()?, expires_at_ms))
}

/// Where an enrolled node keeps what it received.
pub struct Enrolled {
    pub creds: PathBuf,
    pub ca: PathBuf,
    pub urls: String,
}

/// What `dir` holds from an earlier enrolment, if anything.
pub fn enrolled(dir: &Path) -> Result<Option<Enrolled>> {
    let creds = dir.join("node.creds");
    if !creds.exists() {
        return Ok(None);
    }
    let urls = std::fs::read_to_string(dir.join("nats-urls"))
        .with_context(|| format!("{}: enrolled, but without nats-urls", dir.display()))?;
    Ok(Some(Enrolled {
        creds,
        ca: dir.join("ca.pem"),
        urls: urls.trim().to_string(),
    }))
}

/// Calls `verb` with `request` as the holder of `token` (its short-lived
/// credential, trusting only the CA it carries); returns the answer.
pub async fn call_with_token(token: &JoinToken, request: &ApiRequest) -> Result<ApiResponse> {
    let staging = tempfile::tempdir().context("a temporary directory for the join")?;
    let staged_ca = staging.path().join("ca.pem");
    std::fs::write(&staged_ca, &token.ca_pem).context("could not stage the CA certificate")?;
    let urls = token.urls.join(",");
    // A publish the server refuses is only reported on the side.
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = refused.clone();
    let client = async_nats::ConnectOptions::with_credentials(&token.creds)
        .map_err(|e| anyhow!("the token's credential: {e}"))?
        .add_root_certificates(staged_ca)
        .require_tls(true)
        .custom_inbox_prefix(subjects::inbox_prefix(Role::Joiner, &token.id))
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if matches!(&event, async_nats::Event::ServerError(e) if e.to_string().to_ascii_lowercase().contains("permissions violation"))
                {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .connect(client::parse_servers(&urls)?)
        .await
        .map_err(|e| anyhow!("could not reach NATS at {urls} with the token: {e}"))?;
    let subject = subjects::api(Role::Joiner, &token.id, request.verb());
    let reply = tokio::time::timeout(
        client::API_TIMEOUT,
        client.request(subject, encode(request)?),
    )
    .await
    .map_err(
        |_| match refused.load(std::sync::atomic::Ordering::Relaxed) {
            true => anyhow!(
                "this token does not allow {}: {}",
                request.verb(),
                match request.verb() {
                    subjects::verbs::SERVER_JOIN =>
                        "it is not a server token (make one with `reef token create --server`)",
                    _ => "it is not a join token of this kind",
                }
            ),
            false => {
                anyhow!("no coordinator answered the join in time (is the token still valid?)")
            }
        },
    )?
    .map_err(|e| {
        anyhow!("the join was not answered: {e} (the token may have expired or been used)")
    })?;
    let ApiReply(answer) = decode::<ApiReply>(&reply.payload).context("malformed join reply")?;
    answer.map_err(|e| anyhow!("{e}"))
}

/// Enrolls this machine with `token`, writing its credential into `dir`.
pub async fn enroll(token: &str, dir: &Path) -> Result<Enrolled> {
    let token = JoinToken::decode(token)?;
    let urls = token.urls.join(",");
    let key = nkeys::KeyPair::new_user();
    let request = ApiRequest::JoinNode {
        public_key: key.public_key(),
    };
    // Nothing is kept unless the join succeeds.
    let ApiResponse::Joined { node, jwt } = call_with_token(&token, &request).await? else {
        bail!("unexpected reply to the join");
    };
    let seed = zeroize::Zeroizing::new(key.seed().map_err(|e| anyhow!("the node's key: {e}"))?);
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &token.ca_pem)
        .with_context(|| format!("could not write {}", ca.display()))?;
    let creds = dir.join("node.creds");
    crate::cluster::write_private(&creds, reef_trust::creds::render(&jwt, &seed).as_bytes())?;
    std::fs::write(dir.join("nats-urls"), &urls)?;
    tracing::info!(%node, "joined the cluster");
    Ok(Enrolled { creds, ca, urls })
}

/// `reef join TOKEN`.
#[derive(Args)]
pub struct JoinArgs {
    /// The join token (`reef token create` prints one, and so does the
    /// first start of `reef server`).
    #[arg(value_name = "TOKEN", env = "REEF_JOIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// This node's name [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Where the node keeps its credential and its work [default:
    /// /var/lib/reef/NAME].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to write the config file the node runs from (`reef agent
    /// --config FILE`, or `reef server --config FILE` with --server; the
    /// units read the default) [default: /etc/reef/agent.toml, or
    /// /etc/reef/server.toml with --server].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run here, in the foreground, instead of enabling and starting the
    /// systemd unit (for machines without systemd, such as containers).
    #[arg(long)]
    pub foreground: bool,
    /// Join as a server: a nats-server of the cluster (routes and TLS to
    /// the other servers), a coordinator and a dedicated node, like `reef
    /// server`. Needs a server token (`reef token create --server`, or the
    /// one a server printed).
    #[arg(long)]
    pub server: bool,
    /// Where a server (--server) is reached.
    #[command(flatten)]
    pub place: crate::server::PlaceArgs,
    /// How a server (--server) runs the cluster; give every server the
    /// same ACME settings.
    #[command(flatten)]
    pub control: crate::daemons::ControlArgs,
    #[command(flatten)]
    pub node: crate::daemons::NodeArgs,
}

/// The config file the reef-agent unit runs from.
pub const AGENT_CONFIG: &str = "/etc/reef/agent.toml";
/// The config file the reef-server unit runs from.
pub const SERVER_CONFIG: &str = "/etc/reef/server.toml";

/// Whether systemd runs this machine (its units can be started).
pub fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// `reef join TOKEN`: enrolls (unless this data dir already did, with this
/// cluster), writes the agent's config file, and starts the agent.
/// `given` is the command line's own matches, for the flags to keep.
pub async fn join(args: JoinArgs, given: &clap::ArgMatches) -> Result<()> {
    if args.server {
        return crate::server::join::join(args, given).await;
    }
    let server_only = <crate::server::PlaceArgs as clap::Args>::augment_args(
        <crate::daemons::ControlArgs as clap::Args>::augment_args(clap::Command::new("s")),
    );
    if let Some(flag) = server_only.get_arguments().find(|arg| {
        given.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine)
    }) {
        bail!(
            "--{}: only a server (--server) takes this flag",
            flag.get_long().unwrap_or_default()
        );
    }
    let config = args.config.clone().unwrap_or_else(|| AGENT_CONFIG.into());
    // Everything that can be refused is refused before the token is used.
    let name = args.name.clone().unwrap_or_else(crate::daemons::host_name);
    reef_proto::node::validate_node_name(&name).map_err(|e| anyhow!("--name: {e}"))?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir(&name));
    if !args.foreground {
        if !systemd_runs() {
            bail!(
                "systemd does not run this machine, so there is no reef-agent unit to start: \
                 run `reef join --foreground TOKEN` to run the agent in place (nothing was \
                 changed, and the token is still unused)"
            );
        }
        if config != Path::new(AGENT_CONFIG) {
            bail!(
                "--config {}: the reef-agent unit reads {AGENT_CONFIG}; with another file, \
                 run the agent yourself with --foreground",
                config.display()
            );
        }
    }
    let token = JoinToken::decode(&args.token)?;
    match enrolled(&data_dir)? {
        Some(_) => {
            let ca = data_dir.join("ca.pem");
            let ours = std::fs::read_to_string(&ca)
                .with_context(|| format!("{}: enrolled, but without ca.pem", data_dir.display()))?;
            if ours.trim() != token.ca_pem.trim() {
                bail!(
                    "{} holds a node of another cluster (its CA is not the token's): pass \
                     another --data-dir, or remove that directory to leave the other cluster; \
                     nothing was changed",
                    data_dir.display()
                );
            }
            eprintln!(
                "{} already joined this cluster; the token was not used",
                data_dir.display()
            );
        }
        None => {
            enroll(&args.token, &data_dir).await?;
        }
    }
    let node = <crate::daemons::NodeArgs as clap::Args>::augment_args(clap::Command::new("node"));
    let ids: Vec<&str> = node.get_arguments().map(|a| a.get_id().as_str()).collect();
    write_config(&config, Unit::Agent, &name, &data_dir, given, &ids)?;
    println!(
        "joined as {name}; the agent's config is {}",
        config.display()
    );
    start(Unit::Agent, &config, args.foreground).await
}

/// What runs a joined machine.
#[derive(Clone, Copy)]
pub enum Unit {
    /// `reef agent`, the reef-agent unit.
    Agent,
    /// `reef server`, the reef-server unit.
    Server,
}

impl Unit {
    fn command(self) -> &'static str {
        match self {
            Unit::Agent => "agent",
            Unit::Server => "server",
        }
    }
}

/// Writes the config file `path` that `reef agent|server --config` runs
/// from: the name, the data dir and the flags among `ids` that the command
/// line (`given`) set.
pub fn write_config(
    path: &Path,
    unit: Unit,
    name: &str,
    data_dir: &Path,
    given: &clap::ArgMatches,
    ids: &[&str],
) -> Result<()> {
    let mut text = format!(
        "# Written by `reef join`; `reef {} --config {}` runs from it.\n",
        unit.command(),
        path.display()
    );
    text.push_str(&format!("name = {}\n", crate::config_file::quote(name)));
    text.push_str(&format!(
        "data_dir = {}\n",
        crate::config_file::quote(&data_dir.display().to_string())
    ));
    let mut cli = <crate::Cli as clap::CommandFactory>::command();
    cli.build();
    let command = cli
        .find_subcommand("join")
        .ok_or_else(|| anyhow!("no join command"))?;
    text.push_str(&crate::config_file::render(given, command, ids));
    write_replacing(path, text.as_bytes())
}

/// Runs `reef agent|server --config FILE` here (`foreground`), or enables
/// and starts its systemd unit.
pub async fn start(unit: Unit, config: &Path, foreground: bool) -> Result<()> {
    let name = unit.command();
    if foreground {
        let mut cli = <crate::Cli as clap::CommandFactory>::command();
        cli.build();
        let argv = ["reef", name, "--config"]
            .into_iter()
            .map(std::ffi::OsString::from)
            .chain([config.as_os_str().to_os_string()])
            .collect();
        let argv = crate::config_file::expand(&cli, argv, |p| std::fs::read_to_string(p))
            .map_err(|e| anyhow!(e))?;
        let parsed = <crate::Cli as clap::Parser>::try_parse_from(argv)
            .map_err(|e| anyhow!("{}: {e}", config.display()))?;
        let nats = client::Nats {
            urls: parsed.nats,
            creds: parsed.creds,
            ca: parsed.nats_ca,
        };
        return match parsed.command {
            crate::Command::Agent(agent) => crate::daemons::agent(&nats, *agent).await,
            crate::Command::Server(server) => crate::server::server(*server).await,
            _ => bail!("{}: not a config file for reef {name}", config.display()),
        };
    }
    let unit = format!("reef-{name}.service");
    let status = std::process::Command::new("systemctl")
        .args(["enable", "--now", &unit])
        .status()
        .context("could not run systemctl")?;
    if !status.success() {
        bail!(
            "systemctl enable --now {unit} failed ({status}); the machine has joined and its \
             config is written: see `journalctl -u reef-{name}`, or is the unit installed \
             (scripts/install.sh)?"
        );
    }
    println!("the reef-{name} unit is enabled and started: journalctl -u reef-{name} -f");
    Ok(())
}

/// Writes `path` whole or not at all (a sibling temporary file, renamed).
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("could not create {}", parent.display()))?;
    let staged = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("could not write in {}", parent.display()))?;
    std::fs::write(staged.path(), bytes)
        .with_context(|| format!("could not write {}", path.display()))?;
    staged
        .persist(path)
        .map_err(|e| anyhow!("could not write {}: {}", path.display(), e.error))?;
    Ok(())
}
