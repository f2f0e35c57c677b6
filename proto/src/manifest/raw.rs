//! The manifest as written in TOML, before validation. Every table refuses
//! fields it does not know, so a typo is an error that names it.

use super::{
    duration_ms, invalid, labels, size_bytes, validate_app_name, AppSpec, EnvTemplate, HealthCheck,
    HealthSpec, ManifestError, RestartPolicy, RollingPolicy, RunSpec, Strategy,
};
use crate::job::{GpuRequest, Resources, DEFAULT_CPU_MILLIS, DEFAULT_MEMORY_BYTES};
use crate::route_domain::validate_route_domain;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The secret a distributed BEAM release's cookie comes from.
const BEAM_COOKIE_SECRET: &str = "RELEASE_COOKIE";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    app: App,
    #[serde(default)]
    deploy: Deploy,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    resources: ResourcesTable,
    #[serde(default)]
    placement: Placement,
    backup: Option<BackupTable>,
    #[serde(default)]
    cron: Vec<super::cron::CronTable>,
    #[serde(default)]
    services: BTreeMap<String, super::services::RawService>,
}

/// `[backup]`: when the app's data is backed up and how many are kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupTable {
    schedule: Option<String>,
    tz: Option<String>,
    keep: Option<u32>,
    pre_backup: Option<String>,
}

