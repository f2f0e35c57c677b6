//! The servers under test as child processes, each on its own free loopback
//! port: the backend and the reef proxy (this binary in a server role), nginx
//! and Caddy (generated configs, every file they write inside the bench's temp
//! dir). A server is stopped when its [`Server`] is dropped, panics included:
//! SIGTERM, a bounded wait, then SIGKILL for it and its worker processes.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::roles::{Role, PEER_DIR_VAR, PORT_VAR, ROLE_VAR, UPSTREAM_VAR};
use crate::{configs, cpu, BODY, HOST};

/// How long a server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How often readiness is probed until then.
const READY_POLL: Duration = Duration::from_millis(20);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server under test.
pub(crate) struct Server {
    name: &'static str,
    port: u16,
    /// Where it speaks HTTP/2 with prior knowledge, when not on `port`.
    h2_port: Option<u16>,
    child: Child,
    /// Its stdout and stderr, and its own log where it keeps one.
    logs: Vec<PathBuf>,
}

impl Server {
    /// The backend every target ends at.
    pub(crate) fn backend(dir: &Path) -> anyhow::Result<Self> {
        Self::own_role(dir, Role::Backend, None)
    }

    /// The reef proxy, forwarding [`HOST`] to `127.0.0.1:upstream`.
    pub(crate) fn reef(dir: &Path, upstream: u16) -> anyhow::Result<Self> {
        Self::own_role(dir, Role::Reef, Some(upstream))
    }

    /// The reef proxy with a runtime per core (see `roles`).
    pub(crate) fn reef_per_core(dir: &Path, upstream: u16) -> anyhow::Result<Self> {
        Self::own_role(dir, Role::ReefPerCore, Some(upstream))
    }

    /// A node of a forwarded request: `peer` (the peer listener, serving
    /// from `upstream`) or the edge (forwarding everything to the peer
    /// listener on `upstream`), over mutual TLS with the certificates in
    /// `tls` when given. The edge is ready once it answers through the peer.
    pub(crate) fn reef_node(
        dir: &Path,
        role: Role,
        upstream: u16,
        tls: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut command = Self::own_command(role, Some(upstream))?;
        if let Some(tls) = tls {
            command.env(PEER_DIR_VAR, tls);
        }
        let name = role.as_str();
        let port = free_port()?;
        command.env(PORT_VAR, port.to_string());
        let log = dir.join(format!("{name}.log"));
        match role {
            Role::PeerPlain | Role::PeerTls => Self::spawn(name, command, port, log, vec![], false),
            _ => Self::start(name, command, port, log, vec![]),
        }
    }

    fn own_role(dir: &Path, role: Role, upstream: Option<u16>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = Self::own_command(role, upstream)?;
        command.env(PORT_VAR, port.to_string());
        let name = role.as_str();
        Self::start(name, command, port, dir.join(format!("{name}.log")), vec![])
    }

    /// This binary, to be started again as `role`.
    fn own_command(role: Role, upstream: Option<u16>) -> anyhow::Result<Command> {
        let mut command = Command::new(std::env::current_exe().context("find the bench binary")?);
        command.env(ROLE_VAR, role.as_str());
        if let Some(upstream) = upstream {
            command.env(UPSTREAM_VAR, format!("127.0.0.1:{upstream}"));
        }
        Ok(command)
    }

    /// nginx, `worker_processes` one per core, keep-alive upstream.
    pub(crate) fn nginx(dir: &Path, upstream: u16) -> anyhow::Result<Self> {
        Self::nginx_named(dir, "nginx", upstream)
    }

