//! What this machine offers: CPU cores, memory and the disk holding the data
//! directory, read with sysinfo. Operators may offer less (or, for tests,
//! pretend to have more) with explicit overrides.

use reef_proto::node::NodeResources;
use std::path::Path;

/// Detects the machine's resources.
pub fn detect(data_dir: &Path) -> NodeResources {
    let memory_bytes = match sysinfo::System::new() {
        Ok(mut system) => {
            system.refresh_memory();
            system.total_memory()
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the machine's memory size");
            0
        }
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    NodeResources {
        cpu_millis: cores * 1000,
        memory_bytes,
        disk_bytes: disk_available(data_dir),
    }
}

/// Free space on the filesystem that holds `path`: the disk with the longest
/// mount point that is a prefix of it.
fn disk_available(path: &Path) -> u64 {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let Ok(disks) = sysinfo::Disks::new_with_refreshed_list() else {
        return 0;
    };
    disks
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_something_real() {
        let r = super::detect(Path::new("/"));
        assert!(r.cpu_millis >= 1000);
        assert!(r.memory_bytes > 0);
    }
    use std::path::Path;
}
