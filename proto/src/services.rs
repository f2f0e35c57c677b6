//! Managed services: what an app asks for in `Reef.toml`
//! (`[services.postgres]`), the kinds reef knows, and where the cluster
//! runs each one ([`ServiceRecord`], kept in the services bucket).
//!
//! Every kind has the same shape: a name, the versions reef accepts, a
//! secret that holds its password, and the environment its app's
//! instances get. A new kind (Redis, say) is a variant of [`ServiceKind`]
//! and a row in each of its `match`es; the cluster's decisions (which node,
//! kept where its data is) and the agent's supervision take any kind.

use crate::envelope::{Message, MessageKind};
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// A kind of managed service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServiceKind {
    /// PostgreSQL, from the node's `postgresql-<major>` packages.
    Postgres,
    /// A credential of the app's own on the cluster's NATS, limited to
    /// `app.<name>.>`: nothing runs on a node for it.
    Nats,
}

impl ServiceKind {
    pub const ALL: &'static [ServiceKind] = &[ServiceKind::Postgres, ServiceKind::Nats];

    /// Its name in `Reef.toml` (`[services.<name>]`) and in keys.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Postgres => "postgres",
            ServiceKind::Nats => "nats",
        }
    }

    /// Whether it runs on a node the cluster picks (and keeps data there).
    pub fn placed(self) -> bool {
        match self {
            ServiceKind::Postgres => true,
            ServiceKind::Nats => false,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The major versions reef runs.
    pub fn versions(self) -> RangeInclusive<u32> {
        match self {
            ServiceKind::Postgres => 13..=17,
            // The cluster's own NATS: no version to choose.
            ServiceKind::Nats => 0..=0,
        }
    }

    /// The app secret that holds the service's generated password.
    pub fn password_secret(self) -> &'static str {
        match self {
            ServiceKind::Postgres => "POSTGRES_PASSWORD",
            // The whole `.creds` file: the credential's JWT and its seed.
            ServiceKind::Nats => "NATS_CREDS",
        }
    }

    /// The names of every kind, for messages.
    pub fn known() -> String {
        Self::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One service an app asks for, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    /// The major version.
    pub version: u32,
    /// The databases to create, the first being the one `DATABASE_URL` names.
    pub databases: Vec<String>,
}

/// Checks a database name: 1 to 63 of lowercase letters, digits and `_`,
/// starting with a letter or `_`, and not one PostgreSQL keeps for itself.
pub fn validate_database_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(format!(
            "{name:?} is not a valid database name: use 1 to 63 lowercase letters, digits and '_', \
             starting with a letter or '_'"
        ));
    }
    if matches!(name, "postgres" | "template0" | "template1") {
        return Err(format!(
            "{name:?} is PostgreSQL's own database; choose another name"
        ));
    }
    Ok(())
}

/// What should become of a service's process and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceDesired {
    /// Run it.
    Running,
    /// The app was destroyed without `--delete-data`: stopped, its data
    /// kept on its node, and a later deploy of the app takes it up again.
    Kept,
    /// The app was destroyed with `--delete-data`: stopped and its data
    /// directory removed; a later deploy starts afresh, on any node.
    Deleted,
}

impl ServiceDesired {
    pub fn name(self) -> &'static str {
        match self {
            ServiceDesired::Running => "running",
            ServiceDesired::Kept => "stopped, data kept",
            ServiceDesired::Deleted => "deleted",
        }
    }
}

/// Where an app's service runs, kept in the services bucket under
/// `<app>.<kind>`. Once placed, a service is pinned: its data lives on
/// `node`, and nothing moves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub app: String,
    pub kind: ServiceKind,
    pub version: u32,
    pub databases: Vec<String>,
    /// The node that runs it and keeps its data.
    pub node: NodeId,
    /// The TCP port it listens on, on its node's loopback only.
    pub port: u16,
    /// The role the app's instances log in as.
    pub role: String,
    /// Its node's peer listener, where other nodes' agents open tunnels
    /// to it (mutual TLS); None: only instances on `node` reach it.
    pub peer: Option<std::net::SocketAddr>,
    pub desired: ServiceDesired,
    /// The password, sealed to `node`'s key (context
    /// `<app>/<password secret>`): only that node opens it.
    pub sealed_password: Vec<u8>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Message for ServiceRecord {
    const KIND: MessageKind = MessageKind::ServiceRecord;
}

