//! What can go wrong getting an instance running: each step's error names
//! what it was doing and keeps its cause. An instance that fails ends with
//! the whole chain as its reason (`reef_proto::Report`).

use crate::sandbox::SpawnError;
use std::path::PathBuf;
use std::time::Duration;

/// Getting the release ready: download, verification, unpacking.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error("{digest:?} is not a sha256 digest")]
    BadDigest { digest: String },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the artifact store")]
    Store(#[source] async_nats::jetstream::context::ObjectStoreError),
    #[error("downloading artifact {digest}")]
    Download {
        digest: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("downloading artifact {digest}: no data for {}", reef_proto::units::format_duration(*stalled))]
    Stalled { digest: String, stalled: Duration },
    #[error("artifact {digest} failed verification: got {bytes} bytes with sha256 {sha256}")]
    Mismatch {
        digest: String,
        bytes: u64,
        sha256: String,
    },
    #[error("unpacking the release")]
    Unpack(#[source] reef_artifact::UnpackError),
    #[error("a preparation task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// A hook (`pre_start`, `post_deploy`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HookError {
    #[error("{name} could not start")]
    Start {
        name: &'static str,
        #[source]
        source: SpawnError,
    },
    #[error("{name}: waiting for it failed")]
    Wait {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} did not finish within {}", reef_proto::units::format_duration(*limit))]
    Timeout { name: &'static str, limit: Duration },
    #[error("{name} `{command}` exited with {code}")]
    Failed {
        name: &'static str,
        command: String,
        code: i32,
    },
}

/// A health check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HealthError {
    #[error("no answer within {}", reef_proto::units::format_duration(*after))]
    Timeout { after: Duration },
    #[error("connect to port {port}")]
    Connect {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("{step} GET {path}")]
    Exchange {
        step: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {path}: not an HTTP response")]
    NotHttp { path: String },
    #[error("GET {path} answered {status}")]
    Status { path: String, status: u16 },
}

/// Starting an instance, up to its first health check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("creating {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port")]
    NoPort(#[source] std::io::Error),
    #[error("env {key}: {reason}")]
    Env { key: String, reason: String },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("the process exited before it could be tracked")]
    Untracked,
    #[error("waiting for the process")]
    Wait(#[source] std::io::Error),
    #[error("health check failed {failures} times; last")]
    Unhealthy {
        failures: u32,
        #[source]
        last: HealthError,
    },
}
