//! One control group per allocation, under `reef/<node id>/` of the host's
//! cgroup hierarchies, holding every process of that allocation from before
//! its first instruction (the sandbox helper joins it before it executes
//! anything of the job's): its limits are the kernel's, a fork bomb stays
//! inside `pids.max`, and a stop kills the whole group, whatever sessions or
//! process groups its processes made.
//!
//! cgroup v2 (the unified hierarchy, what current distributions mount) is
//! used when it offers the memory, pids and cpu controllers; otherwise the v1
//! hierarchies of those controllers (and cpuacct for CPU time), as on hosts
//! still booted with the legacy layout.

use super::limits::{self, Limits};
use super::SandboxError;
use reef_proto::alloc::Usage;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "/sys/fs/cgroup";
/// The v1 hierarchies used, in the order their group directories are kept.
const V1: &[&str] = &["memory", "pids", "cpu", "cpuacct"];
const V2_CONTROLLERS: &[&str] = &["memory", "pids", "cpu"];

/// Which cgroup layout the host has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    V2 { root: PathBuf },
    V1 { root: PathBuf },
}

impl Layout {
    /// The layout of this host, or what is missing for either.
    pub fn detect() -> Result<Self, String> {
        let root = PathBuf::from(ROOT);
        let unified = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let offered: Vec<&str> = unified.split_whitespace().collect();
        if V2_CONTROLLERS.iter().all(|c| offered.contains(c)) {
            return Ok(Layout::V2 { root });
        }
        let missing_v1: Vec<&str> = V1
            .iter()
            .copied()
            .filter(|c| !root.join(c).join("cgroup.procs").is_file())
            .collect();
        if missing_v1.is_empty() {
            return Ok(Layout::V1 { root });
        }
        if root.join("cgroup.controllers").is_file() {
            let missing: Vec<&str> = V2_CONTROLLERS
                .iter()
                .copied()
                .filter(|c| !offered.contains(c))
                .collect();
            Err(format!(
                "cgroup v2 at {ROOT} lacks the {} controller(s)",
                missing.join(", ")
            ))
        } else {
            Err(format!(
                "no cgroup v2 at {ROOT}, and no cgroup v1 hierarchy for {}",
                missing_v1.join(", ")
            ))
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::V2 { .. } => "cgroup v2",
            Layout::V1 { .. } => "cgroup v1",
        }
    }
}

/// This node's part of the hierarchy: `reef/<node id>`.
#[derive(Clone, Debug)]
pub struct Cgroups {
    layout: Layout,
    node: String,
}

/// One allocation's group (one directory per hierarchy on v1).
#[derive(Clone, Debug)]
pub struct Group {
    layout: Layout,
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Creates `reef/<node>` (and, on v2, delegates the controllers to it).
    pub fn open(layout: Layout, node: &str) -> Result<Self, SandboxError> {
        let cgroups = Self {
            layout,
            node: node.to_string(),
        };
        match &cgroups.layout {
            Layout::V2 { root } => {
                let enable = V2_CONTROLLERS
                    .iter()
                    .map(|c| format!("+{c}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let reef = root.join("reef");
                let mine = reef.join(node);
                for dir in [&reef, &mine] {
                    create_dir(dir)?;
                }
                for dir in [root, &reef, &mine] {
                    write(&dir.join("cgroup.subtree_control"), &enable)?;
                }
            }
            Layout::V1 { root } => {
                for hierarchy in V1 {
                    create_dir(&root.join(hierarchy).join("reef").join(node))?;
                }
            }
        }
        Ok(cgroups)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn dirs(&self, name: &str) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => vec![root.join("reef").join(&self.node).join(name)],
            Layout::V1 { root } => V1
                .iter()
                .map(|h| root.join(h).join("reef").join(&self.node).join(name))
                .collect(),
        }
    }

    /// A fresh group `name` with `limits` (names are never reused while the
    /// agent runs; what an earlier run left is [`Cgroups::sweep`]'s).
    pub async fn create(&self, name: &str, limits: &Limits) -> Result<Group, SandboxError> {
        let group = Group {
            layout: self.layout.clone(),
            dirs: self.dirs(name),
        };
        for dir in &group.dirs {
            create_dir(dir)?;
        }
        for (file, value) in group.limit_files(limits) {
            let path = group.file(&file);
            // Swap accounting is optional on v1 kernels: absent means no swap to limit.
            if file.starts_with("memory.memsw") && !path.exists() {
                continue;
            }
            if file == "memory.swap.max" && !path.exists() {
                continue;
            }
            write(&path, &value)?;
        }
        Ok(group)
    }

    /// Kills and removes every group of this node: what an earlier run of
    /// the agent left (its processes lost their supervisor with it).
    pub async fn sweep(&self) -> usize {
        let parent = match &self.layout {
            Layout::V2 { root } => root.join("reef").join(&self.node),
            Layout::V1 { root } => root.join(V1[0]).join("reef").join(&self.node),
        };
        let Ok(entries) = std::fs::read_dir(&parent) else {
            return 0;
        };
        let names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for name in &names {
            let group = Group {
                layout: self.layout.clone(),
                dirs: self.dirs(name),
            };
            group.remove().await;
        }
        names.len()
    }
}

impl Group {
    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The file `name` in the hierarchy of its controller.
    fn file(&self, name: &str) -> PathBuf {
        let dir = match &self.layout {
            Layout::V2 { .. } => &self.dirs[0],
            Layout::V1 { .. } => {
                let controller = name.split('.').next().unwrap_or("");
                let index = V1.iter().position(|c| *c == controller).unwrap_or(0);
                &self.dirs[index]
            }
        };
        dir.join(name)
    }

