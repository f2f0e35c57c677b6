//! The node proxy: every node agent runs one. It routes HTTP requests by their
//! Host to the instances of the app that owns that host, on this node
//! (processes on `127.0.0.1:PORT`) or, for an app with none here, on another
//! node through that node's proxy. Deploys switch routes atomically and then
//! drain the old instance (blue-green).
//!
//! Clients speak HTTP/1.1 or HTTP/2: h2c with prior knowledge on the plain
//! listener ([`serve`]), ALPN on the TLS one ([`serve_tls`], certificates by
//! SNI from [`Certificates`]). Instances are spoken to over pooled HTTP/1.1.
//! HTTP/1.1 clients are served by a fast path of the proxy's own (`h1`),
//! everything else by hyper.
//! Bodies stream both ways; WebSockets and other HTTP/1.1 upgrades are
//! tunnelled. The plain listener answers ACME HTTP-01 challenges
//! ([`Challenges`]) and redirects apps that ask for it to HTTPS.
//!
//! Other nodes reach this one on a third listener ([`serve_peer`]), over
//! mutual TLS with node certificates ([`PeerTls`]); only there are a
//! request's `X-Forwarded-*` believed, and only there is it served from local
//! instances alone.
//!
//! - `router`: the [`Router`] the agent updates ([`Backend`], [`AppRoute`]).
//! - `table`: one routing, and choosing a backend (local first, then other nodes).
//! - `load`: in-flight counts per backend, and draining.
//! - `host`: which host a request is for.
//! - `h1`: the fast path for HTTP/1.1: a request forwarded as it came, in
//!   the client connection's own task, over a kept-alive upstream connection.
//! - `handler`: answering one request on the full path, from challenge to response.
//! - `forward`: the request rewrite, and hyper's pooled upstream client for
//!   the full path's requests with a body and upgrades.
//! - `upgrade`: WebSocket and other upgrade tunnels.
//! - `limits`: request body size limit and stall timeout.
//! - `headers`: hop-by-hop headers and `X-Forwarded-*`.
//! - `side`: which listener a request came in on, and what follows from it.
//! - `peer`: node-to-node mutual TLS, [`PeerTls`], and tunnels of raw TCP to a node's services over it ([`TunnelHandler`]).
//! - `acme`: ACME HTTP-01 challenge answers, [`Challenges`].
//! - `redirect`: HTTP→HTTPS redirects.
//! - `certs`: certificates by name, [`Certificates`]; `tls`: the TLS settings.
//! - `metrics`: counters and the Prometheus text, [`Metrics`].
//! - `access`: the access log (target [`ACCESS_TARGET`]).
//! - `error`, `pages` and `body`: what the client gets when the proxy answers itself.
//! - `config`: the [`ProxyConfig`] settings.
//! - `server`: the accept loop and graceful shutdown, [`serve`], [`serve_tls`]
//!   and [`serve_peer`].
//! - `connection`: one client connection, TLS handshake and protocol settings;
//!   `deadline`: the deadline for its first bytes.
//! - `exec`: the tracked executor hyper spawns its tasks on.
//! - `workers`: one single-threaded runtime per core, [`serve_per_core`].

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod access;
mod acme;
mod body;
mod certs;
mod config;
mod connection;
mod deadline;
mod error;
mod exec;
pub mod exposition;
mod forward;
mod h1;
mod handler;
mod headers;
mod host;
mod limits;
mod load;
mod maintenance;
mod metrics;
mod pages;
mod peer;
mod redirect;
mod router;
mod routes_index;
mod server;
mod side;
mod table;
mod tls;
mod upgrade;
mod workers;

pub use access::ACCESS_TARGET;
pub use acme::{ChallengeError, ChallengeSource, Challenges};
pub use certs::{CertError, Certificates};
pub use config::ProxyConfig;
pub use maintenance::MaintenancePage;
pub use metrics::{AppCounts, Metrics};
pub use peer::{PeerTls, PeerTlsError, TunnelClient, TunnelHandler, TunnelStream, TUNNEL_ALPN};
pub use router::{AppRoute, Backend, Router};
pub use server::{serve, serve_peer, serve_tls};
pub use workers::{serve_per_core, ProxyListeners};
