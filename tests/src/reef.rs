//! Real `reef` processes: coordinators and agents started from the built
//! binary (killed with SIGKILL on drop), and CLI invocations with a deadline.

use crate::nats::NatsUrl;
use crate::wait::eventually;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `reef` binary: `REEF_BIN`, else `reef` beside the test executable's
/// `deps/` directory (`cargo build --bin reef` puts it there).
pub fn reef_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("REEF_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = dir.join("reef");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bin reef` before the tests (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A running `reef coordinator` or `reef agent`; SIGKILLed on drop.
pub struct ReefProcess {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    /// For agents: the port of the node proxy, on 127.0.0.1.
    pub http_port: Option<u16>,
    /// The network namespace the process runs in (None: the host's).
    pub netns: Option<String>,
    /// For agents: the port of the node proxy's HTTPS listener, on 127.0.0.1.
    pub https_port: Option<u16>,
    /// For agents: the port of `/metrics`, on 127.0.0.1.
    pub metrics_port: Option<u16>,
    /// For agents: the data dir, under which the apps it started keep theirs.
    data_dir: Option<PathBuf>,
    /// Log as the daemon does by default, not at the tests' debug level.
    default_logging: bool,
}

impl ReefProcess {
    fn spawn(args: Vec<String>, log: PathBuf) -> Self {
        let mut process = Self {
            child: None,
            args,
            env: Vec::new(),
            log,
            http_port: None,
            netns: None,
            https_port: None,
            metrics_port: None,
            data_dir: None,
            default_logging: false,
        };
        process.launch();
        process
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open process log");
        let mut command = match &self.netns {
            Some(netns) => {
                // Only the network namespace: `ip netns exec` would also
                // mount a sysfs of its own over /sys, hiding the control
                // groups the agent's sandbox needs.
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/var/run/netns/{netns}"))
                    .arg("--")
                    .arg(reef_bin());
                command
            }
            None => Command::new(reef_bin()),
        };
        command.args(&self.args);
        match self.default_logging {
            true => command.env_remove("REEF_LOG"),
            false => command.env(
                "REEF_LOG",
                "info,async_nats=warn,reef_coordinator=debug,reef_node_agent=debug",
            ),
        };
        let child = command
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start reef");
        self.child = Some(child);
    }

    /// Starts a coordinator against `nats` with extra flags, logging to `dir`
    /// and keeping its cluster key there. ACME is off unless `extra` has an
    /// `--acme...` flag, so no test talks to a public CA.
    pub fn coordinator(nats: &NatsUrl, dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec![
            "--nats".to_string(),
            nats.to_string(),
            "--creds".into(),
            nats.coordinator_creds().display().to_string(),
            "--nats-ca".into(),
            nats.ca().display().to_string(),
            "coordinator".into(),
            "--cluster-dir".into(),
            nats.trust().dir().display().to_string(),
            "--secrets-key".into(),
            dir.join("cluster.key").display().to_string(),
        ];
        if !extra.iter().any(|a| a.starts_with("--acme")) {
            args.extend(["--acme".into(), "off".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(format!("coordinator-{}.log", uuid::Uuid::now_v7()));
        Self::spawn(args, log)
    }

    /// Starts an agent named `name` with its data in `dir/name`, and its
    /// proxy (HTTP, HTTPS and the peer listener) and `/metrics` on free
    /// ports of 127.0.0.1.
    pub fn agent(nats: &NatsUrl, dir: &Path, name: &str, extra: &[&str]) -> Self {
        Self::agent_in(None, nats, dir, name, extra)
    }

    /// Starts an agent like [`ReefProcess::agent`] inside network namespace
    /// `netns` (None: the host's); its proxy is on the namespace's 127.0.0.1.
    pub fn agent_in(
        netns: Option<&str>,
        nats: &NatsUrl,
        dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> Self {
        let http_port = crate::wait::free_port();
        let https_port = crate::wait::free_port();
        let metrics_port = crate::wait::free_port();
        let creds = Self::node_creds(nats, dir, name, extra);
        let mut args = vec![
            "--nats".to_string(),
            nats.to_string(),
            "--creds".into(),
            creds.display().to_string(),
            "--nats-ca".into(),
            nats.ca().display().to_string(),
            "agent".into(),
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            dir.join(name).display().to_string(),
            "--stop-grace".into(),
            "2s".into(),
            "--http".into(),
            format!("127.0.0.1:{http_port}"),
            "--https".into(),
            format!("127.0.0.1:{https_port}"),
            "--metrics".into(),
            format!("127.0.0.1:{metrics_port}"),
        ];
        // A port handed out like the others: one the system picked for it
        // (port 0) could be one just handed to another agent.
        if !extra.contains(&"--peer") {
            let peer_port = crate::wait::free_port();
            args.extend(["--peer".into(), format!("127.0.0.1:{peer_port}")]);
        }
        // Jobs and test processes meet in one shared directory; the rest of
        // the test's directory (the agents' data among it) stays out of
        // every sandbox.
        if !extra.contains(&"--sandbox-bind") {
            args.extend([
                "--sandbox-bind".into(),
                shared_dir(dir).display().to_string(),
            ]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = Self {
            child: None,
            args,
            env: Vec::new(),
            log: dir.join(format!("agent-{name}.log")),
            http_port: Some(http_port),
            https_port: Some(https_port),
            metrics_port: Some(metrics_port),
            netns: netns.map(str::to_string),
            data_dir: Some(dir.join(name)),
            default_logging: false,
        };
        agent.launch();
        agent
    }

    /// The credential of the agent named `name` in `dir`: issued on its
    /// first start (with the trust class of a `--trust` in `extra`), reused
    /// when an agent of that name starts there again.
    pub fn node_creds(nats: &NatsUrl, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
        let path = dir.join("creds").join(format!("{name}.creds"));
        if !path.exists() {
            let trust = extra
                .iter()
                .position(|a| *a == "--trust")
                .and_then(|i| extra.get(i + 1))
                .copied()
                .unwrap_or("dedicated");
            std::fs::create_dir_all(path.parent().expect("parent")).expect("creds dir");
            std::fs::rename(nats.node_creds(trust), &path).expect("move node creds");
        }
        path
    }

    /// Starts an agent like [`ReefProcess::agent`], with extra environment
    /// variables (for example a PATH with a fake `nvidia-smi`).
    pub fn agent_with_env(
        nats: &NatsUrl,
        dir: &Path,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut agent = Self::agent(nats, dir, name, extra);
        agent.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        agent.restart();
        agent
    }

    /// For agents: its data directory.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns whether it exited 0.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = eventually(
            "process to exit after SIGTERM",
            Duration::from_secs(30),
            || {
                let status = child.try_wait().ok().flatten();
                async move { status }
            },
        )
        .await;
        status.success()
    }

    /// Starts the same process again (after `kill`).
    /// Starts it again logging as the daemon does by default (what
    /// benchmarks run), not at the tests' debug level.
    pub fn restart_with_default_logging(&mut self) {
        self.default_logging = true;
        self.restart();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// For agents: the pids of the app processes it started (and any left
    /// over from an earlier run of it), not counting the sandbox's own
    /// (bubblewrap's monitor and the namespace's init).
    pub fn app_pids(&self) -> Vec<i32> {
        self.data_dir
            .as_deref()
            .map(apps_under)
            .unwrap_or_default()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
                    !program.ends_with(b"bwrap")
                })
            })
            .collect()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ReefProcess {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.data_dir {
            kill_apps_under(dir);
        }
    }
}

/// Kills every process whose `REEF_DATA_DIR` lies under `dir`: the app
/// instances an agent started there. They run in process groups of their
/// own so that they outlive an agent restart, and so outlive the agent a
/// test ends with; left running, they would hold ports and memory for the
/// rest of the suite.
fn kill_apps_under(dir: &Path) {
    for pid in apps_under(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The pids of every process whose `REEF_DATA_DIR` (an app's) or `HOME` (a
/// job's working directory) lies under `dir`.
pub fn apps_under(dir: &Path) -> Vec<i32> {
    let mut prefix = format!("REEF_DATA_DIR={}", dir.display()).into_bytes();
    prefix.push(b'/');
    let mut home = format!("HOME={}", dir.display()).into_bytes();
    home.push(b'/');
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Processes come and go meanwhile: one that cannot be read is skipped.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|byte| *byte == 0)
            .any(|var| var.starts_with(&prefix) || var.starts_with(&home))
        {
            pids.push(pid);
        }
    }
    pids
}

/// What a CLI invocation printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// What it printed as JSON, if it exited 0 and printed JSON.
    pub fn json_opt(&self) -> Option<serde_json::Value> {
        if self.code != Some(0) {
            return None;
        }
        serde_json::from_str(&self.stdout).ok()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The `reef` CLI pointed at one cluster, with one credential.
#[derive(Clone)]
pub struct Cli {
    pub nats: String,
    pub creds: PathBuf,
    pub ca: PathBuf,
}

impl Cli {
    /// The CLI as the cluster's admin.
    pub fn new(nats: &NatsUrl) -> Self {
        Self::with_creds(nats, &nats.admin_creds(), &nats.ca())
    }

    /// The CLI at `nats` with the credential `creds`, trusting `ca`.
    pub fn with_creds(nats: &str, creds: &Path, ca: &Path) -> Self {
        Self {
            nats: nats.to_string(),
            creds: creds.to_path_buf(),
            ca: ca.to_path_buf(),
        }
    }

    /// The CLI with a new credential for user `name` with `role` at `nats`.
    pub fn user(nats: &NatsUrl, role: &str, name: &str) -> Self {
        Self::with_creds(nats, &nats.user_creds(role, name), &nats.ca())
    }

    /// The CLI for a `reef dev` cluster at `nats` with its data in `dir`.
    pub fn for_dev(nats: &str, dir: &Path) -> Self {
        Self::with_creds(nats, &dir.join("admin.creds"), &dir.join("tls/ca.pem"))
    }

    /// `reef --nats URL --creds FILE --nats-ca FILE`, without the user's
    /// own environment's settings.
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(reef_bin());
        command
            .arg("--nats")
            .arg(&self.nats)
            .arg("--creds")
            .arg(&self.creds)
            .arg("--nats-ca")
            .arg(&self.ca)
            .env_remove("REEF_NATS_URL")
            .env_remove("REEF_CREDS")
            .env_remove("REEF_NATS_CA");
        command
    }

    /// Runs `reef --nats URL ARGS...` with `input` on its standard input.
    pub async fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> CliOutput {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run reef");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).await.expect("write stdin");
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("reef finished in time")
            .expect("reef output");
        CliOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `reef --nats URL ARGS...`, killing it after `timeout`.
    pub async fn run_with_timeout(&self, args: &[&str], timeout: Duration) -> CliOutput {
        let mut command = self.command();
        command.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let Ok(output) = tokio::time::timeout(timeout, command.output()).await else {
            return CliOutput {
                code: None,
                stdout: String::new(),
                stderr: format!(
                    "`reef {}` did not finish within {timeout:?}",
                    args.join(" ")
                ),
            };
        };
        let output = output.expect("run reef");
        CliOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> CliOutput {
        self.run_with_timeout(args, Duration::from_secs(60)).await
    }

    /// Runs and insists on exit code 0.
    pub async fn ok(&self, args: &[&str]) -> CliOutput {
        let out = self.run(args).await;
        assert_eq!(
            out.code,
            Some(0),
            "`reef {}` failed: {out:?}",
            args.join(" ")
        );
        out
    }

    /// `reef run --detach -- COMMAND...`; returns the job id.
    pub async fn submit(&self, command: &[&str]) -> String {
        let mut args = vec!["run", "--detach", "--"];
        args.extend_from_slice(command);
        self.ok(&args).await.stdout.trim().to_string()
    }

    /// `reef nodes --json`.
    pub async fn nodes(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["nodes", "--json"]).await;
        if out.code != Some(0) {
            return Vec::new();
        }
        out.json().as_array().cloned().unwrap_or_default()
    }

    /// Waits until `n` nodes are registered and ready.
    pub async fn wait_for_nodes(&self, n: usize) -> Vec<serde_json::Value> {
        eventually(
            &format!("{n} ready nodes"),
            Duration::from_secs(30),
            || async {
                let nodes = self.nodes().await;
                let ready = nodes.iter().filter(|n| n["state"] == "ready").count();
                (ready == n).then_some(nodes)
            },
        )
        .await
    }

    /// `reef job status ID --json`.
    pub async fn job(&self, id: &str) -> serde_json::Value {
        self.ok(&["job", "status", id, "--json"]).await.json()
    }

    /// Waits until job `id` is in a terminal state and returns it. Failed
    /// calls count as "not yet" (a coordinator may be reconnecting).
    pub async fn wait_for_end(&self, id: &str, timeout: Duration) -> serde_json::Value {
        eventually(&format!("job {id} to end"), timeout, || async {
            let out = self.run(&["job", "status", id, "--json"]).await;
            if out.code != Some(0) {
                return None;
            }
            let job = out.json();
            matches!(
                job["state"].as_str(),
                Some("exited" | "stopped" | "failed" | "lost")
            )
            .then_some(job)
        })
        .await
    }
}

/// `dir/shared`, writable by every uid: the directory a test's agents let
/// their sandboxed jobs and apps write (`--sandbox-bind`), for the files
/// tests and jobs exchange.
pub fn shared_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let shared = dir.join("shared");
    if !shared.is_dir() {
        std::fs::create_dir_all(&shared).expect("shared dir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777))
            .expect("chmod shared dir");
    }
    shared
}

/// `name` in [`shared_dir`], created empty and writable by every uid: jobs
/// run as uids of their own, and several may append to it.
pub fn shared_file(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = shared_dir(dir).join(name);
    std::fs::write(&path, "").expect("shared file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    path
}
