//! Looking at processes the tests started: whether one runs (jobs start
//! them indirectly) and how much memory one holds.

/// Whether process `pid` is running (a zombie waiting for its reaper is not).
pub fn is_alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The resident memory of process `pid` in bytes (`VmRSS`), if it runs.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Host pids of the live processes for which `keep(pid)` holds.
pub fn live_pids_where(keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| keep(pid) && is_alive(pid))
        .collect()
}

/// Host pids of the live processes whose arguments are exactly `argv`
/// (a sandboxed job sees only its own pid namespace's numbers; a test
/// looks its processes up from the host).
pub fn pids_of(argv: &[&str]) -> Vec<String> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    live_pids_where(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
}

/// Host pids of the live processes started with `var=value` in their
/// environment (every process of a job has its `REEF_ALLOC_ID`, of an
/// instance its `REEF_INSTANCE_ID`).
pub fn pids_with_env(var: &str, value: &str) -> Vec<String> {
    let wanted = format!("{var}={value}");
    live_pids_where(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == wanted.as_bytes()))
    })
}

/// Whether any process of allocation `alloc` is alive.
pub fn alloc_alive(alloc: &str) -> bool {
    !pids_with_env("REEF_ALLOC_ID", alloc).is_empty()
}
