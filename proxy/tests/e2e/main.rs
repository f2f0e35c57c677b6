//! End-to-end tests of the proxy: real TCP, real HTTP backends, the real
//! accept loop. One binary, so the suite links once.

mod draining;
mod routing;
mod server;
mod support;
