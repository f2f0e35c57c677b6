//! A real `reef dev` or `reef server` process for tests: started with its
//! flags, what it prints read line by line, and stopped with SIGTERM, which
//! must end it cleanly.

use crate::reef::reef_bin;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// A running `reef dev` or `reef server`; killed on drop.
pub struct ReefDev {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ReefDev {
    /// Starts `reef dev ARGS... --data-dir DIR`.
    pub fn start(args: &[&str], dir: &Path) -> Self {
        let mut command = tokio::process::Command::new(reef_bin());
        command
            .arg("dev")
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .stderr(std::process::Stdio::null());
        Self::spawn(command)
    }

    /// Starts `reef server ARGS... --data-dir DIR`, its log in `DIR.log`.
    pub fn server(args: &[&str], dir: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))
            .expect("server log");
        let mut command = tokio::process::Command::new(reef_bin());
        command
            .arg("server")
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .env_remove("REEF_NATS_URL")
            .env_remove("REEF_CREDS")
            .env_remove("REEF_NATS_CA")
            .stderr(log);
        Self::spawn(command)
    }

    /// Starts `command` (its stdout is read here).
    pub fn spawn(mut command: tokio::process::Command) -> Self {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start reef");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, lines }
    }

    /// What follows `prefix` on the next line (trimmed) that starts with it,
    /// within 60 s; the lines before it are dropped.
    pub async fn printed(&mut self, prefix: &str) -> String {
        let lines = &mut self.lines;
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read reef's output") {
                if let Some(rest) = line.trim().strip_prefix(prefix) {
                    return Some(rest.to_string());
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("reef did not print {prefix:?} within 60s"))
        .unwrap_or_else(|| panic!("reef ended without printing {prefix:?}"))
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, as a crash or a power cut would end it; waits until it is gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// SIGTERM, then insists that it exits 0 within 30 s.
    pub async fn terminate(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("pid") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("reef dev stops within 30s")
            .expect("wait");
        assert!(status.success(), "{status:?}");
    }
}
