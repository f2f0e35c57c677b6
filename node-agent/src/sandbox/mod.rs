//! The sandbox every job and app instance runs in, and its resource limits.
//!
//! - `plan`: the bubblewrap arguments for one process (pure).
//! - `limits`: the cgroup files and values that enforce its limits (pure).
//! - `cgroup`: one control group per allocation under `reef/<node>`.
//! - `uids`: the unprivileged uids processes run as.
//! - `seccomp`: the default system call filter (pure).
//! - `helper`: `reef sandbox-exec`, which joins the group, stages the
//!   directories, drops to the uid and executes bubblewrap with the filter.
//!
//! With `--sandbox off` (dedicated nodes only, and said in `reef nodes`),
//! processes run as the agent's user without namespaces, but still in their
//! control groups with real limits where the host has them.

pub mod cgroup;
pub mod helper;
#[cfg(test)]
mod helper_tests;
pub mod limits;
#[cfg(test)]
mod limits_tests;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod seccomp;
#[cfg(test)]
mod seccomp_tests;
pub mod uids;
#[cfg(test)]
mod uids_tests;

use cgroup::{Cgroups, Group, Layout};
pub use limits::Limits;
use nix::sys::signal::Signal;
use plan::{HostLayout, Plan};
use reef_proto::alloc::Usage;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
pub use uids::UidRange;

/// Why a sandboxed process could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A file of the sandbox's could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every uid of the node's block is in use.
    #[error("no free uid for a sandboxed process in {first}-{last}")]
    NoUid { first: u32, last: u32 },
}

/// Why a sandboxed process did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Its group, uid or directories could not be set up.
    #[error("could not set up the sandbox")]
    Setup(#[source] SandboxError),
    /// The program could not be started.
    #[error("could not start {program}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// The owner's and operator's settings for the sandbox (`reef agent` flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--sandbox on|off`.
    pub enabled: bool,
    /// `--sandbox-uids FIRST-LAST` (None: the node's default block).
    pub uids: Option<UidRange>,
    /// `--sandbox-bind-ro PATH`: more of the host shown read-only.
    pub extra_readonly: Vec<PathBuf>,
    /// `--sandbox-bind PATH`: host directories every job and instance may
    /// write (shared by all of them: a scratch or dataset directory).
    pub extra_writable: Vec<PathBuf>,
    /// `--max-pids`: processes and threads per allocation.
    pub pids_max: u32,
    /// `--allow-network`: jobs on this (contributed) node may ask for the network.
    pub allow_network: bool,
    /// Where the GPU device nodes are (`/dev`).
    pub device_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            uids: None,
            extra_readonly: Vec::new(),
            extra_writable: Vec::new(),
            pids_max: 4096,
            allow_network: false,
            device_dir: PathBuf::from("/dev"),
        }
    }
}

/// Who a process runs as.
#[derive(Clone, Copy, Debug)]
pub enum Identity<'a> {
    /// A job: a uid of its own while it runs.
    Job,
    /// An app's instance or hook: the app's stable uid.
    App(&'a str),
}

/// One process to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// Its control group's name (unique on the node while it runs).
    pub group: String,
    pub identity: Identity<'a>,
    pub limits: Limits,
    pub argv: Vec<OsString>,
    pub workdir: PathBuf,
    /// Bound writable; those in `owned` are given to its uid first.
    pub writable: Vec<PathBuf>,
    pub owned: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub network: bool,
    pub gpus: &'a [u32],
    /// Host files bound read-only at another path in the sandbox.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// Whether the process reads a pipe its caller writes (else end of
    /// file at once).
    pub stdin: bool,
}

/// The node's sandbox.
pub struct Sandbox {
    settings: Settings,
    host: HostLayout,
    cgroups: Option<Cgroups>,
    uids: Arc<Mutex<Uids>>,
    bwrap: PathBuf,
    /// The reef binary, which is the helper (`/proc/self/exe`: the running
    /// one, even after an upgrade replaced the file).
    helper: PathBuf,
    /// Groups of processes running now, for `/metrics`.
    live: Mutex<BTreeMap<String, Group>>,
    /// Numbers each group's directory, so a group being removed never
    /// shares its directory with a new one of the same work.
    next_group: std::sync::atomic::AtomicU64,
    /// Removals of ended groups (waiting for their last processes to be
    /// reaped), off the path that reports the work's end.
    cleanup: tokio_util::task::TaskTracker,
}

use uids::Uids;

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("enabled", &self.settings.enabled)
            .field("cgroups", &self.cgroups.as_ref().map(|c| c.layout().name()))
            .finish()
    }
}

