//! A small LAN of hosts for tests: each host a network namespace with one
//! veth link into a bridge, all on `10.201.<n>.0/24`, with the test's own
//! namespace on the bridge as `10.201.<n>.1` (so it reaches every host, and
//! every host reaches servers the test runs, such as pebble). Hosts reach
//! each other directly, their ports are their own (every host can listen on
//! 80 and 443), and a host can be killed outright (every process in its
//! namespace) or firewalled. Needs root, `ip` and `nsenter`; deleted on drop.

use std::process::Command;

/// The LAN: a bridge and its hosts.
pub struct Lan {
    bridge: String,
    /// The test's own address on the bridge.
    pub gateway: String,
    pub hosts: Vec<Host>,
}

/// One host of a [`Lan`].
pub struct Host {
    /// Its network namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// Its address on the LAN.
    pub ip: String,
    link: String,
}

fn ip(args: &[&str]) -> std::io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Lan {
    /// A LAN of `hosts` hosts; Err if this machine cannot make one.
    pub fn create(hosts: usize) -> std::io::Result<Lan> {
        let n = 100 + (std::process::id() as u16 % 100 + next() * 13) % 150;
        let bridge = format!("rb{n}");
        let gateway = format!("10.201.{n}.1");
        let _ = ip(&["link", "delete", &bridge]);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        let mut lan = Lan {
            bridge: bridge.clone(),
            gateway: gateway.clone(),
            hosts: Vec::new(),
        };
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..hosts {
            let netns = format!("reef-l{n}-{i}");
            let link = format!("rl{n}h{i}");
            let inner = format!("rl{n}n{i}");
            let address = format!("10.201.{n}.{}", 10 + i);
            let _ = ip(&["netns", "delete", &netns]);
            ip(&["netns", "add", &netns])?;
            lan.hosts.push(Host {
                netns: netns.clone(),
                ip: address.clone(),
                link: link.clone(),
            });
            ip(&["link", "add", &link, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &netns])?;
            ip(&["link", "set", &link, "master", &bridge])?;
            ip(&["link", "set", &link, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", netns.as_str(), "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["addr", "add", &format!("{address}/24"), "dev", &inner])?;
            inside(&["link", "set", &inner, "up"])?;
            inside(&["link", "set", "lo", "up"])?;
            inside(&["route", "add", "default", "via", &gateway])?;
        }
        Ok(lan)
    }
}

impl Host {
    /// A command that runs `program` in this host's network namespace. It
    /// enters the namespace with `nsenter`, which (unlike `ip netns exec`)
    /// keeps the machine's `/sys`, so control groups work inside.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(program);
        command
    }

    /// Kills every process in this host's namespace at once, as a power
    /// cut would; returns how many there were.
    pub fn kill_all(&self) -> usize {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .expect("ip netns pids");
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect();
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        pids.len()
    }

    /// Whether any process still runs in this host's namespace.
    pub fn anything_runs(&self) -> bool {
        Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|out| !String::from_utf8_lossy(&out.stdout).trim().is_empty())
            .unwrap_or(false)
    }

    /// Drops every TCP connection to `port` on this host from elsewhere
    /// (nftables in its namespace), as a cloud firewall would.
    pub fn block_tcp(&self, port: u16) {
        let rules = format!(
            "table inet reef_test {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  iifname != \"lo\" tcp dport {port} drop\n }}\n}}\n"
        );
        let status = Command::new("ip")
            .args(["netns", "exec", &self.netns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(rules.as_bytes())?;
                child.wait()
            })
            .expect("nft");
        assert!(status.success(), "nft refused the rule");
    }
}

/// A counter so two LANs of one test process get different numbers.
fn next() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            host.kill_all();
            let _ = ip(&["link", "delete", &host.link]);
            let _ = ip(&["netns", "delete", &host.netns]);
        }
        let _ = ip(&["link", "delete", &self.bridge]);
    }
}
