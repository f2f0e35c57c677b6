//! Answering `reef doctor`: on `reef.doctor.<this node>`, the node reports
//! its clock, version, free disk, sandbox and public listeners, and tries
//! the addresses it was asked to (the other nodes' ports 80 and 443), each
//! with a short deadline and all at once. Requests are answered one at a
//! time; a malformed one is counted and dropped.

use crate::Agent;
use futures::StreamExt as _;
use reef_proto::doctor::{DoctorReport, DoctorRequest, Probe, MAX_PROBES};
use reef_proto::{decode, encode, subjects};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one connection attempt may take.
const PROBE_WITHIN: Duration = Duration::from_secs(2);

/// Where clients reach this node's proxy.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Public {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

impl Public {
    /// The listeners' addresses as other machines reach them: a wildcard
    /// listener is reached at the node's advertised address.
    pub(crate) fn of(
        http: Option<SocketAddr>,
        https: Option<SocketAddr>,
        advertised: Option<std::net::IpAddr>,
    ) -> Public {
        let reachable = |addr: SocketAddr| match (addr.ip().is_unspecified(), advertised) {
            (true, Some(ip)) => Some(SocketAddr::new(ip, addr.port())),
            (true, None) => None,
            (false, _) => Some(addr),
        };
        Public {
            http: http.and_then(reachable),
            https: https.and_then(reachable),
        }
    }
}

impl Agent {
    /// Subscribes to `subject`, where `what` requests come, trying again
    /// until it works; None at shutdown.
    pub(crate) async fn listen(
        &self,
        subject: String,
        what: &str,
    ) -> Option<async_nats::Subscriber> {
        loop {
            match self.client.subscribe(subject.clone()).await {
                Ok(requests) => return Some(requests),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {what} requests yet");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
    }

    /// The next request on `requests`; None at shutdown or when they end.
    pub(crate) async fn next_request(
        &self,
        requests: &mut async_nats::Subscriber,
    ) -> Option<async_nats::Message> {
        tokio::select! {
            _ = self.shutdown.cancelled() => None,
            message = requests.next() => message,
        }
    }

    /// Answers doctor requests until shutdown.
    pub(crate) async fn answer_doctor(self: Arc<Self>) {
        let Some(mut requests) = self.listen(subjects::doctor(self.node), "doctor").await else {
            return;
        };
        while let Some(message) = self.next_request(&mut requests).await {
            let Some(reply) = message.reply else { continue };
            let request = match decode::<DoctorRequest>(&message.payload) {
                Ok(request) if request.probe.len() <= MAX_PROBES => request,
                _ => {
                    self.malformed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
            };
            let report = self.doctor_report(&request.probe).await;
            match encode(&report) {
                Ok(bytes) => {
                    if let Err(e) = self.client.publish(reply, bytes).await {
                        tracing::debug!(error = %e, "a doctor report was not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "a doctor report could not be encoded"),
            }
        }
    }

    async fn doctor_report(&self, probe: &[SocketAddr]) -> DoctorReport {
        let probes = futures::future::join_all(probe.iter().copied().map(try_connect)).await;
        let (free, total) = disk(&self.config.data_dir);
        DoctorReport {
            node: self.node,
            version: env!("CARGO_PKG_VERSION").to_string(),
            now_ms: reef_proto::now_ms(),
            http: self.public.http,
            https: self.public.https,
            data_dir: self.config.data_dir.display().to_string(),
            disk_free_bytes: free,
            disk_total_bytes: total,
            sandboxed: self.sandbox.enabled(),
            sandbox: self.sandbox.describe(),
            probes,
        }
    }
}

/// One TCP connection to `addr`, within [`PROBE_WITHIN`].
async fn try_connect(addr: SocketAddr) -> Probe {
    let started = Instant::now();
    let error = match tokio::time::timeout(PROBE_WITHIN, tokio::net::TcpStream::connect(addr)).await
    {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "no answer within {}s (a firewall dropping it?)",
            PROBE_WITHIN.as_secs()
        )),
    };
    Probe {
        addr,
        error,
        millis: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
    }
}

/// Free and total bytes of the file system holding `dir`.
fn disk(dir: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => {
            let unit = stat.fragment_size();
            (
                stat.blocks_available().saturating_mul(unit),
                stat.blocks().saturating_mul(unit),
            )
        }
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::Public;

    #[test]
    fn a_wildcard_listener_is_reached_at_the_advertised_address() {
        let wild = Some("0.0.0.0:80".parse().expect("addr"));
        let bound = Some("10.0.0.5:443".parse().expect("addr"));
        let public = Public::of(wild, bound, Some("203.0.113.7".parse().expect("ip")));
        assert_eq!(public.http, Some("203.0.113.7:80".parse().expect("addr")));
        assert_eq!(public.https, bound);
        let unknown = Public::of(wild, None, None);
        assert_eq!(unknown.http, None);
        assert_eq!(unknown.https, None);
    }
}
