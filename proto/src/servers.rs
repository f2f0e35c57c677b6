//! The cluster's servers: the machines that run `reef server` (a NATS
//! server of the cluster, a coordinator and a dedicated node). Each is a
//! [`ServerRecord`] in `reef-servers` under its name; every server renders
//! its nats-server's routes from them, and the leader sizes the replicas of
//! every stream and bucket by how many there are ([`replicas_for`]).

use crate::envelope::{Message, MessageKind};
use serde::{Deserialize, Serialize};

/// One server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// Its name: its nats-server's, its coordinator's and its node's.
    pub name: String,
    /// Its node.
    pub node: crate::NodeId,
    /// `host:port` the other servers' nats-servers open routes to.
    pub route: String,
    /// `host:port` clients (agents, coordinators, the CLI) connect to.
    pub client: String,
    pub joined_at_ms: u64,
}

impl Message for ServerRecord {
    const KIND: MessageKind = MessageKind::Server;
}

impl ServerRecord {
    /// The URL other servers route to.
    pub fn route_url(&self) -> String {
        format!("tls://{}", self.route)
    }

    /// The URL clients connect to.
    pub fn client_url(&self) -> String {
        format!("tls://{}", self.client)
    }

    /// Checks what a joining server says about itself.
    pub fn validate(&self) -> Result<(), String> {
        crate::node::validate_node_name(&self.name).map_err(|e| format!("server name: {e}"))?;
        validate_address("route", &self.route)?;
        validate_address("client", &self.client)
    }
}

/// One stream's copies, as JetStream reports them (`server.list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHealth {
    pub name: String,
    /// Copies it is configured with.
    pub replicas: usize,
    /// The server that leads it; None while it has no leader (its copies
    /// are electing one, or too few of them are up).
    pub leader: Option<String>,
    /// The other copies: the server, and whether it is current.
    pub followers: Vec<(String, bool)>,
}

impl StreamHealth {
    /// What is wrong with it, if anything: no leader, or a copy behind.
    pub fn problem(&self) -> Option<String> {
        if self.replicas > 1 && self.leader.is_none() {
            return Some(format!("{} has no leader", self.name));
        }
        let behind: Vec<&str> = self
            .followers
            .iter()
            .filter(|(_, current)| !current)
            .map(|(server, _)| server.as_str())
            .collect();
        if !behind.is_empty() {
            return Some(format!(
                "{}: the copy on {} is not current",
                self.name,
                behind.join(", ")
            ));
        }
        None
    }
}

/// Checks that `address` is `host:port` with a host made of letters,
/// digits, `.`, `-` and `:` (an IPv6 address in brackets) and a port that is
/// not 0: it goes into a nats-server configuration and into URLs, so
/// nothing else may pass.
pub fn validate_address(what: &str, address: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{what} address {address:?}: {why}"));
    let Some((host, port)) = address.rsplit_once(':') else {
        return bad("expected host:port");
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return bad("the port must be a number from 1 to 65535"),
        Ok(_) => {}
    }
    let host = match host.strip_prefix('[') {
        Some(rest) => match rest.strip_suffix(']') {
            Some(ip) if ip.parse::<std::net::Ipv6Addr>().is_ok() => return Ok(()),
            _ => return bad("a bracketed host must be an IPv6 address"),
        },
        None => host,
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok {
        return bad("the host must be a DNS name or an IP address");
    }
    Ok(())
}

/// How many copies of every stream and bucket a cluster of `servers`
/// servers keeps: one until there are three, then three. Two servers keep
/// one copy, because a two-way replica needs both servers to write, which
/// would make either one's loss stop the cluster; three tolerate one loss.
pub fn replicas_for(servers: usize) -> usize {
    if servers >= 3 {
        3
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port_and_nothing_else() {
        for good in [
            "10.0.0.1:6222",
            "reef-1.example.com:4222",
            "[::1]:6222",
            "localhost:1",
        ] {
            assert_eq!(validate_address("route", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            ":6222",
            "a b:6222",
            "host\n:6222",
            "x\"y:6222",
            "[nope]:6222",
            "h}:1",
        ] {
            assert!(validate_address("route", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_stream_is_healthy_with_a_leader_and_every_copy_current() {
        let mut stream = StreamHealth {
            name: "KV_reef-apps".into(),
            replicas: 3,
            leader: Some("s1".into()),
            followers: vec![("s2".into(), true), ("s3".into(), true)],
        };
        assert_eq!(stream.problem(), None);
        stream.followers[1].1 = false;
        assert_eq!(
            stream.problem().as_deref(),
            Some("KV_reef-apps: the copy on s3 is not current")
        );
        stream.leader = None;
        assert!(stream.problem().is_some_and(|p| p.contains("no leader")));
        let single = StreamHealth {
            name: "A".into(),
            replicas: 1,
            leader: None,
            followers: vec![],
        };
        assert_eq!(
            single.problem(),
            None,
            "a standalone server names no leader"
        );
    }

    #[test]
    fn one_copy_until_three_servers() {
        assert_eq!(
            (0..6).map(replicas_for).collect::<Vec<_>>(),
            [1, 1, 1, 3, 3, 3]
        );
    }
}
