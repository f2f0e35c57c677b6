//! The cluster's servers as one server knows them, and what its
//! nats-server must be made of that. Every server keeps the list in
//! `DATA_DIR/servers.json` (written when it joins, then kept current from
//! the `reef-servers` bucket), so it can start its nats-server with routes
//! to the others before it can read anything from the cluster.
//!
//! One server alone runs a standalone nats-server: a NATS cluster's
//! JetStream needs a quorum of at least two servers, so a single clustered
//! server would never elect a leader. From the second server on, every
//! server runs clustered, with routes to all the others.

use reef_proto::servers::ServerRecord;
use std::path::{Path, PathBuf};

/// How a server's nats-server runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The only server: no cluster listener, no routes.
    Standalone,
    /// One of several: routes (`tls://host:port`) to every other server.
    Clustered { routes: Vec<String> },
}

/// What `me`'s nats-server must be, given every server of the cluster.
pub fn shape(me: &str, servers: &[ServerRecord]) -> Shape {
    let mut routes: Vec<String> = servers
        .iter()
        .filter(|server| server.name != me)
        .map(ServerRecord::route_url)
        .collect();
    if routes.is_empty() {
        return Shape::Standalone;
    }
    routes.sort();
    routes.dedup();
    Shape::Clustered { routes }
}

/// The URLs clients reach the cluster at: every server's client address.
pub fn client_urls(servers: &[ServerRecord]) -> Vec<String> {
    let mut urls: Vec<String> = servers.iter().map(ServerRecord::client_url).collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Why the list could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("could not read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a list of servers: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("could not write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    servers: Vec<ServerRecord>,
}

/// The servers as `dir` last knew them; empty when it never knew any.
pub fn load(dir: &Path) -> Result<Vec<ServerRecord>, TopologyError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TopologyError::Read { path, source }),
    };
    let file: File = serde_json::from_str(&text).map_err(|e| TopologyError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    for server in &file.servers {
        server.validate().map_err(|reason| TopologyError::Corrupt {
            path: path.clone(),
            reason,
        })?;
    }
    Ok(file.servers)
}

/// Records `servers` in `dir`, whole or not at all.
pub fn save(dir: &Path, servers: &[ServerRecord]) -> Result<(), TopologyError> {
    let path = dir.join(FILE);
    let mut sorted = servers.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let text = serde_json::to_string_pretty(&File { servers: sorted }).map_err(|e| {
        TopologyError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        }
    })?;
    let staged = dir.join(format!(".{FILE}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&staged)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&staged, &path)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&staged);
        TopologyError::Write {
            path: path.clone(),
            source,
        }
    })
}

/// The file's name in a server's data dir.
pub const FILE: &str = "servers.json";

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, host: &str) -> ServerRecord {
        ServerRecord {
            name: name.into(),
            node: reef_proto::NodeId::new(),
            route: format!("{host}:6222"),
            client: format!("{host}:4222"),
            joined_at_ms: 1,
        }
    }

    #[test]
    fn alone_a_server_is_standalone_and_with_others_it_routes_to_them() {
        assert_eq!(shape("a", &[]), Shape::Standalone);
        assert_eq!(shape("a", &[server("a", "10.0.0.1")]), Shape::Standalone);
        let three = [
            server("c", "10.0.0.3"),
            server("a", "10.0.0.1"),
            server("b", "10.0.0.2"),
        ];
        assert_eq!(
            shape("a", &three),
            Shape::Clustered {
                routes: vec!["tls://10.0.0.2:6222".into(), "tls://10.0.0.3:6222".into()]
            }
        );
        // A server not yet in the list (it is joining) routes to all of them.
        assert_eq!(
            shape("d", &three[..1]),
            Shape::Clustered {
                routes: vec!["tls://10.0.0.3:6222".into()]
            }
        );
        assert_eq!(
            client_urls(&three),
            [
                "tls://10.0.0.1:4222",
                "tls://10.0.0.2:4222",
                "tls://10.0.0.3:4222"
            ]
        );
    }

    #[test]
    fn the_list_survives_a_restart_and_a_bad_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("none yet").is_empty());
        let servers = vec![server("b", "10.0.0.2"), server("a", "10.0.0.1")];
        save(dir.path(), &servers).expect("save");
        let loaded = load(dir.path()).expect("load");
        assert_eq!(
            loaded.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        std::fs::write(dir.path().join(FILE), "{\"servers\": 3}").expect("write");
        assert!(load(dir.path()).is_err());
        let mut bad = server("x", "10.0.0.9");
        bad.route = "10.0.0.9:6222 } include /etc/passwd".into();
        std::fs::write(
            dir.path().join(FILE),
            serde_json::to_string(&File { servers: vec![bad] }).expect("json"),
        )
        .expect("write");
        let err = load(dir.path()).expect_err("a route that is not host:port");
        assert!(err.to_string().contains("route address"), "{err}");
    }
}
