//! The node proxy: every node agent runs one. It routes HTTP requests by their
//! Host to the local instances (processes on `127.0.0.1:PORT`) of the app that
//! owns that host, and lets deploys switch routes atomically and then drain
//! the old instance (blue-green).
//!
//! - `routes`: the route table and the [`Router`] the agent updates.
//! - `load`: in-flight counts per instance, and draining.
//! - `host`: which host a request is for.
//! - `forward`: forwarding one request and streaming its answer back.
//! - `headers`: hop-by-hop headers and `X-Forwarded-*`.
//! - `error` and `pages`: what the client gets when a request cannot be forwarded.
//! - `config`: the [`ProxyConfig`] settings.
//! - `server`: the accept loop and graceful shutdown, [`serve`].
//!
//! Plain HTTP/1.1 only for now; TLS, WebSockets, HTTP/2 and forwarding to
//! other nodes come later.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod config;
mod error;
mod forward;
mod headers;
mod host;
mod load;
mod pages;
mod routes;
mod server;

pub use config::ProxyConfig;
pub use routes::{Backend, Router};
pub use server::serve;
