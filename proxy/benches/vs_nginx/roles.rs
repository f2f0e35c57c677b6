//! The servers this binary runs when it is started again as a child: the
//! backend every target ends at, and the reef proxy in two layouts. Each gets
//! its own process, like nginx and Caddy:
//!
//! - `reef`: [`reef_proxy::serve`] on one multi-threaded runtime with one
//!   worker per core (how the node agent ran it before `serve_per_core`);
//! - `reef-per-core`: [`reef_proxy::serve_per_core`], as the node agent runs
//!   it: laid out like nginx's workers, one current-thread runtime per core,
//!   each with its own listener on the shared port (`SO_REUSEPORT`) and so its
//!   own upstream pool, all with one [`Router`].
//!
//! For the cross-node part, the two nodes of a forwarded request:
//!
//! - `reef-edge-*`: a node with no instance of the app, laid out like
//!   `reef-per-core`, forwarding every request to the other node;
//! - `reef-peer-*`: that node's peer listener ([`reef_proxy::serve_peer`]),
//!   serving the app from its instance, the backend.
//!
//! `-mtls` ones speak mutual TLS with node certificates from the files in
//! [`PEER_DIR_VAR`] (what the agent does); `-plain` ones plain HTTP, the same
//! code with the peer link's encryption taken away, for the ratio.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reef_proxy::{Backend, ProxyConfig, Router};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::{BODY, HOST};

/// Which server to be; unset in the bench itself.
pub(crate) const ROLE_VAR: &str = "REEF_BENCH_ROLE";
/// The loopback port to listen on.
pub(crate) const PORT_VAR: &str = "REEF_BENCH_PORT";
/// Where the reef proxy forwards to.
pub(crate) const UPSTREAM_VAR: &str = "REEF_BENCH_UPSTREAM";
/// Where the CA and node certificates of the `-mtls` roles are.
pub(crate) const PEER_DIR_VAR: &str = "REEF_BENCH_PEER_DIR";

/// The peer names of the two nodes, as their certificates carry them.
pub(crate) const EDGE_NAME: &str = "edge.node.reef";
pub(crate) const PEER_NAME: &str = "peer.node.reef";

/// Pending connections a listener holds (nginx's default is 511).
const LISTEN_BACKLOG: u32 = 1024;

/// A server this binary can be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    Backend,
    Reef,
    ReefPerCore,
    EdgePlain,
    EdgeTls,
    PeerPlain,
    PeerTls,
}

/// Every role, for [`requested`].
const ROLES: [Role; 7] = [
    Role::Backend,
    Role::Reef,
    Role::ReefPerCore,
    Role::EdgePlain,
    Role::EdgeTls,
    Role::PeerPlain,
    Role::PeerTls,
];

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Reef => "reef",
            Self::ReefPerCore => "reef-per-core",
            Self::EdgePlain => "reef-edge-plain",
            Self::EdgeTls => "reef-edge-mtls",
            Self::PeerPlain => "reef-peer-plain",
            Self::PeerTls => "reef-peer-mtls",
        }
    }
}

/// The role this process was started in, if any.
pub(crate) fn requested() -> Option<Role> {
    let asked = std::env::var(ROLE_VAR).ok()?;
    ROLES.into_iter().find(|role| role.as_str() == asked)
}

/// Serves as `role` until killed.
pub(crate) fn run(role: Role) -> ExitCode {
    match serve_as(role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vs_nginx {}: {error:#}", role.as_str());
            ExitCode::FAILURE
        }
    }
}

