//! CPU time used by a server and its worker processes (nginx runs a master
//! and one worker per core), read from `/proc`. On a machine where the load
//! generator, the proxy and the backend share the cores, CPU time per request
//! says what a proxy costs more directly than requests per second.

use std::time::Duration;

/// Clock ticks per second of the times in `/proc/PID/stat` (`USER_HZ`, 100
/// on every Linux configuration this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system time used so far by `pid` and its live descendants;
/// None where `/proc` cannot tell (not Linux, or the process is gone).
pub(crate) fn process_tree(pid: u32) -> Option<Duration> {
    let ticks = tree(pid).into_iter().map(ticks).sum::<Option<u64>>()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// User plus system time used so far by `pid` alone (all its threads, none
/// of its children). The deployed-proxy bench (`tests/benches/deployed.rs`),
/// which shares this file, reads an agent without the app it runs.
#[allow(dead_code)]
pub(crate) fn process(pid: u32) -> Option<Duration> {
    ticks(pid).map(|t| Duration::from_millis(t * 1000 / TICKS_PER_SECOND))
}

/// `pid` and its live descendants.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        next += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            found.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    found
}

/// utime + stime of one process (all its threads), in clock ticks.
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; the
    // fields after it start at field 3, so utime (14) and stime (15) are the
    // 12th and 13th.
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}
