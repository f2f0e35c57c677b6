//! `reef token create`, and enrolment for `reef agent --join TOKEN`: the
//! machine makes its own key, presents the token's short-lived credential
//! with its public key, and keeps the credential it gets back in its data
//! dir (`node.creds`, with `ca.pem` and `cluster.json` beside it) for every
//! later start.

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
}

/// `reef token create`: prints a single-use, expiring join token.
pub async fn create(nats: &client::Nats, args: TokenArgs) -> Result<()> {
    let Some(ca) = &nats.ca else {
        bail!("--nats-ca: the token carries the cluster's CA certificate, so pass it");
    };
    let ca_pem =
        std::fs::read_to_string(ca).with_context(|| format!("--nats-ca {}", ca.display()))?;
    let client = connect(nats).await?;
    let request = ApiRequest::CreateToken {
        trust: args.trust,
        labels: crate::parse_pairs("label", &args.labels.labels)?,
        ttl_ms: args.ttl.as_millis().min(u64::MAX as u128) as u64,
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
        urls: nats.urls.split(',').map(|u| u.trim().to_string()).collect(),
        ca_pem,
        creds,
    };
    println!("{}", token.encode()?);
    eprintln!(
        "single use, expires in {}: on the new machine run\n  reef agent --join TOKEN --name NAME --data-dir DIR",
        reef_proto::units::format_duration(Duration::from_millis(
            expires_at_ms.saturating_sub(reef_proto::now_ms())
        ))
    );
    Ok(())
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

/// Enrolls this machine with `token`, writing its credential into `dir`.
pub async fn enroll(token: &str, dir: &Path) -> Result<Enrolled> {
    let token = JoinToken::decode(token)?;
    // Nothing is kept unless the join succeeds.
    let staging = tempfile::tempdir().context("a temporary directory for the join")?;
    let staged_ca = staging.path().join("ca.pem");
    std::fs::write(&staged_ca, &token.ca_pem).context("could not stage the CA certificate")?;
    let urls = token.urls.join(",");
    let key = nkeys::KeyPair::new_user();
    let client = async_nats::ConnectOptions::with_credentials(&token.creds)
        .map_err(|e| anyhow!("the token's credential: {e}"))?
        .add_root_certificates(staged_ca)
        .require_tls(true)
        .custom_inbox_prefix(subjects::inbox_prefix(Role::Joiner, &token.id))
        .connection_timeout(Duration::from_secs(5))
        .connect(client::parse_servers(&urls)?)
        .await
        .map_err(|e| anyhow!("could not reach NATS at {urls} with the token: {e}"))?;
    let request = encode(&ApiRequest::JoinNode {
        public_key: key.public_key(),
    })?;
    let subject = subjects::api(Role::Joiner, &token.id, subjects::verbs::NODE_JOIN);
    let reply = tokio::time::timeout(client::API_TIMEOUT, client.request(subject, request))
        .await
        .map_err(|_| {
            anyhow!("no coordinator answered the join in time (is the token still valid?)")
        })?
        .map_err(|e| {
            anyhow!("the join was not answered: {e} (the token may have expired or been used)")
        })?;
    let ApiReply(answer) = decode::<ApiReply>(&reply.payload).context("malformed join reply")?;
    let ApiResponse::Joined { node, jwt } = answer.map_err(|e| anyhow!("{e}"))? else {
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