    fn limit_files(&self, limits: &Limits) -> Vec<(String, String)> {
        match self.layout {
            Layout::V2 { .. } => limits::v2_files(limits),
            Layout::V1 { .. } => limits::v1_files(limits),
        }
    }

    /// The processes in the group now.
    pub fn pids(&self) -> Vec<u32> {
        // On v1 every process is in every hierarchy; pids' is never left out.
        let procs = match self.layout {
            Layout::V2 { .. } => self.dirs[0].join("cgroup.procs"),
            Layout::V1 { .. } => self.file("pids.max").with_file_name("cgroup.procs"),
        };
        std::fs::read_to_string(procs)
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// What the group used, and how often it hit its limits.
    pub fn usage(&self) -> Usage {
        let read = |name: &str| std::fs::read_to_string(self.file(name)).ok();
        let number = |name: &str| read(name).and_then(|t| t.trim().parse::<u64>().ok());
        let keyed = |name: &str, key: &str| read(name).and_then(|t| limits::keyed(&t, key));
        let pids_limit_hits = keyed("pids.events", "max").unwrap_or(0);
        match self.layout {
            Layout::V2 { .. } => Usage {
                cpu_ms: keyed("cpu.stat", "usage_usec").map_or(0, |us| us / 1000),
                peak_memory_bytes: number("memory.peak"),
                oom_kills: keyed("memory.events", "oom_kill").unwrap_or(0),
                pids_limit_hits,
            },
            Layout::V1 { .. } => Usage {
                cpu_ms: number("cpuacct.usage").map_or(0, |ns| ns / 1_000_000),
                peak_memory_bytes: number("memory.max_usage_in_bytes"),
                oom_kills: keyed("memory.oom_control", "oom_kill").unwrap_or(0),
                pids_limit_hits,
            },
        }
    }

    /// Memory in use now (for `/metrics`).
    pub fn memory_now(&self) -> Option<u64> {
        let name = match self.layout {
            Layout::V2 { .. } => "memory.current",
            Layout::V1 { .. } => "memory.usage_in_bytes",
        };
        std::fs::read_to_string(self.file(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// Sends `signal` to every process in the group but `except`.
    pub fn signal(&self, signal: nix::sys::signal::Signal, except: Option<u32>) {
        for pid in self.pids() {
            if Some(pid) != except {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
            }
        }
    }

    /// Kills every process in the group and waits (bounded) until it is empty.
    pub async fn kill_all(&self) {
        let kill_file = self.dirs[0].join("cgroup.kill");
        let atomic = matches!(self.layout, Layout::V2 { .. }) && kill_file.exists();
        // Bounded: processes killed are gone within milliseconds; a group
        // that is still not empty after this is left for the next sweep.
        for _ in 0..500 {
            if self.pids().is_empty() {
                return;
            }
            if atomic {
                let _ = std::fs::write(&kill_file, "1");
            } else {
                self.signal(nix::sys::signal::Signal::SIGKILL, None);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tracing::warn!(group = %self.dirs[0].display(), "processes still in a killed control group");
    }

    /// Kills what is left and removes the group.
    pub async fn remove(&self) {
        self.kill_all().await;
        for dir in &self.dirs {
            // An emptied group can be busy for a moment while its last
            // processes are reaped.
            for _ in 0..500 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
        action: "creating control group",
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value).map_err(|source| SandboxError::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    })
}
