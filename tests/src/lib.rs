//! The end-to-end test harness: real `nats-server` processes (one, or a
//! 3-server cluster) on free ports in temp dirs, real `reef` coordinator and
//! agent processes, and the `reef` CLI, all killed when dropped. Every wait is
//! bounded; nothing sleeps a fixed time and hopes.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
pub mod app;
pub mod beam_app;
pub mod cluster;
pub mod confined;
pub mod dev;
pub mod exactly_once;
pub mod gpu;
pub mod http;
pub mod https;
pub mod lan;
pub mod leader;
pub mod leaks;
pub mod nats;
pub mod netns;
pub mod postgres;
pub mod probe;
pub mod process;
pub mod reef;
pub mod stream_app;
pub mod wait;
pub mod webdriver;
pub mod wiretap;
pub mod ws_app;

pub use cluster::TestCluster;
pub use nats::{NatsCluster, NatsServer, NatsUrl};
pub use reef::{Cli, CliOutput, ReefProcess};
pub use wait::eventually;
