//! `Reef.toml`: the one manifest that describes an app. [`parse`] reads the
//! TOML (unknown fields are errors that name them), checks every value, and
//! returns an [`AppSpec`], the validated form that travels on the wire and is
//! stored with each release. Every field is documented in `docs/manifest.md`.

use crate::job::{validate_labels, Resources};
use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

mod cron;
mod raw;
mod services;
mod template;

pub use cron::{job_name as cron_job_name, AppCron};
pub use template::{valid_secret_key, EnvPart, EnvTemplate};

/// How an app's process is started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunSpec {
    /// A program and its arguments. A program with a `/` is relative to the
    /// release directory; a bare name is looked up in the release directory
    /// first, then on PATH.
    Exec { command: Vec<String> },
    /// An Erlang/Elixir release, run in the foreground as `bin/<release> <command>`.
    Beam {
        release: String,
        command: String,
        /// Erlang distribution asked for (`[deploy] distribution = true`):
        /// a node name per instance and an epmd of the instance's own;
        /// otherwise a mix release runs with distribution off.
        distribution: bool,
    },
}

impl RunSpec {
    /// The program and arguments to run, relative to the release directory.
    pub fn argv(&self) -> Vec<String> {
        match self {
            RunSpec::Exec { command } => command.clone(),
            RunSpec::Beam {
                release, command, ..
            } => vec![format!("bin/{release}"), command.clone()],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthCheck {
    /// `GET <path>` must answer 2xx or 3xx.
    Http { path: String },
    /// A TCP connection to the instance's port must succeed.
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub check: HealthCheck,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failed checks after which a starting instance counts as
    /// failed (and a healthy one as unhealthy).
    pub attempts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Start the new instance beside the old one, switch traffic once it is
    /// healthy, then drain and stop the old one.
    BlueGreen,
    /// Drain and stop the old instance, then start the new one (for apps that
    /// cannot run twice, such as SQLite-backed ones); on failure, start the old one again.
    Sequential,
}

/// Restarting a crashed instance on the same node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Most restarts within `interval_ms` before the instance is marked failed.
    pub attempts: u32,
    pub interval_ms: u64,
    /// First delay before a restart; doubles on each crash up to `max_delay_ms`.
    pub delay_ms: u64,
    pub max_delay_ms: u64,
}

/// How a new release replaces the replicas of the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingPolicy {
    /// Replicas replaced at once (0: all of them).
    pub max_parallel: u32,
    /// How long a new replica must stay healthy before the next ones are replaced.
    pub min_healthy_ms: u64,
    /// Go back to the previous release when a replica of the new one fails.
    pub auto_revert: bool,
}

impl Default for RollingPolicy {
    fn default() -> Self {
        Self {
            max_parallel: 0,
            min_healthy_ms: 0,
            auto_revert: true,
        }
    }
}

/// A validated app description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    pub name: String,
    pub domains: Vec<String>,
    /// Plain-HTTP requests for the app's domains get a 308 redirect to HTTPS
    /// (ACME challenges are still answered on plain HTTP).
    pub https_redirect: bool,
    pub run: RunSpec,
    pub health: HealthSpec,
    pub strategy: Strategy,
    pub drain_ms: u64,
    pub replicas: u32,
    pub rolling: RollingPolicy,
    pub pre_start: Option<String>,
    pub post_deploy: Option<String>,
    pub restart: RestartPolicy,
    pub env: BTreeMap<String, EnvTemplate>,
    pub resources: Resources,
    /// GPUs each replica gets (given by index, as `CUDA_VISIBLE_DEVICES`).
    pub gpus: crate::job::GpuRequest,
    pub constraints: BTreeMap<String, String>,
    /// `[backup]`: the app's `${data_dir}` backed up on a schedule or on demand.
    pub backup: Option<crate::backup::BackupSpec>,
    /// `[[cron]]`: periodic commands run with the app's release and environment.
    pub cron: Vec<AppCron>,
    /// The managed services the app asks for (`[services.<kind>]`), at
    /// most one of each kind, in kind order.
    #[serde(default)]
    pub services: Vec<crate::services::ServiceSpec>,
}

impl AppSpec {
    /// Every secret the environment refers to.
    pub fn secrets(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.env.values().flat_map(|t| t.secrets()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The TOML itself, or a field the manifest does not know, or a value of
    /// the wrong type (the message names the field and the line).
    #[error("{0}")]
    Syntax(String),
    /// A field has a value reef does not accept.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads and validates a `Reef.toml`.
pub fn parse(text: &str) -> Result<AppSpec, ManifestError> {
    let raw: raw::Manifest = toml::from_str(text)
        .map_err(|e| ManifestError::Syntax(e.to_string().trim().to_string()))?;
    raw.validate()
}

/// Checks an app name: 1-63 of `[a-z0-9-]`, starting and ending with a letter or digit.
pub fn validate_app_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid app name: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'"
        ))
    }
}

/// Checks a host name as it may appear in a Host header: lowercase labels of
/// letters, digits and '-', 1-63 bytes each, 253 in all.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() <= 253 && domain.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{domain:?} is not a valid host name (lowercase letters, digits, '-' and '.')"
        ))
    }
}

fn duration_ms(
    field: &str,
    value: &str,
    min: Duration,
    max: Duration,
) -> Result<u64, ManifestError> {
    let d = parse_duration(value).map_err(|e| invalid(field, e.to_string()))?;
    if d < min || d > max {
        return Err(invalid(
            field,
            format!(
                "{value} is out of range ({} to {})",
                crate::units::format_duration(min),
                crate::units::format_duration(max)
            ),
        ));
    }
    Ok(d.as_millis() as u64)
}

fn size_bytes(field: &str, value: &raw::Size) -> Result<u64, ManifestError> {
    match value {
        raw::Size::Bytes(n) if *n > 0 => Ok(*n as u64),
        raw::Size::Bytes(_) => Err(invalid(field, "must be more than 0")),
        raw::Size::Text(s) => match parse_size(s) {
            Ok(0) => Err(invalid(field, "must be more than 0")),
            Ok(n) => Ok(n),
            Err(e) => Err(invalid(field, e.to_string())),
        },
    }
}

fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), ManifestError> {
    validate_labels(labels).map_err(|e| invalid(field, format!("label {e}")))
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
