//! End-to-end tests of the proxy: real TCP, real HTTP backends, the real
//! accept loop. One binary, so the suite links once (the memory test has a
//! binary of its own, so nothing else runs beside it).

mod cross_node;
mod draining;
mod fast_path;
mod limits;
mod observability;
mod protocols;
mod redirect;
mod routing;
mod server;
mod streaming;
mod support;
mod websocket;