fn serve_as(role: Role) -> anyhow::Result<()> {
    let port: u16 = env(PORT_VAR)?.parse().context(PORT_VAR)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let upstream =
        || -> anyhow::Result<SocketAddr> { env(UPSTREAM_VAR)?.parse().context(UPSTREAM_VAR) };
    match role {
        Role::Backend => multi_thread(async { backend(bind(addr, false)?).await }),
        Role::Reef => {
            let router = bench_router(upstream()?);
            multi_thread(async { reef(bind(addr, false)?, router).await })
        }
        Role::ReefPerCore => per_core(addr, bench_router(upstream()?), ProxyConfig::default()),
        Role::EdgePlain | Role::EdgeTls => {
            let tls = matches!(role, Role::EdgeTls);
            let router = Router::new();
            let mut other = Backend::new("peer", upstream()?);
            if tls {
                other = other.with_tls_name(PEER_NAME);
            }
            router.set_app("bench", &[HOST.to_owned()], Vec::new());
            router.set_remote("bench", vec![other]);
            per_core(addr, router, peer_config(tls.then_some(EDGE_NAME))?)
        }
        Role::PeerPlain | Role::PeerTls => {
            let tls = matches!(role, Role::PeerTls);
            let router = bench_router(upstream()?);
            let config = peer_config(tls.then_some(PEER_NAME))?;
            multi_thread(async {
                reef_proxy::serve_peer(bind(addr, false)?, router, config, CancellationToken::new())
                    .await
                    .context("serve")
            })
        }
    }
}

/// [`reef_proxy::serve_per_core`] on `addr`, one worker per core.
fn per_core(addr: SocketAddr, router: Router, config: ProxyConfig) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start a runtime")?
        .block_on(async {
            let listeners = reef_proxy::ProxyListeners::bind(addr, cores)
                .with_context(|| format!("bind {addr}"))?;
            reef_proxy::serve_per_core(listeners, router, config, CancellationToken::new())
                .await
                .context("serve")
        })
}

/// The default settings, with node-to-node TLS as node `name` (its
/// certificate `<name>.pem` and key `<name>-key.pem` beside `ca.pem` in
/// [`PEER_DIR_VAR`]) when given.
fn peer_config(name: Option<&str>) -> anyhow::Result<ProxyConfig> {
    let Some(name) = name else {
        return Ok(ProxyConfig::default());
    };
    let dir = std::path::PathBuf::from(env(PEER_DIR_VAR)?);
    let read =
        |file: String| std::fs::read(dir.join(&file)).with_context(|| format!("read {file}"));
    let peer = reef_proxy::PeerTls::new(&read("ca.pem".into())?).context("the CA")?;
    peer.set_identity(
        name,
        read(format!("{name}.pem"))?,
        read(format!("{name}-key.pem"))?,
    )
    .context("the node certificate")?;
    Ok(ProxyConfig {
        peer: Some(peer),
        ..ProxyConfig::default()
    })
}

fn multi_thread(server: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?
        .block_on(server)
}

/// A listener on `addr`; `shared` lets every runtime of a process bind its own.
fn bind(addr: SocketAddr, shared: bool) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4().context("create a socket")?;
    socket.set_reuseaddr(true).context("SO_REUSEADDR")?;
    if shared {
        socket.set_reuseport(true).context("SO_REUSEPORT")?;
    }
    socket.bind(addr).with_context(|| format!("bind {addr}"))?;
    socket.listen(LISTEN_BACKLOG).context("listen")
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

/// The backend: HTTP/1.1 with keep-alive, TCP_NODELAY, one task per
/// connection, the same 13-byte answer to every request.
async fn backend(listener: TcpListener) -> anyhow::Result<()> {
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let connection = http.serve_connection(TokioIo::new(stream), service_fn(hello));
        // Connections end when the client closes them; the process ends when the bench kills it.
        tokio::spawn(connection);
    }
}

async fn hello<B>(_: http::Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// One app, routed for [`HOST`], with `upstream` as its only instance.
fn bench_router(upstream: SocketAddr) -> Router {
    let router = Router::new();
    let backend = Backend::new("bench-1", upstream);
    router.set_app("bench", &[HOST.to_owned()], vec![backend]);
    router
}

/// The reef proxy with its default settings.
async fn reef(listener: TcpListener, router: Router) -> anyhow::Result<()> {
    reef_proxy::serve(
        listener,
        router,
        ProxyConfig::default(),
        CancellationToken::new(),
    )
    .await
    .context("serve")
}
