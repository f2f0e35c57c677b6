use super::beam::{env, needs_epmd, node_name, scratch_dirs};
use reef_proto::manifest::RunSpec;
use reef_proto::InstanceId;
use std::collections::BTreeMap;
use std::path::Path;

fn beam(command: &str, distribution: bool) -> RunSpec {
    RunSpec::Beam {
        release: "shop".into(),
        command: command.into(),
        distribution,
    }
}

fn vars(run: &RunSpec, port: Option<u16>) -> BTreeMap<&'static str, String> {
    let id = InstanceId(uuid::Uuid::from_u128(0xab));
    env(run, id, Path::new("/d/run/i"), port)
        .into_iter()
        .collect()
}

#[test]
fn a_mix_release_runs_without_distribution_unless_asked() {
    let run = beam("start", false);
    assert!(!needs_epmd(&run));
    let vars = vars(&run, None);
    assert_eq!(vars["RELEASE_DISTRIBUTION"], "none");
    assert!(!vars.contains_key("ERL_EPMD_PORT"));
}

#[test]
fn distribution_gives_each_instance_its_node_name_and_epmd() {
    let run = beam("start", true);
    assert!(needs_epmd(&run));
    let vars = vars(&run, Some(4500));
    assert_eq!(vars["RELEASE_DISTRIBUTION"], "sname");
    assert_eq!(vars["ERL_EPMD_PORT"], "4500");
    assert_eq!(vars["ERL_EPMD_ADDRESS"], "127.0.0.1");
    assert_eq!(
        vars["RELEASE_NODE"],
        "shop-000000000000000000000000000000ab"
    );
    let a = node_name("shop", InstanceId(uuid::Uuid::from_u128(1)));
    let b = node_name("shop", InstanceId(uuid::Uuid::from_u128(2)));
    assert_ne!(a, b, "two instances never share a node name");
}

#[test]
fn a_relx_release_always_gets_an_epmd_of_its_own() {
    // Its vm.args names the node, so distribution cannot be turned off.
    assert!(needs_epmd(&beam("foreground", false)));
}

#[test]
fn every_file_a_release_writes_goes_to_its_scratch_directory() {
    let vars = vars(&beam("start", false), None);
    let [home, tmp] = scratch_dirs(Path::new("/d/run/i"));
    assert_eq!(Path::new(&vars["HOME"]), home);
    for key in ["RELEASE_TMP", "RELX_OUT_FILE_PATH", "RUNNER_LOG_DIR"] {
        assert_eq!(Path::new(&vars[key]), tmp, "{key}");
    }
}

#[test]
fn a_program_gets_nothing_of_this() {
    let run = RunSpec::Exec {
        command: vec!["./server".into()],
    };
    assert!(!needs_epmd(&run));
    assert!(vars(&run, None).is_empty());
}
