//! A real `reef dev` process for tests: started with its flags, what it
//! prints read line by line (so it never blocks on a full pipe), and
//! stopped with SIGTERM, which must end it cleanly.

use crate::reef::reef_bin;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// A running `reef dev`; killed on drop.
pub struct ReefDev {
    child: Child,
    lines: Option<Lines<BufReader<ChildStdout>>>,
}

impl ReefDev {
    /// Starts `reef dev ARGS... --data-dir DIR`.
    pub fn start(args: &[&str], dir: &Path) -> Self {
        let mut child = tokio::process::Command::new(reef_bin())
            .arg("dev")
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start reef dev");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            lines: Some(lines),
        }
    }

    /// What follows `prefix` on the first line (trimmed) that starts with it,
    /// within 60 s. Later lines are then read and dropped.
    pub async fn printed(&mut self, prefix: &str) -> String {
        let mut lines = self.lines.take().expect("printed is asked once");
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read reef dev") {
                if let Some(rest) = line.trim().strip_prefix(prefix) {
                    return Some(rest.to_string());
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("reef dev did not print {prefix:?} within 60s"))
        .unwrap_or_else(|| panic!("reef dev ended without printing {prefix:?}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        found
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
