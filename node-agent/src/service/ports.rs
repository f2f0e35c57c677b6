//! Ports for app instances, taken without the bind-release-reuse race.
//!
//! An app binds its `PORT` itself, so the agent cannot hold the socket for
//! it: it asks the kernel for a free port, lets it go, and hands the number
//! to the app. Two things could take the port in between:
//!
//! - another instance on this node: the kernel may offer a port it just
//!   gave back. The agent keeps every port it handed out in [`Ports`] for
//!   as long as the instance lives (restarts keep theirs), and never hands
//!   one of them out again;
//! - a process outside reef. The rule ([`retry_on_taken_port`]): when an
//!   instance's process exits and its port is then found taken by someone
//!   else, it starts again at once on a fresh port, at most
//!   [`PORT_RETRIES`] times in its life, and this does not count as a
//!   crash.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};

/// How many times an instance moves to a fresh port because another
/// process took its own.
pub(crate) const PORT_RETRIES: u32 = 3;
/// How many ports the kernel offers before the agent gives up finding one
/// no live instance holds.
const TRIES: usize = 64;

/// The ports handed to live instances.
#[derive(Clone, Default)]
pub(crate) struct Ports {
    held: Arc<Mutex<BTreeSet<u16>>>,
}

/// A port handed to one instance; given back when dropped.
pub(crate) struct PortLease {
    port: u16,
    held: Arc<Mutex<BTreeSet<u16>>>,
}

impl PortLease {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.port);
    }
}

impl Ports {
    /// A port the kernel says is free and no live instance here holds.
    pub(crate) fn take(&self) -> std::io::Result<PortLease> {
        for _ in 0..TRIES {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if held.insert(port) {
                return Ok(PortLease {
                    port,
                    held: self.held.clone(),
                });
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "every free port the kernel offered is held by another instance",
        ))
    }
}

/// Whether something else listens on `port` of the loopback now.
pub(crate) fn taken(port: u16) -> bool {
    matches!(
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    )
}

/// Whether an instance whose process exited, having moved `moved` times
/// already, starts again on a fresh port: only when its port is taken by
/// another process, and at most [`PORT_RETRIES`] times.
pub(crate) fn retry_on_taken_port(port_taken: bool, moved: u32) -> bool {
    port_taken && moved < PORT_RETRIES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_live_instances_get_the_same_port_and_a_port_comes_back_when_let_go() {
        let ports = Ports::default();
        let leases: Vec<PortLease> = (0..50).map(|_| ports.take().expect("a port")).collect();
        let distinct: BTreeSet<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(distinct.len(), 50);
        let first = leases[0].port();
        drop(leases);
        assert!(
            ports.held.lock().expect("lock").is_empty(),
            "{first} and the rest given back"
        );
    }

    #[test]
    fn a_port_another_process_listens_on_is_taken() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(taken(port));
        drop(listener);
        assert!(!taken(port));
    }

    #[test]
    fn a_taken_port_moves_the_instance_a_few_times_only() {
        assert!(retry_on_taken_port(true, 0));
        assert!(retry_on_taken_port(true, PORT_RETRIES - 1));
        assert!(!retry_on_taken_port(true, PORT_RETRIES));
        assert!(!retry_on_taken_port(false, 0), "a plain crash is a crash");
    }
}
