//! A network namespace joined to the host by one veth link, so a test can cut
//! a node off the network (link down) and heal it again. Needs root and `ip`.

use std::process::Command;

/// A namespace `reef-<n>` with `10.200.<n>.2/30` inside and `10.200.<n>.1/30`
/// on the host end; deleted (with its link) on drop.
pub struct Netns {
    pub name: String,
    host_if: String,
    /// The host end's address: what processes inside reach the host by.
    pub host_ip: String,
    /// The namespace's address.
    pub ns_ip: String,
}

fn ip(args: &[&str]) -> std::io::Result<()> {
    let status = Command::new("ip").args(args).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip {} failed: {status}",
            args.join(" ")
        )))
    }
}

impl Netns {
    /// Creates the namespace; Err if this machine cannot (not root, no `ip`).
    pub fn create() -> std::io::Result<Self> {
        // A subnet number no other test of this run uses.
        let n = (std::process::id() as u16 % 200) + 20 + next() * 7 % 30;
        let name = format!("reef-{n}");
        let host_if = format!("rv{n}h");
        let ns_if = format!("rv{n}n");
        let host_ip = format!("10.200.{n}.1");
        let ns_ip = format!("10.200.{n}.2");
        // Leftovers of a crashed earlier run with the same number.
        let _ = ip(&["netns", "delete", &name]);
        let _ = ip(&["link", "delete", &host_if]);
        ip(&["netns", "add", &name])?;
        let netns = Self {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        inside(&["link", "set", &ns_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// Takes the link down: nothing passes between the namespace and the host.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).expect("link down");
    }

    /// Brings the link back up.
    pub fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]).expect("link up");
    }

    /// Runs `program args` inside the namespace and returns its stdout (None if it failed).
    pub fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A counter so two namespaces of one test process get different numbers.
fn next() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "delete", &self.host_if]);
        let _ = ip(&["netns", "delete", &self.name]);
    }
}
