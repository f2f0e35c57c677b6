//! What the machine's owner decides from the machine itself, without a
//! cluster credential: `reef agent pause [--stop-jobs]` and `reef agent
//! resume` write `<data-dir>/owner.json`; the agent reads it on every
//! heartbeat and says it in the next one, so new work stops reaching a
//! paused node within a heartbeat. With `--stop-jobs` the jobs running
//! there are stopped too and reported `lost` (a job that asked for retries
//! runs again elsewhere); app instances keep running.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The owner's settings, as kept in `owner.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerControl {
    /// No new work.
    pub paused: bool,
    /// Stop the jobs running now as well.
    #[serde(default)]
    pub stop_jobs: bool,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("owner.json")
}

/// The owner's settings; a missing file means none. An unreadable or
/// malformed one is an error, which the agent logs and then keeps what it had.
pub fn read(data_dir: &Path) -> Result<OwnerControl, String> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OwnerControl::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the owner's settings whole (a reader never sees half a file).
pub fn write(data_dir: &Path, control: OwnerControl) -> Result<(), String> {
    if !data_dir.join("node-id").is_file() {
        return Err(format!(
            "{} is not an agent's data directory (give --data-dir or --name)",
            data_dir.display()
        ));
    }
    let path = path(data_dir);
    let partial = path.with_extension("json.partial");
    let bytes = serde_json::to_vec_pretty(&control).map_err(|e| e.to_string())?;
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What changed between two readings: whether to stop the running jobs now.
pub fn stops_jobs(before: OwnerControl, now: OwnerControl) -> bool {
    now.paused && now.stop_jobs && !(before.paused && before.stop_jobs)
}
