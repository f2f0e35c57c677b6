//! HTTPS on the node: the TLS listener of the node proxy, the cluster's
//! certificates it serves (keys opened with this node's key, in memory only),
//! and the ACME challenge answers the plain-HTTP listener gives the CA.
//!
//! - `follow`: following a KV bucket, with restarts.
//! - `certs`: the certificates bucket → the listener's certificates.
//! - `challenges`: the challenges bucket → the proxy's challenge answers.

mod certs;
mod challenges;
mod follow;

use crate::Agent;
use certs::{CertFollower, Opener};
use challenges::ChallengeFollower;
use reef_proto::subjects;
use reef_secrets::{SecretsError, Zeroizing};
use std::sync::Arc;
use tokio::net::TcpListener;

impl Opener for Arc<Agent> {
    fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        self.node_key.open(context, sealed)
    }
}

/// Starts, as tracked tasks that end on shutdown: the challenge follower
/// when the plain-HTTP proxy runs, and the certificate follower and the
/// HTTPS listener when `https` is given.
pub(crate) fn start(
    agent: &Arc<Agent>,
    https: Option<TcpListener>,
    config: reef_proxy::ProxyConfig,
) {
    if agent.config.http.is_some() {
        agent
            .router
            .challenges()
            .set_source(Arc::new(challenges::BucketSource::new(agent.js.clone())));
        agent.tasks.spawn(follow::follow(
            agent.js.clone(),
            subjects::CHALLENGES_BUCKET,
            ChallengeFollower::new(agent.router.challenges().clone()),
            agent.shutdown.clone(),
        ));
    }
    let Some(listener) = https else {
        return;
    };
    let certs = reef_proxy::Certificates::new();
    agent.tasks.spawn(follow::follow(
        agent.js.clone(),
        subjects::CERTS_BUCKET,
        CertFollower::new(agent.node, agent.clone(), certs.clone()),
        agent.shutdown.clone(),
    ));
    tracing::info!(addr = ?listener.local_addr().ok(), "node proxy listening for HTTPS");
    let serving = reef_proxy::serve_tls(
        listener,
        agent.router.clone(),
        config,
        certs,
        agent.shutdown.clone(),
    );
    agent.tasks.spawn(async move {
        if let Err(e) = serving.await {
            tracing::warn!(error = %e, "HTTPS listener stopped with an error");
        }
    });
}
