//! The sandbox a process runs in, as bubblewrap arguments: a pure function of
//! what the process needs and what the host looks like, so every rule here is
//! tested without starting anything.
//!
//! The process gets new user, mount, pid, ipc, uts and cgroup namespaces (and
//! a network namespace of its own, empty but for loopback, unless it may use
//! the network); no capabilities and `no_new_privs` (bubblewrap always sets
//! it); no way to make further user namespaces; a root that holds only the
//! system read-only (`/usr`, the `/lib*` and `/bin` links or directories, a
//! short list under `/etc`), a fresh `/proc` of its own pid namespace, a
//! minimal `/dev` (plus the GPU devices it was given), a private `/tmp`, and
//! the directories of its own: writable (its working or data directory) or
//! read-only (an app's release).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Top-level system paths a sandbox shows read-only, when the host has them.
pub const SYSTEM_PATHS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What of `/etc` a sandbox shows: name resolution, users, TLS roots, the
/// dynamic linker's cache, time zones, and Debian's alternatives (which many
/// commands in `/usr/bin` point through). Never the rest: `/etc` holds the
/// node's own configuration and credentials.
pub const ETC_PATHS: &[&str] = &[
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/debian_version",
    "/etc/gai.conf",
    "/etc/group",
    "/etc/host.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/os-release",
    "/etc/passwd",
    "/etc/protocols",
    "/etc/resolv.conf",
    "/etc/services",
    "/etc/ssl",
    "/etc/timezone",
];

/// How a system path looks on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPath {
    /// A directory or file: bound read-only.
    Present(PathBuf),
    /// A symbolic link (merged `/usr`: `/bin -> usr/bin`): recreated as the same link.
    Link { path: PathBuf, target: PathBuf },
}

/// The system paths the host has, read once when the agent starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostLayout {
    pub paths: Vec<HostPath>,
}

impl HostLayout {
    /// Reads which of [`SYSTEM_PATHS`] and [`ETC_PATHS`] exist, and how.
    pub fn read() -> Self {
        let wanted = SYSTEM_PATHS.iter().chain(ETC_PATHS).map(PathBuf::from);
        let paths = wanted
            .filter_map(|path| match std::fs::symlink_metadata(&path) {
                Ok(meta)
                    if meta.file_type().is_symlink()
                        && SYSTEM_PATHS.iter().any(|p| Path::new(p) == path) =>
                {
                    let target = std::fs::read_link(&path).ok()?;
                    Some(HostPath::Link { path, target })
                }
                Ok(_) => Some(HostPath::Present(path)),
                Err(_) => None,
            })
            .collect();
        Self { paths }
    }
}

/// One process to start in a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Where it starts (one of `writable` or `readonly`, or inside one).
    pub workdir: PathBuf,
    /// Bound read-write at the same path.
    pub writable: Vec<PathBuf>,
    /// Bound read-only at the same path.
    pub readonly: Vec<PathBuf>,
    /// Whether it shares the host's network; otherwise it has only a loopback of its own.
    pub network: bool,
    /// Device nodes bound at `/dev/<name>` (GPUs): (path on the host, name).
    pub devices: Vec<(PathBuf, String)>,
    /// Host files bound read-only at another path, after everything else,
    /// so they stand in for the host's (a service's own `/etc/passwd`).
    pub files: Vec<(PathBuf, PathBuf)>,
    /// The program (a path, or a name looked up on the sandbox's `PATH`) and its arguments.
    pub argv: Vec<OsString>,
}

/// How to start a plan: the bubblewrap arguments (after the program name),
/// and the host paths the helper stages for them, in order (the `N`th is
/// bound from [`super::helper::staged`]`(N)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapped {
    pub args: Vec<OsString>,
    pub stage: Vec<PathBuf>,
}

/// The bubblewrap arguments that run `plan` on a host laid out as `host`.
pub fn bwrap_args(plan: &Plan, host: &HostLayout) -> Wrapped {
    let mut args: Vec<OsString> = Vec::new();
    let mut stage: Vec<PathBuf> = Vec::new();
    let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(|p| p.to_os_string()));
    push(&[
        "--unshare-user".as_ref(),
        "--unshare-pid".as_ref(),
        "--unshare-ipc".as_ref(),
        "--unshare-uts".as_ref(),
        "--unshare-cgroup-try".as_ref(),
        "--disable-userns".as_ref(),
        "--cap-drop".as_ref(),
        "ALL".as_ref(),
    ]);
    if !plan.network {
        push(&["--unshare-net".as_ref()]);
    }
    for path in &host.paths {
        match path {
            HostPath::Present(path) => {
                push(&["--ro-bind".as_ref(), path.as_os_str(), path.as_os_str()])
            }
            HostPath::Link { path, target } => {
                push(&["--symlink".as_ref(), target.as_os_str(), path.as_os_str()])
            }
        }
    }
    push(&[
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
    ]);
    let mut staged = |source: &Path| {
        stage.push(source.to_path_buf());
        super::helper::staged(stage.len() - 1)
    };
    let mut own: Vec<(&'static str, PathBuf, PathBuf)> = Vec::new();
    for (device, name) in &plan.devices {
        own.push(("--dev-bind", staged(device), Path::new("/dev").join(name)));
    }
    for dir in &plan.readonly {
        own.push(("--ro-bind", staged(dir), dir.clone()));
    }
    for dir in &plan.writable {
        own.push(("--bind", staged(dir), dir.clone()));
    }
    for (file, at) in &plan.files {
        own.push(("--ro-bind", staged(file), at.clone()));
    }
    for (how, from, to) in &own {
        push(&[how.as_ref(), from.as_os_str(), to.as_os_str()]);
    }
    // The root itself (a tmpfs holding the mount points) is read-only too:
    // nothing can be made under /, /etc or /var but in what is bound.
    push(&[
        "--remount-ro".as_ref(),
        "/".as_ref(),
        "--chdir".as_ref(),
        plan.workdir.as_os_str(),
        "--".as_ref(),
    ]);
    args.extend(plan.argv.iter().cloned());
    Wrapped { args, stage }
}

/// The device nodes a process given `gpus` (NVIDIA indices) sees, from those
/// that exist in `dir` (`/dev` on a real machine): its own `nvidia<N>`, and
/// the shared control devices every CUDA process needs.
pub fn gpu_devices(gpus: &[u32], present: &[String], dir: &Path) -> Vec<(PathBuf, String)> {
    if gpus.is_empty() {
        return Vec::new();
    }
    const SHARED: &[&str] = &[
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-modeset",
    ];
    let own = gpus.iter().map(|index| format!("nvidia{index}"));
    let shared = SHARED.iter().map(|name| name.to_string());
    own.chain(shared)
        .filter(|name| present.contains(name))
        .map(|name| (dir.join(&name), name))
        .collect()
}
