//! Where the `reef` process's own log lines go. Daemons log to stderr
//! (the journal, under systemd), in colour only on a terminal. `reef dev`
//! keeps its console readable: its own lines, then warnings and errors
//! (each agent's with its node's name), and `--verbose` for the rest; every
//! line also goes to `DATA_DIR/reef-dev.log`, once `reef dev` knows where
//! its data dir is ([`log_to_file`]).

use std::io::IsTerminal as _;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The file every line goes to, once set.
static FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Writes to [`FILE`], or nowhere before it is set.
struct FileWriter;

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match FILE.get() {
            Some(file) => file
                .lock()
                .map_err(|_| std::io::Error::other("the log file's lock is poisoned"))?
                .write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match FILE.get() {
            Some(file) => file
                .lock()
                .map_err(|_| std::io::Error::other("the log file's lock is poisoned"))?
                .flush(),
            None => Ok(()),
        }
    }
}

/// `REEF_LOG`, else `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("REEF_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// What the daemons log by default.
pub const DAEMON: &str = "info,async_nats=warn";

/// Logging for a process that runs a node's proxy: the daemons' default,
/// with the proxy's access log only when asked for (`--access-log`, or
/// `reef_proxy::access=info` in `REEF_LOG`).
pub fn init_node(access_log: bool) {
    match access_log {
        true => init(&format!("{DAEMON},{}=info", reef_proxy::ACCESS_TARGET)),
        false => init(&format!("{DAEMON},{}=off", reef_proxy::ACCESS_TARGET)),
    }
}

/// Logging for every command but `reef dev`: to stderr at `default`.
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Logging for `reef dev`: warnings and errors on the console (everything
/// with `verbose`), everything to the file [`log_to_file`] names.
pub fn init_dev(verbose: bool) {
    let everything = DAEMON;
    let console = match verbose {
        true => filter(everything),
        false => EnvFilter::new("warn,async_nats=error"),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(console),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(|| FileWriter)
                .with_filter(filter(everything)),
        )
        .init();
}

/// Sends every line from now on to `path` too (appended).
pub fn log_to_file(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = FILE.set(Mutex::new(file));
    Ok(())
}
