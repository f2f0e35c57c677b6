//! What an Erlang/Elixir release (`type = "beam"`) needs from its instance,
//! beyond any program's environment, decided here without I/O.
//!
//! Releases as `mix release` and `rebar3 release` make them assume one copy
//! per host: a fixed node name registered with the host's epmd (port 4369),
//! and files written under the release (`tmp/`, generated `vm.args`). Two
//! instances of one app run side by side during a blue-green deploy, and the
//! release directory is read-only in the sandbox, so each instance gets:
//!
//! - a writable scratch directory of its own: `HOME`, `RELEASE_TMP` (mix),
//!   `RELX_OUT_FILE_PATH` and `RUNNER_LOG_DIR` (relx);
//! - for a mix release without `distribution = true`: distribution off
//!   (`RELEASE_DISTRIBUTION=none`), so no node name and no epmd at all;
//! - otherwise (distribution asked for, or a relx release, whose `vm.args`
//!   always names the node): a node name of its own (`RELEASE_NODE`) and an
//!   epmd of its own on a port reef leases (`ERL_EPMD_PORT`, loopback only),
//!   started by the VM inside the instance's process tree, so stopping the
//!   instance stops it too and no two instances share one.

use reef_proto::manifest::RunSpec;
use reef_proto::InstanceId;
use std::path::{Path, PathBuf};

/// Whether an instance of `run` gets a scratch directory (a release does).
pub(crate) fn needs_scratch(run: &RunSpec) -> bool {
    matches!(run, RunSpec::Beam { .. })
}

/// Whether an instance of `run` needs a port for an epmd of its own.
pub(crate) fn needs_epmd(run: &RunSpec) -> bool {
    match run {
        RunSpec::Beam {
            distribution,
            command,
            ..
        } => *distribution || command == "foreground",
        RunSpec::Exec { .. } => false,
    }
}

/// The directories to create in an instance's scratch directory.
pub(crate) fn scratch_dirs(scratch: &Path) -> [PathBuf; 2] {
    [scratch.join("home"), scratch.join("tmp")]
}

/// The variables a release of `run` gets on top of the instance's own, for
/// instance `instance` with its scratch directory and its epmd port (when
/// [`needs_epmd`]). Empty for anything but a release.
pub(crate) fn env(
    run: &RunSpec,
    instance: InstanceId,
    scratch: &Path,
    epmd_port: Option<u16>,
) -> Vec<(&'static str, String)> {
    let RunSpec::Beam {
        release,
        distribution,
        ..
    } = run
    else {
        return Vec::new();
    };
    let [home, tmp] = scratch_dirs(scratch);
    let tmp = tmp.display().to_string();
    let mut vars = vec![
        ("HOME", home.display().to_string()),
        ("RELEASE_TMP", tmp.clone()),
        ("RELX_OUT_FILE_PATH", tmp.clone()),
        ("RUNNER_LOG_DIR", tmp),
    ];
    if *distribution {
        vars.push(("RELEASE_DISTRIBUTION", "sname".into()));
    } else {
        vars.push(("RELEASE_DISTRIBUTION", "none".into()));
    }
    vars.push(("RELEASE_NODE", node_name(release, instance)));
    if let Some(port) = epmd_port {
        vars.push(("ERL_EPMD_PORT", port.to_string()));
        vars.push(("ERL_EPMD_ADDRESS", "127.0.0.1".into()));
    }
    vars
}

/// The node name of one instance: the release's, made unique by the instance.
pub(crate) fn node_name(release: &str, instance: InstanceId) -> String {
    format!("{release}-{}", instance.0.simple())
}
