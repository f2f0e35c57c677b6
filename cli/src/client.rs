//! Connecting to NATS and calling the coordinator API, with every wait
//! bounded: an unreachable server or a missing coordinator is a clear error
//! within seconds, never a hang.

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::{ConnectOptions, ServerAddr};
use reef_proto::api::{ApiReply, ApiRequest, ApiResponse};
use reef_proto::{decode, encode, subjects};
use reef_trust::identity::Identity;
use std::path::PathBuf;
use std::time::Duration;

/// Where the cluster's NATS is and how to prove who we are to it: the
/// global `--nats`, `--creds` and `--nats-ca` flags.
#[derive(Clone, Debug)]
pub struct Nats {
    pub urls: String,
    pub creds: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// A connection and the identity its credential gives it.
#[derive(Clone, Debug)]
pub struct Conn {
    pub client: async_nats::Client,
    pub who: Identity,
}

impl std::ops::Deref for Conn {
    type Target = async_nats::Client;
    fn deref(&self) -> &async_nats::Client {
        &self.client
    }
}

impl Nats {
    /// The identity in the credentials file.
    pub fn identity(&self) -> Result<Identity> {
        let Some(path) = &self.creds else {
            bail!(
                "no credentials: pass --creds FILE or set REEF_CREDS (a `reef dev` cluster prints the line to paste)"
            );
        };
        reef_trust::identity::read_creds_file(path).map_err(|e| anyhow!("--creds {e}"))
    }

    /// The user JWT in the credentials file (public: it holds no secret).
    pub fn jwt(&self) -> Result<String> {
        let Some(path) = &self.creds else {
            bail!("no credentials: pass --creds FILE or set REEF_CREDS");
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--creds {}", path.display()))?;
        Ok(reef_trust::creds::parse(&text)
            .map_err(|e| anyhow!("--creds {}: {e}", path.display()))?
            .jwt)
    }

    /// Connect options with the credentials, the CA and our own inbox.
    async fn options(&self, who: &Identity) -> Result<ConnectOptions> {
        let Some(path) = &self.creds else {
            bail!("no credentials: pass --creds FILE or set REEF_CREDS");
        };
        let mut options = ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| anyhow!("--creds {}: {e}", path.display()))?
            .custom_inbox_prefix(subjects::inbox_prefix(who.role, &who.name));
        if let Some(ca) = &self.ca {
            if !ca.is_file() {
                bail!("--nats-ca {}: no such file", ca.display());
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        Ok(options)
    }
}

/// How long the CLI waits for a coordinator's answer.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Parses `--nats`: one URL, or several separated by commas.
pub fn parse_servers(urls: &str) -> Result<Vec<ServerAddr>> {
    let servers: Vec<ServerAddr> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .with_context(|| format!("invalid NATS URL {u:?}"))
        })
        .collect::<Result<_>>()?;
    if servers.is_empty() {
        bail!("no NATS URL given");
    }
    Ok(servers)
}

/// Connects for a short-lived user command: fails fast when NATS is
/// unreachable or refuses the credentials.
pub async fn connect(nats: &Nats) -> Result<Conn> {
    let urls = &nats.urls;
    let servers = parse_servers(urls)?;
    let who = nats.identity()?;
    let (refused_tx, mut refused) = tokio::sync::watch::channel(false);
    let options = nats
        .options(&who)
        .await?
        .name("reef-cli")
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(API_TIMEOUT))
        .event_callback(move |event| {
            let refused_tx = refused_tx.clone();
            async move {
                if matches!(
                    event,
                    async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation)
                ) {
                    let _ = refused_tx.send(true);
                }
            }
        });
    let creds = nats.creds.as_deref().unwrap_or(std::path::Path::new("-"));
    let refusal = || {
        anyhow!(
            "NATS at {urls} refused the credential in {}: it is not signed for this cluster, \
             or it has expired or been revoked",
            creds.display()
        )
    };
    let client = match tokio::time::timeout(CONNECT_TIMEOUT * 2, options.connect(servers)).await {
        Err(_) => bail!("could not reach NATS at {urls}: timed out"),
        Ok(Err(e)) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
            return Err(refusal())
        }
        Ok(Err(e)) => bail!("could not reach NATS at {urls}: {e}"),
        Ok(Ok(client)) => client,
    };
    // The server may take a moment to judge a credential (looking up an
    // account it does not know): one round trip says whether it took it.
    let judged = refused.clone();
    tokio::select! {
        answered = tokio::time::timeout(
            API_TIMEOUT,
            client.request("$JS.API.INFO", bytes::Bytes::new()),
        ) => match answered {
            Err(_) if *judged.borrow() => return Err(refusal()),
            Err(_) => bail!("NATS at {urls} did not answer within {}s", API_TIMEOUT.as_secs()),
            // An answer, or "no responders": either way the server took us.
            Ok(_) => {}
        },
        _ = refused.wait_for(|refused| *refused) => return Err(refusal()),
    }
    Ok(Conn { client, who })
}

/// Connects for a long-running daemon: waits for NATS to come up, and
/// reconnects across the given servers for as long as it runs.
pub async fn connect_daemon(nats: &Nats, name: &str) -> Result<Conn> {
    let urls = &nats.urls;
    let servers = parse_servers(urls)?;
    let who = nats.identity()?;
    nats.options(&who)
        .await?
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            tracing::info!(%event, "NATS connection");
        })
        .connect(servers)
        .await
        .map(|client| Conn { client, who })
        .map_err(|e| anyhow!("could not connect to NATS at {urls}: {e}"))
}

/// Sends one API request and returns the coordinator's answer.
pub async fn call(client: &Conn, request: ApiRequest) -> Result<ApiResponse> {
    let subject = subjects::api(client.who.role, &client.who.name, request.verb());
    let payload = encode(&request)?;
    let reply = match tokio::time::timeout(API_TIMEOUT, client.request(subject.clone(), payload))
        .await
    {
        Err(_) => bail!(
            "no answer from a coordinator within {}s",
            API_TIMEOUT.as_secs()
        ),
        Ok(Err(e)) => {
            use async_nats::RequestErrorKind;
            match e.kind() {
                RequestErrorKind::NoResponders => {
                    bail!("no coordinator is running (nobody answers on {subject}); start one with `reef coordinator`")
                }
                RequestErrorKind::TimedOut => {
                    bail!(
                        "no answer from a coordinator within {}s",
                        API_TIMEOUT.as_secs()
                    )
                }
                RequestErrorKind::Other if e.to_string().contains("ermission") => bail!(
                    "NATS refused the request on {subject}: the credential of {} ({}) may not call {}",
                    client.who.name,
                    client.who.role,
                    request.verb()
                ),
                _ => bail!("request to the coordinator failed: {e}"),
            }
        }
        Ok(Ok(msg)) => msg,
    };
    let ApiReply(result) = match decode::<ApiReply>(&reply.payload) {
        Ok(reply) => reply,
        Err(reef_proto::DecodeError::Version { got }) => {
            bail!("{}", reef_proto::envelope::refuse_cluster(got))
        }
        Err(e) => return Err(anyhow!(e).context("malformed reply from the coordinator")),
    };
    result.map_err(|e| anyhow!("{e}"))
}