/// What a node says of a service it runs, with each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub app: String,
    pub kind: ServiceKind,
    /// `starting`, `running`, `restarting: ...`, `failed: ...`.
    pub state: String,
}

/// The most services a heartbeat reports, and the longest state kept: a
/// node's word is bounded like any input.
pub const MAX_REPORTED: usize = 256;
pub const MAX_STATE_BYTES: usize = 300;

impl ServiceHealth {
    /// `reports` within the bounds: at most [`MAX_REPORTED`], each state cut
    /// to [`MAX_STATE_BYTES`] on a character boundary.
    pub fn bounded(mut reports: Vec<ServiceHealth>) -> Vec<ServiceHealth> {
        reports.truncate(MAX_REPORTED);
        for report in &mut reports {
            if report.state.len() > MAX_STATE_BYTES {
                let mut end = MAX_STATE_BYTES;
                while !report.state.is_char_boundary(end) {
                    end -= 1;
                }
                report.state.truncate(end);
            }
        }
        reports
    }
}

/// How an instance reaches its app's service: given with each instance's
/// assignment (the password travels as a sealed secret beside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    pub kind: ServiceKind,
    pub node: NodeId,
    /// Its node's peer listener (tunnels from other nodes go there).
    pub peer: Option<std::net::SocketAddr>,
    pub port: u16,
    pub role: String,
    pub databases: Vec<String>,
}

impl ServiceEndpoint {
    pub fn of(record: &ServiceRecord) -> Self {
        Self {
            kind: record.kind,
            node: record.node,
            peer: record.peer,
            port: record.port,
            role: record.role.clone(),
            databases: record.databases.clone(),
        }
    }

    /// The environment an instance on node `here` gets: for Postgres,
    /// `DATABASE_URL` for the first database and, with several,
    /// `DATABASE_URL_<NAME>` for each. On the service's node it is reached
    /// on loopback; elsewhere through the local end of a tunnel to it
    /// (`forwarder`, a port on this node's loopback). None when neither.
    pub fn env(
        &self,
        here: NodeId,
        password: &str,
        forwarder: Option<u16>,
    ) -> Option<Vec<(String, String)>> {
        let port = if here == self.node {
            self.port
        } else {
            forwarder?
        };
        match self.kind {
            ServiceKind::Postgres => {
                let password = percent_encode(password);
                let url =
                    |db: &str| format!("postgres://{}:{password}@127.0.0.1:{port}/{db}", self.role);
                let mut env = Vec::new();
                if let Some(first) = self.databases.first() {
                    env.push(("DATABASE_URL".to_string(), url(first)));
                }
                if self.databases.len() > 1 {
                    for db in &self.databases {
                        env.push((format!("DATABASE_URL_{}", db.to_uppercase()), url(db)));
                    }
                }
                Some(env)
            }
            ServiceKind::Nats => None,
        }
    }
}

/// The subjects an app's own NATS credential may use: its own subjects,
/// and its own inbox prefix for request and reply (a client must be told
/// to use it: `NATS_INBOX_PREFIX`).
pub fn app_subjects(app: &str) -> [String; 2] {
    [
        format!("app.{app}.>"),
        format!("{}.>", app_inbox_prefix(app)),
    ]
}

/// The inbox prefix of app `app`'s clients.
pub fn app_inbox_prefix(app: &str) -> String {
    format!("_INBOX_app_{app}")
}

/// `text` with every byte but URL-unreserved ones as `%XX` (a password
/// set by hand may hold any character).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The role an app's instances log in as: the app's name (valid as a
/// PostgreSQL role once quoted, and in a URL as it is).
pub fn role_name(app: &str) -> String {
    app.to_string()
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
