//! What an allocation may use, as the files and values that enforce it in
//! cgroup v2 and v1, and the parser for the kernel's `key value` files. Pure.

/// CPU time is handed out per period of this many microseconds: a second
/// (the kernel's longest), so a short job's start-up (the sandbox is set up
/// inside its group and counts against it) fits in its first period instead
/// of being throttled to the next; over a second it never gets more than it
/// reserved.
pub const CPU_PERIOD_US: u64 = 1_000_000;

/// The limits of one allocation's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `memory.max`: past it the kernel's OOM killer ends a process in the group.
    pub memory_bytes: u64,
    /// Thousandths of a core the group may use at most (None: no ceiling,
    /// only its weight under contention).
    pub cpu_max_millis: Option<u32>,
    /// Its share under contention, in thousandths of a core.
    pub cpu_weight_millis: u32,
    /// `pids.max`: processes and threads at once.
    pub pids_max: u32,
}

/// The v2 files and values for `limits`, in the order they are written.
pub fn v2_files(limits: &Limits) -> Vec<(String, String)> {
    let cpu_max = match limits.cpu_max_millis {
        Some(millis) => format!("{} {CPU_PERIOD_US}", quota_us(millis)),
        None => format!("max {CPU_PERIOD_US}"),
    };
    vec![
        ("memory.max".into(), limits.memory_bytes.to_string()),
        ("memory.swap.max".into(), "0".into()),
        ("pids.max".into(), limits.pids_max.to_string()),
        ("cpu.max".into(), cpu_max),
        (
            "cpu.weight".into(),
            v2_weight(limits.cpu_weight_millis).to_string(),
        ),
    ]
}

/// The v1 files and values for `limits`, in the order they are written
/// (memory with swap after memory alone: the kernel wants memsw >= memory).
pub fn v1_files(limits: &Limits) -> Vec<(String, String)> {
    let quota = match limits.cpu_max_millis {
        Some(millis) => quota_us(millis).to_string(),
        None => "-1".into(),
    };
    vec![
        (
            "memory.limit_in_bytes".into(),
            limits.memory_bytes.to_string(),
        ),
        (
            "memory.memsw.limit_in_bytes".into(),
            limits.memory_bytes.to_string(),
        ),
        ("pids.max".into(), limits.pids_max.to_string()),
        ("cpu.cfs_period_us".into(), CPU_PERIOD_US.to_string()),
        ("cpu.cfs_quota_us".into(), quota),
        (
            "cpu.shares".into(),
            v1_shares(limits.cpu_weight_millis).to_string(),
        ),
    ]
}

/// Microseconds of CPU per period for `millis` thousandths of a core (at
/// least 1 ms, the kernel's minimum quota).
pub fn quota_us(millis: u32) -> u64 {
    (u64::from(millis) * CPU_PERIOD_US / 1000).max(1000)
}

/// cgroup v2 `cpu.weight` (1..=10000, 100 for one core).
pub fn v2_weight(millis: u32) -> u32 {
    (millis / 10).clamp(1, 10_000)
}

/// cgroup v1 `cpu.shares` (2.., 1024 for one core).
pub fn v1_shares(millis: u32) -> u64 {
    (u64::from(millis) * 1024 / 1000).max(2)
}

/// The value of `key` in a kernel file of `key value` lines (`cpu.stat`,
/// `memory.events`, `memory.oom_control`, `pids.events`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}