impl Sandbox {
    /// Sets up the node's sandbox: on, everything it needs must be there
    /// (the error says what is missing); off, processes still get control
    /// groups where the host has them.
    pub fn open(
        settings: Settings,
        node: reef_proto::NodeId,
        data_dir: &Path,
    ) -> Result<Self, String> {
        let range = settings
            .uids
            .unwrap_or_else(|| UidRange::for_node(node.0.as_bytes()));
        let uids =
            Uids::load(range, data_dir.join("sandbox-uids.json")).map_err(|e| e.to_string())?;
        let layout = Layout::detect();
        let bwrap = find_program("bwrap");
        if settings.enabled {
            let mut missing = Vec::new();
            let euid = nix::unistd::geteuid();
            if !euid.is_root() {
                missing.push(format!(
                    "the agent runs as uid {euid}, and only root can run work as other users"
                ));
            }
            if bwrap.is_none() {
                missing
                    .push("bubblewrap (bwrap) is not installed: apt-get install bubblewrap".into());
            }
            if let Err(e) = &layout {
                missing.push(e.clone());
            }
            if let Some(e) = user_namespaces_missing() {
                missing.push(e);
            }
            for path in settings
                .extra_readonly
                .iter()
                .chain(&settings.extra_writable)
            {
                if !path.is_absolute() || !path.exists() {
                    missing.push(format!(
                        "{} (--sandbox-bind) is not an existing absolute path",
                        path.display()
                    ));
                }
            }
            if !missing.is_empty() {
                return Err(missing.join("; "));
            }
        }
        let cgroups = match layout {
            Ok(layout) if nix::unistd::geteuid().is_root() => {
                Some(Cgroups::open(layout, &node.to_string()).map_err(|e| e.to_string())?)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(reason = %e, "no control groups: work runs without resource limits");
                None
            }
        };
        Ok(Self {
            host: HostLayout::read(),
            settings,
            cgroups,
            uids: Arc::new(Mutex::new(uids)),
            bwrap: bwrap.unwrap_or_else(|| PathBuf::from("bwrap")),
            helper: PathBuf::from("/proc/self/exe"),
            live: Mutex::new(BTreeMap::new()),
            next_group: Default::default(),
            cleanup: tokio_util::task::TaskTracker::new(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What the node runs work in, for logs and `reef nodes`.
    pub fn describe(&self) -> String {
        let limits = self
            .cgroups
            .as_ref()
            .map_or("no resource limits", |c| c.layout().name());
        match self.settings.enabled {
            true => format!(
                "bubblewrap, {limits}, uids {}-{}",
                self.uid_range().first,
                self.uid_range().last()
            ),
            false => format!("off, {limits}"),
        }
    }

    /// The stable uid that work run as [`Identity::App`]`(name)` gets.
    pub fn app_uid(&self, name: &str) -> Result<u32, SandboxError> {
        self.lock_uids().app(name)
    }

    pub fn uid_range(&self) -> UidRange {
        self.lock_uids().range()
    }

    fn lock_uids(&self) -> std::sync::MutexGuard<'_, Uids> {
        self.uids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Kills and removes what an earlier run of the agent left in control groups.
    pub async fn sweep(&self) {
        if let Some(cgroups) = &self.cgroups {
            let swept = cgroups.sweep().await;
            if swept > 0 {
                tracing::info!(
                    groups = swept,
                    "removed control groups left from before the restart"
                );
            }
        }
    }

    /// The command that starts `launch`, and the handle that stops it and
    /// reads what it used. The caller adds the environment and spawns it.
    pub async fn command(
        &self,
        launch: Launch<'_>,
    ) -> Result<(tokio::process::Command, Tree), SandboxError> {
        let number = self
            .next_group
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = match &self.cgroups {
            Some(cgroups) => Some(
                cgroups
                    .create(&format!("{}.{number}", launch.group), &launch.limits)
                    .await?,
            ),
            None => None,
        };
        let mut tree = Tree {
            group,
            name: launch.group.clone(),
            leader: None,
            wrapped: self.settings.enabled,
            lease: None,
            live: None,
        };
        let mut command = if self.settings.enabled {
            let uid = match launch.identity {
                Identity::Job => {
                    let uid = self.lock_uids().take_job()?;
                    tree.lease = Some((self.uids.clone(), uid));
                    uid
                }
                Identity::App(app) => self.lock_uids().app(app)?,
            };
            for dir in &launch.owned {
                give(dir, uid)?;
            }
            let mut readonly = launch.readonly.clone();
            readonly.extend(self.settings.extra_readonly.iter().cloned());
            let mut writable = self.settings.extra_writable.clone();
            writable.extend(launch.writable.iter().cloned());
            let plan = Plan {
                workdir: launch.workdir.clone(),
                writable,
                readonly,
                network: launch.network,
                devices: self.gpu_devices(launch.gpus),
                files: launch.files.clone(),
                argv: launch.argv.clone(),
            };
            let wrapped = plan::bwrap_args(&plan, &self.host);
            let mut argv = vec![self.bwrap.clone().into_os_string()];
            argv.extend(wrapped.args);
            let request = helper::Request {
                cgroups: tree
                    .group
                    .as_ref()
                    .map(Group::procs_files)
                    .unwrap_or_default(),
                stage: wrapped.stage,
                uid: Some((uid, uid)),
                seccomp: true,
                argv,
            };
            self.helper_command(&request, Path::new("/"))
        } else if let Some(group) = &tree.group {
            let request = helper::Request {
                cgroups: group.procs_files(),
                stage: Vec::new(),
                uid: None,
                seccomp: false,
                argv: launch.argv.clone(),
            };
            self.helper_command(&request, &launch.workdir)
        } else {
            let mut command = tokio::process::Command::new(&launch.argv[0]);
            command
                .args(&launch.argv[1..])
                .current_dir(&launch.workdir)
                .process_group(0);
            command
        };
        let stdin = match launch.stdin {
            true => std::process::Stdio::piped(),
            false => std::process::Stdio::null(),
        };
        command
            .env_clear()
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(false);
        if let Some(group) = &tree.group {
            self.live_groups().insert(tree.name.clone(), group.clone());
            tree.live = Some(());
        }
        Ok((command, tree))
    }

    /// Starts `launch` with environment `env`: its process, and the handle
    /// that stops it. A process that could not start leaves nothing behind.
    pub async fn spawn<K, V>(
        &self,
        launch: Launch<'_>,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(tokio::process::Child, Tree), SpawnError>
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let program = launch.argv[0].to_string_lossy().into_owned();
        let (mut command, mut tree) = self.command(launch).await.map_err(SpawnError::Setup)?;
        match command.envs(env).spawn() {
            Ok(child) => {
                if let Some(pid) = child.id() {
                    tree.started(pid);
                }
                Ok((child, tree))
            }
            Err(e) => {
                self.end(&mut tree).await;
                Err(SpawnError::Start { program, source: e })
            }
        }
    }

    fn helper_command(&self, request: &helper::Request, dir: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.helper);
        command
            .arg("sandbox-exec")
            .args(request.to_args())
            .current_dir(dir);
        command
    }

    fn gpu_devices(&self, gpus: &[u32]) -> Vec<(PathBuf, String)> {
        if gpus.is_empty() {
            return Vec::new();
        }
        let present: Vec<String> = std::fs::read_dir(&self.settings.device_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| name.starts_with("nvidia"))
                    .collect()
            })
            .unwrap_or_default();
        plan::gpu_devices(gpus, &present, &self.settings.device_dir)
    }

    fn live_groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Group>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (group name, CPU seconds, memory in use) of every group running now.
    pub fn live_usage(&self) -> Vec<(String, f64, Option<u64>)> {
        self.live_groups()
            .iter()
            .map(|(name, group)| {
                (
                    name.clone(),
                    group.usage().cpu_ms as f64 / 1000.0,
                    group.memory_now(),
                )
            })
            .collect()
    }

    /// Ends a process tree: SIGKILL to whatever is left, at once, and the
    /// usage read; the group is removed and the uid handed back once its
    /// last processes are reaped, off this path.
    pub async fn end(&self, tree: &mut Tree) -> Option<Usage> {
        tree.kill();
        let usage = tree.group.as_ref().map(Group::usage);
        if tree.live.take().is_some() {
            self.live_groups().remove(&tree.name);
        }
        let group = tree.group.take();
        let lease = tree.lease.take();
        if group.is_some() || lease.is_some() {
            self.cleanup.spawn(async move {
                if let Some(group) = group {
                    group.remove().await;
                }
                if let Some((uids, uid)) = lease {
                    uids.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .give_back(uid);
                }
            });
        }
        usage
    }

    /// Waits for the removals of ended groups (the caller bounds it).
    pub async fn close(&self) {
        self.cleanup.close();
        self.cleanup.wait().await;
    }

    /// Starts a sandboxed `true` once, so that a host where the sandbox
    /// cannot work is found at start-up rather than by the first job.
    pub async fn self_test(&self, dir: &Path) -> Result<(), String> {
        if !self.settings.enabled {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let launch = Launch {
            group: "self-test".into(),
            identity: Identity::Job,
            limits: Limits {
                memory_bytes: 64 << 20,
                cpu_max_millis: None,
                cpu_weight_millis: 100,
                pids_max: 16,
            },
            argv: vec!["true".into()],
            workdir: dir.to_path_buf(),
            writable: vec![dir.to_path_buf()],
            owned: vec![dir.to_path_buf()],
            readonly: Vec::new(),
            network: false,
            gpus: &[],
            files: Vec::new(),
            stdin: false,
        };
        let (mut command, mut tree) = self.command(launch).await.map_err(|e| e.to_string())?;
        command.env("PATH", "/usr/bin:/bin");
        let output = command.output().await;
        self.end(&mut tree).await;
        let _ = std::fs::remove_dir(dir);
        match output {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "a sandboxed test process failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("could not start the sandbox helper: {e}")),
        }
    }
}

/// A running process tree: its group, its leader's pid, its uid lease.
#[derive(Debug)]
pub struct Tree {
    group: Option<Group>,
    name: String,
    leader: Option<u32>,
    /// The leader is bubblewrap's monitor, which dies at once on SIGTERM
    /// and is left out of it: the job's processes get it instead.
    wrapped: bool,
    lease: Option<(Arc<Mutex<Uids>>, u32)>,
    live: Option<()>,
}

impl Tree {
    pub fn started(&mut self, pid: u32) {
        self.leader = Some(pid);
    }

    /// Stops the work: SIGTERM, then up to `grace` for `child` (the
    /// leader) to exit, then SIGKILL to everything left. The one place
    /// this sequence is written: jobs, instances and hooks all stop here.
    ///
    /// In a group, every process gets SIGTERM, and so does every process
    /// that appears in it during the grace period: a sandbox still setting
    /// up has only bubblewrap's processes (which ignore it), and the work's
    /// own process, forked a moment later, must get it too.
    pub async fn stop(&self, child: &mut tokio::process::Child, grace: std::time::Duration) {
        const RESCAN: std::time::Duration = std::time::Duration::from_millis(50);
        let deadline = tokio::time::Instant::now() + grace;
        let mut signalled = std::collections::BTreeSet::new();
        if let Some(leader) = self.leader.filter(|_| self.wrapped) {
            // bubblewrap's monitor would die of it at once, leaving the work behind.
            signalled.insert(leader);
        }
        if self.group.is_none() {
            if let Some(leader) = self.leader {
                crate::process::signal_group(leader, Signal::SIGTERM);
            }
        }
        loop {
            if let Some(group) = &self.group {
                for pid in group.pids() {
                    if signalled.insert(pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            Signal::SIGTERM,
                        );
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let wait = RESCAN.min(deadline - now);
            if tokio::time::timeout(wait, child.wait()).await.is_ok() {
                break;
            }
        }
        // Whatever is left (the leader past its grace, or what it left
        // behind in its group) ends now.
        self.kill();
        let _ = child.wait().await;
    }

    /// Sends `signal` to every process of the work but bubblewrap's
    /// monitor: a service's own way to stop (PostgreSQL's fast shutdown is
    /// SIGINT), before [`Tree::stop`] ends what is left.
    pub fn signal_work(&self, signal: Signal) {
        match &self.group {
            Some(group) => group.signal(signal, self.leader.filter(|_| self.wrapped)),
            None => {
                if let Some(leader) = self.leader {
                    crate::process::signal_group(leader, signal);
                }
            }
        }
    }

    /// SIGKILL to everything, at once (the group stays until [`Sandbox::end`]).
    pub fn kill(&self) {
        if let Some(leader) = self.leader {
            crate::process::signal_group(leader, Signal::SIGKILL);
        }
        if let Some(group) = &self.group {
            group.signal(Signal::SIGKILL, None);
        }
    }

    /// What the group used so far (None without control groups).
    pub fn usage(&self) -> Option<Usage> {
        self.group.as_ref().map(Group::usage)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some((uids, uid)) = self.lease.take() {
            uids.lock()
                .unwrap_or_else(|p| p.into_inner())
                .give_back(uid);
        }
    }
}

/// Gives `dir` (and, when it was someone else's, everything in it) to `uid`.
fn give(dir: &Path, uid: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Io {
            action: "giving to the sandbox",
            path,
            source,
        }
    };
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if meta.uid() == uid && meta.gid() == uid {
        return Ok(());
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(uid)).map_err(io(&path))?;
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io(&path))? {
                pending.push(entry.map_err(io(&path))?.path());
            }
        }
    }
    Ok(())
}

/// `name` on the agent's PATH (or in /usr/bin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// What stops unprivileged user namespaces on this kernel, if anything.
fn user_namespaces_missing() -> Option<String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user namespaces are disabled (user.max_user_namespaces = 0)".into());
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
                .into(),
        );
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
        && !Path::new("/etc/apparmor.d/bwrap-userns-restrict").exists()
        && !Path::new("/etc/apparmor.d/bwrap").exists()
    {
        return Some(
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns = 1) and has no profile for bwrap"
                .into(),
        );
    }
    None
}
