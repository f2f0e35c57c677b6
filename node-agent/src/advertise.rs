//! The address other nodes use to reach this node's peer listener,
//! registered with the node so the routes can name it.
//!
//! In order: the IP given with `--advertise`; the IP the peer listener is
//! bound to, unless it is a wildcard (`0.0.0.0`, `::`); else the local IP of
//! the interface this machine uses to reach the NATS server, found by
//! connecting a UDP socket toward it (which sends nothing). The port is
//! always the listener's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where other nodes reach the peer listener bound at `listening` (None:
/// no listener, or no address could be found, which is logged).
pub(crate) async fn for_listener(
    listening: Option<SocketAddr>,
    config: &crate::Config,
) -> Option<SocketAddr> {
    let listening = listening?;
    let addr = proxy_address(listening, config.advertise, &config.nats_servers).await;
    if addr.is_none() {
        tracing::warn!(
            "no address to advertise for the node-to-node listener (use --advertise): other nodes will not forward here"
        );
    }
    addr
}

/// Where other nodes reach a proxy listening on `listening`.
pub async fn proxy_address(
    listening: SocketAddr,
    advertise: Option<IpAddr>,
    nats_servers: &[String],
) -> Option<SocketAddr> {
    let ip = match advertise {
        Some(ip) => Some(ip),
        None if !listening.ip().is_unspecified() => Some(listening.ip()),
        None => route_toward(nats_servers).await,
    }?;
    Some(SocketAddr::new(ip, listening.port()))
}

/// The local IP of the route toward the first NATS server that resolves.
async fn route_toward(nats_servers: &[String]) -> Option<IpAddr> {
    for server in nats_servers {
        let Some(host_port) = host_port(server) else {
            continue;
        };
        let Ok(addrs) = tokio::net::lookup_host(host_port.as_str()).await else {
            continue;
        };
        for addr in addrs {
            if let Some(ip) = local_ip_toward(addr) {
                return Some(ip);
            }
        }
    }
    None
}

/// The local address the kernel would send from to reach `peer`.
fn local_ip_toward(peer: SocketAddr) -> Option<IpAddr> {
    let any = match peer {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect(peer).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// `HOST:PORT` of a NATS server URL (`nats://user:pass@host:4222`,
/// `tls://host`, `host:4222`), with the default port 4222.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.trim().split_once("://").map_or(url.trim(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(v6) => v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':')),
        None => authority.matches(':').count() == 1,
    };
    Some(if has_port {
        authority.to_string()
    } else if authority.contains(':') && !authority.starts_with('[') {
        format!("[{authority}]:4222")
    } else {
        format!("{authority}:4222")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_give_host_and_port() {
        assert_eq!(
            host_port("nats://10.0.0.5:4222").as_deref(),
            Some("10.0.0.5:4222")
        );
        assert_eq!(
            host_port("nats://u:p@nats.lan").as_deref(),
            Some("nats.lan:4222")
        );
        assert_eq!(host_port("tls://h:7422/").as_deref(), Some("h:7422"));
        assert_eq!(
            host_port("127.0.0.1:4333").as_deref(),
            Some("127.0.0.1:4333")
        );
        assert_eq!(
            host_port("nats://[fd00::1]:4222").as_deref(),
            Some("[fd00::1]:4222")
        );
        assert_eq!(
            host_port("nats://[fd00::1]").as_deref(),
            Some("[fd00::1]:4222")
        );
        assert_eq!(host_port("nats://"), None);
    }

    #[tokio::test]
    async fn an_explicit_or_bound_address_wins() {
        let bound: SocketAddr = "192.0.2.7:8080".parse().expect("addr");
        assert_eq!(proxy_address(bound, None, &[]).await, Some(bound));
        let explicit: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(
            proxy_address(bound, Some(explicit), &[]).await,
            Some(SocketAddr::new(explicit, 8080))
        );
    }

    #[tokio::test]
    async fn a_wildcard_listener_advertises_the_route_toward_nats() {
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let found = proxy_address(wildcard, None, &["nats://127.0.0.1:4222".into()]).await;
        assert_eq!(found, Some("127.0.0.1:8080".parse().expect("addr")));
        assert_eq!(proxy_address(wildcard, None, &[]).await, None);
    }
}
