//! A fake 2-GPU rig for tests: an `nvidia-smi` that reports two RTX 4090s.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A PATH (the test's own after it) whose `nvidia-smi`, written under
/// `dir/fakebin`, reports two RTX 4090s.
pub fn fake_rig_path(dir: &Path) -> String {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let smi = bin.join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\nprintf '0, NVIDIA GeForce RTX 4090, 24564\\n1, NVIDIA GeForce RTX 4090, 24564\\n'\n",
    )
    .expect("fake");
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
