//! The proxy laid out like nginx's workers: one thread per core, each with a
//! single-threaded runtime, its own listener on the shared port
//! (`SO_REUSEPORT`, so the kernel spreads connections) and its own upstream
//! pool, all routing with one [`Router`].
//!
//! Measured against one multi-threaded runtime (`docs/benchmarks.md`), this
//! layout needs about a quarter less CPU per request: a request and its
//! upstream connection stay on one thread instead of hopping between workers.

use std::io;
use std::net::SocketAddr;
use std::thread;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::router::Router;
use crate::{serve, ProxyConfig};

/// Queue of connections not yet accepted, per listener.
const LISTEN_BACKLOG: u32 = 1024;

/// Listeners for [`serve_per_core`], one per worker, all on one port.
#[derive(Debug)]
pub struct ProxyListeners(Vec<std::net::TcpListener>);

impl ProxyListeners {
    /// Binds `workers` listeners (at least one) on `addr`; with port 0 they
    /// share the port the first one got. Call it inside a tokio runtime.
    pub fn bind(addr: SocketAddr, workers: usize) -> io::Result<Self> {
        let mut addr = addr;
        let mut listeners = Vec::new();
        for _ in 0..workers.max(1) {
            let listener = listen(addr)?;
            addr = listener.local_addr()?;
            listeners.push(listener.into_std()?);
        }
        Ok(Self(listeners))
    }

    /// The address every listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.0.first() {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::other("no listener")),
        }
    }
}

/// Serves the proxy on `listeners`, one worker thread each, until `shutdown`
/// is cancelled; returns once every worker finished its graceful shutdown.
pub async fn serve_per_core(
    listeners: ProxyListeners,
    router: Router,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut threads = Vec::new();
    for (index, listener) in listeners.0.into_iter().enumerate() {
        let (router, config, token) = (router.clone(), config.clone(), shutdown.clone());
        let spawned = thread::Builder::new()
            .name(format!("reef-proxy-{index}"))
            .spawn(move || worker(listener, router, config, token));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                shutdown.cancel();
                join_all(threads).await;
                return Err(error);
            }
        }
    }
    join_all(threads).await;
    Ok(())
}

/// One worker thread: its own runtime, serving its listener until shutdown.
fn worker(
    listener: std::net::TcpListener,
    router: Router,
    config: ProxyConfig,
    shutdown: CancellationToken,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "could not start a proxy worker");
            return;
        }
    };
    runtime.block_on(async move {
        let served = match TcpListener::from_std(listener) {
            Ok(listener) => serve(listener, router, config, shutdown).await,
            Err(error) => Err(error),
        };
        if let Err(error) = served {
            tracing::error!(%error, "proxy worker failed");
        }
    });
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Waits for the worker threads without blocking the caller's runtime.
async fn join_all(threads: Vec<thread::JoinHandle<()>>) {
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a proxy worker panicked");
            }
        }
    })
    .await;
    if joined.is_err() {
        tracing::error!("waiting for the proxy workers failed");
    }
}
