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

/// Pending connections a listener holds (nginx's default is 511).
const LISTEN_BACKLOG: u32 = 1024;

/// A server this binary can be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    Backend,
    Reef,
    ReefPerCore,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Reef => "reef",
            Self::ReefPerCore => "reef-per-core",
        }
    }
}

/// The role this process was started in, if any.
pub(crate) fn requested() -> Option<Role> {
    match std::env::var(ROLE_VAR).ok()?.as_str() {
        "backend" => Some(Role::Backend),
        "reef" => Some(Role::Reef),
        "reef-per-core" => Some(Role::ReefPerCore),
        _ => None,
    }
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
        Role::ReefPerCore => {
            let router = bench_router(upstream()?);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("start a runtime")?
                .block_on(async {
                    let listeners = reef_proxy::ProxyListeners::bind(addr, cores)
                        .with_context(|| format!("bind {addr}"))?;
                    reef_proxy::serve_per_core(
                        listeners,
                        router,
                        ProxyConfig::default(),
                        CancellationToken::new(),
                    )
                    .await
                    .context("serve")
                })
        }
    }
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
    let backend = Backend {
        id: "bench-1".to_owned(),
        addr: upstream,
    };
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