/// Backups kept when `[backup]` does not say.
const DEFAULT_BACKUPS_KEPT: u32 = 7;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct App {
    name: String,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    https_redirect: bool,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DeployType {
    #[default]
    Exec,
    Beam,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum StrategyName {
    #[default]
    BlueGreen,
    Sequential,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Deploy {
    #[serde(default, rename = "type")]
    kind: DeployType,
    binary: Option<String>,
    command: Option<Vec<String>>,
    release: Option<String>,
    beam_command: Option<String>,
    health: Option<String>,
    health_interval: Option<String>,
    health_timeout: Option<String>,
    health_attempts: Option<u32>,
    #[serde(default)]
    strategy: StrategyName,
    drain: Option<Seconds>,
    replicas: Option<u32>,
    max_parallel: Option<u32>,
    min_healthy_time: Option<String>,
    auto_revert: Option<bool>,
    pre_start: Option<String>,
    post_deploy: Option<String>,
    #[serde(default)]
    restart: Restart,
    distribution: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Restart {
    attempts: Option<u32>,
    interval: Option<String>,
    delay: Option<String>,
    max_delay: Option<String>,
}

/// A time written as a number of seconds or as a duration (`"5s"`, `"2m"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Seconds {
    Number(i64),
    Text(String),
}

/// A size written as a number of bytes or as text (`"256M"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Size {
    Bytes(i64),
    Text(String),
}

/// CPU written as an integer or a fraction of cores.
#[derive(Deserialize)]
#[serde(untagged)]
enum Cores {
    Int(i64),
    Float(f64),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResourcesTable {
    cpu: Option<Cores>,
    memory: Option<Size>,
    gpus: Option<u32>,
    gpu_model: Option<String>,
    min_vram: Option<Size>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Placement {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn relative_path(field: &str, path: &str) -> Result<(), ManifestError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|c| c == "..");
    if bad {
        return Err(invalid(
            field,
            format!("{path:?} must be a path inside the release (relative, no '..')"),
        ));
    }
    Ok(())
}

fn command_line(field: &str, value: &Option<String>) -> Result<Option<String>, ManifestError> {
    match value {
        Some(cmd) if cmd.trim().is_empty() || cmd.contains('\0') => {
            Err(invalid(field, "must be a non-empty shell command"))
        }
        other => Ok(other.clone()),
    }
}

impl Manifest {
    pub(super) fn validate(self) -> Result<AppSpec, ManifestError> {
        validate_app_name(&self.app.name).map_err(|e| invalid("app.name", e))?;
        let mut domains = Vec::new();
        for (i, domain) in self.app.domains.iter().enumerate() {
            validate_route_domain(domain).map_err(|e| invalid(&format!("app.domains[{i}]"), e))?;
            if domains.contains(domain) {
                return Err(invalid(
                    &format!("app.domains[{i}]"),
                    format!("{domain} is listed twice"),
                ));
            }
            domains.push(domain.clone());
        }
        let d = &self.deploy;
        let run = match d.kind {
            DeployType::Exec => {
                if d.release.is_some() || d.beam_command.is_some() {
                    return Err(invalid("deploy.release", "only for type = \"beam\""));
                }
                if d.distribution.is_some() {
                    return Err(invalid("deploy.distribution", "only for type = \"beam\""));
                }
                match (&d.binary, &d.command) {
                    (Some(binary), None) => {
                        relative_path("deploy.binary", binary)?;
                        let program = if binary.contains('/') {
                            binary.clone()
                        } else {
                            format!("./{binary}")
                        };
                        RunSpec::Exec {
                            command: vec![program],
                        }
                    }
                    (None, Some(command)) => {
                        if command.is_empty() || command[0].is_empty() {
                            return Err(invalid("deploy.command", "must name a program"));
                        }
                        if command.iter().any(|a| a.contains('\0')) {
                            return Err(invalid(
                                "deploy.command",
                                "arguments must not contain NUL bytes",
                            ));
                        }
                        RunSpec::Exec {
                            command: command.clone(),
                        }
                    }
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "deploy.command",
                            "give either deploy.binary or deploy.command, not both",
                        ))
                    }
                    (None, None) => {
                        return Err(invalid(
                            "deploy",
                            "type = \"exec\" needs deploy.binary or deploy.command",
                        ))
                    }
                }
            }
            DeployType::Beam => {
                if d.binary.is_some() || d.command.is_some() {
                    return Err(invalid(
                        "deploy.command",
                        "type = \"beam\" runs bin/<release>; drop binary and command",
                    ));
                }
                let release = d
                    .release
                    .clone()
                    .unwrap_or_else(|| self.app.name.replace('-', "_"));
                let ok = !release.is_empty()
                    && release.len() <= 128
                    && release
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(invalid(
                        "deploy.release",
                        format!("{release:?} is not a release name"),
                    ));
                }
                let command = d.beam_command.clone().unwrap_or_else(|| "start".into());
                if !matches!(command.as_str(), "start" | "foreground") {
                    return Err(invalid(
                        "deploy.beam_command",
                        "must be \"start\" (Elixir) or \"foreground\" (Erlang)",
                    ));
                }
                RunSpec::Beam {
                    release,
                    command,
                    distribution: d.distribution.unwrap_or(false),
                }
            }
        };
        let check = match &d.health {
            Some(path) => {
                if !path.starts_with('/')
                    || path.len() > 1024
                    || path.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid(
                        "deploy.health",
                        format!("{path:?} must be an HTTP path starting with '/'"),
                    ));
                }
                HealthCheck::Http { path: path.clone() }
            }
            None => HealthCheck::Tcp,
        };
        let ms = Duration::from_millis;
        let health = HealthSpec {
            check,
            interval_ms: duration_ms(
                "deploy.health_interval",
                d.health_interval.as_deref().unwrap_or("100ms"),
                ms(10),
                ms(3_600_000),
            )?,
            timeout_ms: duration_ms(
                "deploy.health_timeout",
                d.health_timeout.as_deref().unwrap_or("2s"),
                ms(10),
                ms(600_000),
            )?,
            attempts: match d.health_attempts {
                None => 300,
                Some(n @ 1..=100_000) => n,
                Some(_) => {
                    return Err(invalid(
                        "deploy.health_attempts",
                        "must be between 1 and 100000",
                    ))
                }
            },
        };
        let drain_ms = match &d.drain {
            None => 10_000,
            Some(Seconds::Number(s @ 0..=3600)) => *s as u64 * 1000,
            Some(Seconds::Number(_)) => {
                return Err(invalid(
                    "deploy.drain",
                    "must be between 0 and 3600 seconds",
                ))
            }
            Some(Seconds::Text(text)) => duration_ms(
                "deploy.drain",
                text,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
        };
        let replicas = match d.replicas {
            None => 1,
            Some(n @ 1..=1000) => n,
            Some(_) => return Err(invalid("deploy.replicas", "must be between 1 and 1000")),
        };
        let rolling = RollingPolicy {
            max_parallel: match d.max_parallel {
                None => 0,
                Some(n @ 1..=1000) => n,
                Some(_) => {
                    return Err(invalid("deploy.max_parallel", "must be between 1 and 1000"))
                }
            },
            min_healthy_ms: duration_ms(
                "deploy.min_healthy_time",
                d.min_healthy_time.as_deref().unwrap_or("0s"),
                Duration::ZERO,
                ms(3_600_000),
            )?,
            auto_revert: d.auto_revert.unwrap_or(true),
        };
        let r = &d.restart;
        let restart = RestartPolicy {
            attempts: match r.attempts {
                None => 10,
                Some(n @ 0..=10_000) => n,
                Some(_) => {
                    return Err(invalid(
                        "deploy.restart.attempts",
                        "must be between 0 and 10000",
                    ))
                }
            },
            interval_ms: duration_ms(
                "deploy.restart.interval",
                r.interval.as_deref().unwrap_or("5m"),
                ms(1000),
                ms(86_400_000),
            )?,
            delay_ms: duration_ms(
                "deploy.restart.delay",
                r.delay.as_deref().unwrap_or("500ms"),
                ms(0),
                ms(3_600_000),
            )?,
            max_delay_ms: duration_ms(
                "deploy.restart.max_delay",
                r.max_delay.as_deref().unwrap_or("30s"),
                ms(0),
                ms(3_600_000),
            )?,
        };
        if restart.max_delay_ms < restart.delay_ms {
            return Err(invalid(
                "deploy.restart.max_delay",
                "must not be less than deploy.restart.delay",
            ));
        }
        let mut env = BTreeMap::new();
        if matches!(
            run,
            RunSpec::Beam {
                distribution: true,
                ..
            }
        ) {
            // Nodes that talk to each other share a cookie, kept as a secret
            // (a deploy without it is refused, naming it); `[env]` may say otherwise.
            for key in ["RELEASE_COOKIE", "RELX_COOKIE"] {
                let template = EnvTemplate::parse(&format!("${{secret:{BEAM_COOKIE_SECRET}}}"))
                    .map_err(|e| invalid("deploy.distribution", e))?;
                env.insert(key.to_string(), template);
            }
        }
        for (key, value) in &self.env {
            let field = format!("env.{key}");
            let valid_key = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_key {
                return Err(invalid(
                    &field,
                    "variable names use letters, digits and '_', not starting with a digit",
                ));
            }
            if key == "PORT" {
                return Err(invalid(
                    &field,
                    "PORT is set by reef to the instance's port",
                ));
            }
            env.insert(
                key.clone(),
                EnvTemplate::parse(value).map_err(|e| invalid(&field, e))?,
            );
        }
        let cpu_millis = match self.resources.cpu {
            None => DEFAULT_CPU_MILLIS,
            Some(Cores::Int(n)) if (1..=1024).contains(&n) => n as u32 * 1000,
            Some(Cores::Float(f)) if (0.001..=1024.0).contains(&f) => (f * 1000.0).round() as u32,
            Some(_) => {
                return Err(invalid(
                    "resources.cpu",
                    "must be between 0.001 and 1024 cores",
                ))
            }
        };
        let memory_bytes = match &self.resources.memory {
            None => DEFAULT_MEMORY_BYTES,
            Some(size) => size_bytes("resources.memory", size)?,
        };
        let gpus = GpuRequest {
            count: match self.resources.gpus {
                None => 0,
                Some(n @ 0..=64) => n,
                Some(_) => return Err(invalid("resources.gpus", "must be between 0 and 64")),
            },
            model: match &self.resources.gpu_model {
                None => None,
                Some(m) if !m.is_empty() && m.len() <= 128 && !m.contains('\0') => Some(m.clone()),
                Some(_) => {
                    return Err(invalid(
                        "resources.gpu_model",
                        "must be 1 to 128 characters",
                    ))
                }
            },
            min_vram_bytes: match &self.resources.min_vram {
                None => None,
                Some(size) => Some(size_bytes("resources.min_vram", size)?),
            },
        };
        if gpus.count == 0 && (gpus.model.is_some() || gpus.min_vram_bytes.is_some()) {
            return Err(invalid(
                "resources.gpus",
                "gpu_model and min_vram need gpus = N",
            ));
        }
        labels("placement.labels", &self.placement.labels)?;
        let cron = super::cron::validate(&self.app.name, &self.cron)?;
        Ok(AppSpec {
            name: self.app.name,
            domains,
            https_redirect: self.app.https_redirect,
            run,
            health,
            strategy: match d.strategy {
                StrategyName::BlueGreen => Strategy::BlueGreen,
                StrategyName::Sequential => Strategy::Sequential,
            },
            drain_ms,
            replicas,
            rolling,
            pre_start: command_line("deploy.pre_start", &d.pre_start)?,
            post_deploy: command_line("deploy.post_deploy", &d.post_deploy)?,
            restart,
            env,
            resources: Resources {
                cpu_millis,
                memory_bytes,
            },
            gpus,
            constraints: self.placement.labels,
            backup: match self.backup {
                None => None,
                Some(b) => {
                    let spec = crate::backup::BackupSpec {
                        schedule: b.schedule,
                        time_zone: b.tz.unwrap_or_else(|| "UTC".into()),
                        keep: b.keep.unwrap_or(DEFAULT_BACKUPS_KEPT),
                        pre_backup: command_line("backup.pre_backup", &b.pre_backup)?,
                    };
                    spec.validate().map_err(|(field, e)| invalid(&field, e))?;
                    Some(spec)
                }
            },
            cron,
            services: super::services::validate(&self.services)?,
        })
    }
}
