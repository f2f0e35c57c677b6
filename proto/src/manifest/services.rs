//! `[services.<kind>]`: the managed services an app asks for. An unknown
//! kind, a version reef does not run, or a database name PostgreSQL would
//! refuse is an error naming it.

use super::{invalid, ManifestError};
use crate::services::{validate_database_name, ServiceKind, ServiceSpec};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A service table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    version: Option<Version>,
    #[serde(default)]
    databases: Vec<String>,
}

/// A major version written as a number or as text (`15` or `"15"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Version {
    Number(i64),
    Text(String),
}

pub(super) fn validate(
    raw: &BTreeMap<String, RawService>,
) -> Result<Vec<ServiceSpec>, ManifestError> {
    let mut specs = Vec::new();
    for (name, service) in raw {
        let field = format!("services.{name}");
        let kind = ServiceKind::parse(name).ok_or_else(|| {
            invalid(
                &field,
                format!(
                    "unknown service kind {name:?} (reef runs: {})",
                    ServiceKind::known()
                ),
            )
        })?;
        if kind == ServiceKind::Nats {
            if service.version.is_some() || !service.databases.is_empty() {
                return Err(invalid(
                    &field,
                    "takes no fields: the app gets a credential of its own on the cluster's NATS",
                ));
            }
            specs.push(ServiceSpec {
                kind,
                version: 0,
                databases: Vec::new(),
            });
            continue;
        }
        let versions = kind.versions();
        let supported = || {
            format!(
                "reef runs {} {} to {}",
                kind.name(),
                versions.start(),
                versions.end()
            )
        };
        let version = match &service.version {
            None => {
                return Err(invalid(
                    &format!("{field}.version"),
                    format!("is required ({})", supported()),
                ))
            }
            Some(Version::Number(n)) => u32::try_from(*n).ok(),
            Some(Version::Text(text)) => text.trim().parse::<u32>().ok(),
        };
        let version = match version {
            Some(v) if versions.contains(&v) => v,
            _ => {
                let written = match &service.version {
                    Some(Version::Number(n)) => n.to_string(),
                    Some(Version::Text(t)) => format!("{t:?}"),
                    None => String::new(),
                };
                return Err(invalid(
                    &format!("{field}.version"),
                    format!("unsupported version {written} ({})", supported()),
                ));
            }
        };
        if service.databases.is_empty() {
            return Err(invalid(
                &format!("{field}.databases"),
                "name at least one database",
            ));
        }
        if service.databases.len() > 64 {
            return Err(invalid(
                &format!("{field}.databases"),
                "at most 64 databases",
            ));
        }
        let mut databases: Vec<String> = Vec::new();
        for (i, db) in service.databases.iter().enumerate() {
            let at = format!("{field}.databases[{i}]");
            validate_database_name(db).map_err(|e| invalid(&at, e))?;
            if databases.contains(db) {
                return Err(invalid(&at, format!("{db} is listed twice")));
            }
            databases.push(db.clone());
        }
        specs.push(ServiceSpec {
            kind,
            version,
            databases,
        });
    }
    specs.sort_by_key(|s| s.kind);
    Ok(specs)
}
