//! `reef sandbox-exec`: the few steps between the agent and bubblewrap that
//! need root, in a process of their own so the agent never changes its own
//! credentials or mounts:
//!
//! 1. join the allocation's control groups (before anything of the job runs,
//!    so every process it ever makes is counted and limited);
//! 2. start a new session (no controlling terminal to inject input into);
//! 3. in a mount namespace of its own, make the directories the sandbox
//!    binds reachable for the unprivileged uid (the agent's data dir is not
//!    searchable for it): each is bind-mounted at `/tmp/reef-stage/<N>` on a
//!    fresh tmpfs, seen only by this process and what it starts;
//! 4. with `--seccomp`, write the default system call filter
//!    ([`super::seccomp`]) to an anonymous file and hand it to bubblewrap
//!    (`--seccomp FD`), which installs it just before the job's program;
//! 5. drop to the allocation's uid and gid, with no supplementary groups,
//!    and execute bubblewrap (or, with the sandbox off, the program).
//!
//! Usage: `reef sandbox-exec [--cgroup FILE]... [--stage PATH]... [--uid N --gid N] [--seccomp] -- PROGRAM ARGS...`

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// Where staged directories appear: `/tmp/reef-stage/<N>`.
pub const STAGE_ROOT: &str = "/tmp/reef-stage";

/// The staged path of the `index`th `--stage` argument.
pub fn staged(index: usize) -> PathBuf {
    Path::new(STAGE_ROOT).join(index.to_string())
}

/// What the agent asks the helper to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub cgroups: Vec<PathBuf>,
    pub stage: Vec<PathBuf>,
    pub uid: Option<(u32, u32)>,
    /// Give `argv[0]` (bubblewrap) the default seccomp filter.
    pub seccomp: bool,
    pub argv: Vec<OsString>,
}

impl Request {
    /// The helper's arguments (after `sandbox-exec`).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        for file in &self.cgroups {
            args.push("--cgroup".into());
            args.push(file.clone().into_os_string());
        }
        for path in &self.stage {
            args.push("--stage".into());
            args.push(path.clone().into_os_string());
        }
        if let Some((uid, gid)) = self.uid {
            args.extend(["--uid".into(), uid.to_string().into()]);
            args.extend(["--gid".into(), gid.to_string().into()]);
        }
        if self.seccomp {
            args.push("--seccomp".into());
        }
        args.push("--".into());
        args.extend(self.argv.iter().cloned());
        args
    }

    /// Parses what [`Request::to_args`] wrote.
    pub fn parse(args: &[OsString]) -> Result<Self, String> {
        let mut request = Request::default();
        let mut uid = None;
        let mut gid = None;
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = || {
                rest.next()
                    .ok_or_else(|| format!("{} needs a value", arg.to_string_lossy()))
            };
            match arg.to_str() {
                Some("--cgroup") => request.cgroups.push(value()?.into()),
                Some("--stage") => request.stage.push(value()?.into()),
                Some("--uid") => uid = Some(number(value()?)?),
                Some("--gid") => gid = Some(number(value()?)?),
                Some("--seccomp") => request.seccomp = true,
                Some("--") => {
                    request.argv = rest.cloned().collect();
                    break;
                }
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        request.uid = match (uid, gid) {
            (Some(uid), Some(gid)) => Some((uid, gid)),
            (None, None) => None,
            _ => return Err("--uid and --gid go together".into()),
        };
        if request.argv.is_empty() {
            return Err("no program after --".into());
        }
        Ok(request)
    }
}

fn number(value: &OsStr) -> Result<u32, String> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{value:?} is not a number"))
}

/// Runs the helper; returns only on failure, with the exit code to use
/// (126, as a shell does for a command it could not execute).
pub fn main(args: &[OsString]) -> i32 {
    let request = match Request::parse(args) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("reef sandbox-exec: {e}");
            return 126;
        }
    };
    match exec(&request) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("reef sandbox-exec: {e}");
            126
        }
    }
}

fn exec(request: &Request) -> Result<std::convert::Infallible, String> {
    let pid = std::process::id().to_string();
    for file in &request.cgroups {
        std::fs::write(file, &pid)
            .map_err(|e| format!("joining control group {}: {e}", file.display()))?;
    }
    nix::unistd::setsid().map_err(|e| format!("starting a session: {e}"))?;
    if !request.stage.is_empty() {
        stage(&request.stage)?;
    }
    let mut command = std::process::Command::new(&request.argv[0]);
    // Open until the exec, which bubblewrap inherits it through.
    let _filter = if request.seccomp {
        let fd = seccomp_file()?;
        command
            .arg("--seccomp")
            .arg(std::os::fd::AsRawFd::as_raw_fd(&fd).to_string());
        Some(fd)
    } else {
        None
    };
    command.args(&request.argv[1..]);
    if let Some((uid, gid)) = request.uid {
        // std drops the supplementary groups when root sets a uid.
        command.uid(uid).gid(gid);
    }
    let e = command.exec();
    Err(format!("cannot run {:?}: {e}", request.argv[0]))
}

/// The default filter in an anonymous file, read from its start, left
/// open across exec.
fn seccomp_file() -> Result<std::os::fd::OwnedFd, String> {
    use std::io::{Seek, Write};
    let fd = nix::sys::memfd::memfd_create(c"reef-seccomp", nix::sys::memfd::MFdFlags::empty())
        .map_err(|e| format!("creating the seccomp filter's file: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&super::seccomp::to_bytes(&super::seccomp::program()))
        .and_then(|()| file.rewind())
        .map_err(|e| format!("writing the seccomp filter: {e}"))?;
    Ok(file.into())
}

/// Bind-mounts each of `paths` at [`staged`]`(N)`, in a private mount namespace.
fn stage(paths: &[PathBuf]) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("making a mount namespace: {e}"))?;
    // Nothing mounted from here on may reach the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    // Opened in this namespace (a bind needs a source mount of its own
    // namespace) and before /tmp is covered, so a path under /tmp stays reachable.
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_PATH.bits())
            .open(path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
        sources.push((file, is_dir));
    }
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0755,size=1m"),
    )
    .map_err(|e| format!("mounting the staging tmpfs: {e}"))?;
    std::fs::create_dir(STAGE_ROOT).map_err(|e| format!("creating {STAGE_ROOT}: {e}"))?;
    for (index, (file, is_dir)) in sources.iter().enumerate() {
        let target = staged(index);
        let made = if *is_dir {
            std::fs::create_dir(&target)
        } else {
            std::fs::File::create(&target).map(drop)
        };
        made.map_err(|e| format!("creating {}: {e}", target.display()))?;
        let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("staging {}: {e}", paths[index].display()))?;
    }
    Ok(())
}
