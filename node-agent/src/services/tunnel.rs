//! How instances on other nodes reach an app's service, which listens on
//! its own node's loopback only: through a tunnel over the mutual-TLS peer
//! link between agents (`reef_proxy::PeerTls::connect_tunnel`, ALPN
//! `reef-tunnel/1` on the peer listener).
//!
//! - **The forwarder** (instance side): a listener on this node's loopback
//!   for each remote service an instance here uses; each connection opens a
//!   tunnel to the service's node, names the service (`<app>.<kind>\n`),
//!   waits for its `+` and then carries bytes both ways. `DATABASE_URL`
//!   names the forwarder's port.
//! - **The tunnel's end** (service side, [`TunnelEnd`]): reads the name,
//!   connects to the service on loopback if it runs here (`+`), else
//!   closes; then carries bytes both ways.
//!
//! Only nodes with a certificate of the cluster's CA open a tunnel (the
//! peer listener checks it), and the service still asks for the password.

use crate::Agent;
use reef_proto::services::ServiceEndpoint;
use reef_proto::subjects;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a tunnel's setup may take (connection, handshake, answer).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest service name a tunnel's first line may carry.
const MAX_NAME: usize = 160;

/// The service side: hands each tunnel to the service it names.
pub(crate) struct TunnelEnd {
    pub(crate) agent: Weak<Agent>,
}

impl reef_proxy::TunnelHandler for TunnelEnd {
    fn serve(
        &self,
        stream: reef_proxy::TunnelStream,
        client: std::net::SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let agent = self.agent.clone();
        Box::pin(async move {
            let Some(agent) = agent.upgrade() else {
                return;
            };
            if let Err(e) = carry_in(&agent, stream).await {
                tracing::debug!(%client, error = %e, "tunnel closed");
            }
        })
    }
}

/// Reads the first line, at most [`MAX_NAME`] bytes.
async fn read_name<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut name = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            break;
        }
        if name.len() >= MAX_NAME {
            return Err(std::io::Error::other("the service name is too long"));
        }
        name.push(byte);
    }
    String::from_utf8(name).map_err(|_| std::io::Error::other("the service name is not text"))
}

async fn carry_in(agent: &Agent, mut stream: reef_proxy::TunnelStream) -> std::io::Result<()> {
    let name = tokio::time::timeout(SETUP_TIMEOUT, read_name(&mut stream))
        .await
        .map_err(|_| std::io::Error::other("no service named in time"))??;
    let Some(port) = agent.managed.local_port(&name) else {
        stream.write_all(b"-").await?;
        return Err(std::io::Error::other(format!(
            "no service {name:?} runs here"
        )));
    };
    let mut service = tokio::time::timeout(
        SETUP_TIMEOUT,
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| std::io::Error::other("the service did not accept in time"))??;
    stream.write_all(b"+").await?;
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut stream, &mut service) => result.map(|_| ()),
        _ = agent.shutdown.cancelled() => Ok(()),
    }
}

/// Opens a tunnel to `endpoint`'s service for app `app`, answered `+`.
pub(crate) async fn open(
    agent: &Agent,
    app: &str,
    endpoint: &ServiceEndpoint,
) -> std::io::Result<reef_proxy::TunnelClient> {
    let (Some(tls), Some(peer)) = (&agent.peer_tls, endpoint.peer) else {
        return Err(std::io::Error::other("no peer link to the service's node"));
    };
    let setup = async {
        let mut stream = tls
            .connect_tunnel(peer, &reef_proto::node::peer_name(endpoint.node))
            .await?;
        let name = subjects::service_key(app, endpoint.kind.name());
        stream.write_all(format!("{name}\n").as_bytes()).await?;
        match stream.read_u8().await? {
            b'+' => Ok(stream),
            _ => Err(std::io::Error::other(format!(
                "the service's node does not run {name}"
            ))),
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| std::io::Error::other("the tunnel was not set up in time"))?
}

/// The port of this node's forwarder to `endpoint`'s service for `app`,
/// started the first time (None: there is no peer link to its node).
pub(crate) fn forwarder(agent: &Arc<Agent>, app: &str, endpoint: &ServiceEndpoint) -> Option<u16> {
    agent.peer_tls.as_ref()?;
    endpoint.peer?;
    let key = subjects::service_key(app, endpoint.kind.name());
    let mut forwarders = agent.managed.lock_forwarders();
    if let Some((port, known)) = forwarders.get(&key) {
        *known.lock().unwrap_or_else(|p| p.into_inner()) = endpoint.clone();
        return Some(*port);
    }
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std);
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(%app, error = %e, "cannot listen for the app's service");
            return None;
        }
    };
    let port = listener.local_addr().ok()?.port();
    let known = Arc::new(std::sync::Mutex::new(endpoint.clone()));
    forwarders.insert(key, (port, known.clone()));
    drop(forwarders);
    tracing::info!(%app, kind = endpoint.kind.name(), port, "forwarding to the app's service");
    agent
        .tasks
        .spawn(forward(agent.clone(), app.to_string(), listener, known));
    Some(port)
}

/// Accepts on the forwarder until shutdown, a tunnel for each connection.
async fn forward(
    agent: Arc<Agent>,
    app: String,
    listener: tokio::net::TcpListener,
    endpoint: Arc<std::sync::Mutex<ServiceEndpoint>>,
) {
    loop {
        let accepted = tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut local, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let target = endpoint.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let agent2 = agent.clone();
        let app = app.clone();
        agent.tasks.spawn(async move {
            let mut remote = match open(&agent2, &app, &target).await {
                Ok(remote) => remote,
                Err(e) => {
                    tracing::warn!(%app, error = %e, "cannot reach the app's service");
                    return;
                }
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut local, &mut remote) => {}
                _ = agent2.shutdown.cancelled() => {}
            }
        });
    }
}