    /// [`Server::nginx`] named `name`, its files in `dir/name`.
    pub(crate) fn nginx_named(
        dir: &Path,
        name: &'static str,
        upstream: u16,
    ) -> anyhow::Result<Self> {
        let prefix = dir.join(name);
        std::fs::create_dir_all(&prefix).context("create nginx's dir")?;
        let port = free_port()?;
        let h2_port = free_port()?;
        let conf = prefix.join("nginx.conf");
        let error_log = prefix.join("error.log");
        std::fs::write(&conf, configs::nginx(&prefix, port, h2_port, upstream)?)
            .context("write nginx.conf")?;
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log);
        let mut server = Self::start(
            name,
            command,
            port,
            dir.join(format!("{name}.out")),
            vec![error_log],
        )?;
        server.h2_port = Some(h2_port);
        Ok(server)
    }

    /// Caddy with `reverse_proxy`, admin API off, HOME and XDG dirs in `dir`.
    pub(crate) fn caddy(dir: &Path, upstream: u16) -> anyhow::Result<Self> {
        let home = dir.join("caddy");
        for sub in ["config", "data"] {
            std::fs::create_dir_all(home.join(sub)).context("create caddy's dirs")?;
        }
        let port = free_port()?;
        let caddyfile = home.join("Caddyfile");
        std::fs::write(&caddyfile, configs::caddy(&home, port, upstream))
            .context("write the Caddyfile")?;
        let mut command = Command::new("caddy");
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"));
        Self::start("caddy", command, port, dir.join("caddy.out"), vec![])
    }

    /// Spawns `command` with its output in `out`, and waits until it answers on `port`.
    fn start(
        name: &'static str,
        command: Command,
        port: u16,
        out: PathBuf,
        more_logs: Vec<PathBuf>,
    ) -> anyhow::Result<Self> {
        Self::spawn(name, command, port, out, more_logs, true)
    }

    /// Spawns `command` with its output in `out`, and waits until it
    /// answers on `port` (`http`), or only accepts connections there.
    fn spawn(
        name: &'static str,
        mut command: Command,
        port: u16,
        out: PathBuf,
        more_logs: Vec<PathBuf>,
        http: bool,
    ) -> anyhow::Result<Self> {
        let file = File::create(&out).with_context(|| format!("create {}", out.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("log file")?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let mut logs = vec![out];
        logs.extend(more_logs);
        let mut server = Self {
            name,
            port,
            h2_port: None,
            child,
            logs,
        };
        server.wait_ready(http)?;
        Ok(server)
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Where it speaks HTTP/2 with prior knowledge (reef: its one port).
    pub(crate) fn h2_port(&self) -> u16 {
        self.h2_port.unwrap_or(self.port)
    }

    /// CPU time this server's processes have used so far.
    pub(crate) fn cpu(&self) -> Option<Duration> {
        cpu::process_tree(self.child.id())
    }

    /// Polls the server with a real request (or, without `http`, a
    /// connection) until it answers 200 with the backend's body, it exits, or
    /// [`READY_TIMEOUT`] passes.
    fn wait_ready(&mut self, http: bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("check the child")? {
                anyhow::bail!(
                    "{} exited ({status}) before answering:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let ready = match http {
                true => answers(self.port),
                false => accepts(self.port),
            };
            if ready {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not answer on 127.0.0.1:{} within {READY_TIMEOUT:?}:\n{}",
                self.name,
                self.port,
                self.log_tail()
            );
            std::thread::sleep(READY_POLL);
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        for log in &self.logs {
            if let Ok(mut file) = File::open(log) {
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Prints what the server logged as a warning or an error during the run.
    pub(crate) fn print_log_warnings(&self) {
        let text = self.log_text();
        let noteworthy = ["warn", "WARN", "error", "ERROR", "emerg", "crit", "alert"];
        for line in text
            .lines()
            .filter(|l| noteworthy.iter().any(|w| l.contains(w)))
        {
            println!("{} log: {line}", self.name);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let tree = cpu::tree(self.child.id());
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Workers that outlived their master (nginx's do when it is killed).
        for pid in tree.iter().rev().filter_map(|&p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a server on `port` answers a request for [`HOST`] with the backend's body.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(1));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_end(&mut response).is_ok()
        && response.starts_with(b"HTTP/1.1 200")
        && response.ends_with(BODY)
}

/// Whether something accepts connections on `port`.
fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// A free TCP port on 127.0.0.1 (the OS picks it; it is free until someone binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("find a free port")?;
    Ok(listener.local_addr().context("find a free port")?.port())
}

/// Whether `tool` is an executable file on PATH.
pub(crate) fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// `tool`'s version as it prints it (first line), or `?`.
pub(crate) fn version(tool: &str, args: &[&str]) -> String {
    let Ok(output) = Command::new(tool).args(args).output() else {
        return "?".to_owned();
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let line = text.lines().next().unwrap_or("?");
    let line = line.strip_prefix("nginx version: ").unwrap_or(line);
    line.split_whitespace().next().unwrap_or("?").to_owned()
}
