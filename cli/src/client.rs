//! Connecting to NATS and calling the coordinator API, with every wait
//! bounded: an unreachable server or a missing coordinator is a clear error
//! within seconds, never a hang.

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::{ConnectOptions, ServerAddr};
use reef_proto::api::{ApiReply, ApiRequest, ApiResponse};
use reef_proto::{decode, encode, subjects};
use std::time::Duration;

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

/// Connects for a short-lived user command: fails fast when NATS is unreachable.
pub async fn connect(urls: &str) -> Result<async_nats::Client> {
    let servers = parse_servers(urls)?;
    let options = ConnectOptions::new()
        .name("reef-cli")
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(API_TIMEOUT));
    tokio::time::timeout(CONNECT_TIMEOUT * 2, options.connect(servers))
        .await
        .map_err(|_| anyhow!("could not reach NATS at {urls}: timed out"))?
        .map_err(|e| anyhow!("could not reach NATS at {urls}: {e}"))
}

/// Connects for a long-running daemon: waits for NATS to come up, and
/// reconnects across the given servers for as long as it runs.
pub async fn connect_daemon(urls: &str, name: &str) -> Result<async_nats::Client> {
    let servers = parse_servers(urls)?;
    ConnectOptions::new()
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            tracing::info!(%event, "NATS connection");
        })
        .connect(servers)
        .await
        .map_err(|e| anyhow!("could not connect to NATS at {urls}: {e}"))
}

/// Sends one API request and returns the coordinator's answer.
pub async fn call(client: &async_nats::Client, request: ApiRequest) -> Result<ApiResponse> {
    let subject = subjects::api(request.verb());
    let payload = encode(&request)?;
    let reply = match tokio::time::timeout(API_TIMEOUT, client.request(subject, payload)).await {
        Err(_) => bail!(
            "no answer from a coordinator within {}s",
            API_TIMEOUT.as_secs()
        ),
        Ok(Err(e)) => {
            use async_nats::RequestErrorKind;
            match e.kind() {
                RequestErrorKind::NoResponders => {
                    bail!("no coordinator is running (nobody answers on {}); start one with `reef coordinator`", subjects::api(request.verb()))
                }
                RequestErrorKind::TimedOut => {
                    bail!(
                        "no answer from a coordinator within {}s",
                        API_TIMEOUT.as_secs()
                    )
                }
                _ => bail!("request to the coordinator failed: {e}"),
            }
        }
        Ok(Ok(msg)) => msg,
    };
    let ApiReply(result) =
        decode::<ApiReply>(&reply.payload).context("malformed reply from the coordinator")?;
    result.map_err(|e| anyhow!("{e}"))
}
