//! A real `reef dev` or `reef server` process for tests: started with its
//! flags, what it prints read line by line, and stopped with SIGTERM, which
//! must end it cleanly.

use crate::reef::reef_bin;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// A running `reef dev` or `reef server`; killed on drop, with the
/// nats-server it runs (a failed test leaves nothing running).
pub struct ReefDev {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// The pid file of the nats-server it runs, killed on drop too.
    nats_pid_file: Option<std::path::PathBuf>,
    /// Every line of its stdout read so far.
    transcript: Vec<String>,
}

/// A dashboard address of its own (`--ui 127.0.0.1:PORT`) unless `args`
/// name one: processes started side by side must not all want 7480.
fn own_ui(args: &[&str]) -> Vec<String> {
    if args.contains(&"--ui") {
        return Vec::new();
    }
    vec![
        "--ui".into(),
        format!("127.0.0.1:{}", crate::wait::free_port()),
    ]
}

impl ReefDev {
    /// Starts `reef dev ARGS... --data-dir DIR`.
    pub fn start(args: &[&str], dir: &Path) -> Self {
        Self::start_with_stderr(args, dir, std::process::Stdio::null())
    }

    /// [`ReefDev::start`], its stderr written to `stderr`.
    pub fn start_with_stderr(args: &[&str], dir: &Path, stderr: std::process::Stdio) -> Self {
        let mut command = tokio::process::Command::new(reef_bin());
        command
            .arg("dev")
            .args(args)
            .args(own_ui(args))
            .arg("--data-dir")
            .arg(dir)
            .stderr(stderr);
        let mut dev = Self::spawn(command);
        dev.nats_pid_file = Some(dir.join("nats/nats-server.pid"));
        dev
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
            .args(own_ui(args))
            .arg("--data-dir")
            .arg(dir)
            .env_remove("REEF_NATS_URL")
            .env_remove("REEF_CREDS")
            .env_remove("REEF_NATS_CA")
            .stderr(log);
        let mut server = Self::spawn(command);
        server.nats_pid_file = Some(dir.join("nats/nats-server.pid"));
        server
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
        Self {
            child,
            lines,
            nats_pid_file: None,
            transcript: Vec::new(),
        }
    }

    /// What follows `prefix` on the next line (trimmed) that starts with it,
    /// within 60 s; the lines before it are dropped.
    pub async fn printed(&mut self, prefix: &str) -> String {
        self.try_printed(prefix, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`ReefDev::printed`] within `within`, or why not.
    pub async fn try_printed(&mut self, prefix: &str, within: Duration) -> Result<String, String> {
        let (lines, transcript) = (&mut self.lines, &mut self.transcript);
        tokio::time::timeout(within, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let rest = line.trim().strip_prefix(prefix).map(str::to_string);
                transcript.push(line);
                if rest.is_some() {
                    return rest;
                }
            }
            None
        })
        .await
        .map_err(|_| format!("reef did not print {prefix:?} within {within:?}"))?
        .ok_or_else(|| format!("reef ended without printing {prefix:?}"))
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, as a crash would end it; waits until it is gone. Its
    /// nats-server is left running, as such a crash leaves it.
    pub async fn kill(mut self) {
        self.nats_pid_file = None;
        self.child.kill().await.expect("kill");
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// SIGTERM, insisting that it exits 0 within 30 s, and every line it
    /// printed, from its first to its last.
    pub async fn finish(mut self) -> Vec<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("pid") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let (lines, transcript) = (&mut self.lines, &mut self.transcript);
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                transcript.push(line);
            }
        })
        .await
        .expect("reef ends its output within 30s");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("reef dev stops within 30s")
            .expect("wait");
        assert!(status.success(), "{status:?}");
        std::mem::take(&mut self.transcript)
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

impl Drop for ReefDev {
    fn drop(&mut self) {
        let Some(pid) = self
            .nats_pid_file
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| text.trim().parse::<i32>().ok())
        else {
            return;
        };
        let is_nats = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(11).any(|w| w == b"nats-server"));
        if is_nats {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
