use super::plan::*;
use std::ffi::OsString;
use std::path::PathBuf;

fn host() -> HostLayout {
    HostLayout {
        paths: vec![
            HostPath::Present("/usr".into()),
            HostPath::Link {
                path: "/bin".into(),
                target: "usr/bin".into(),
            },
            HostPath::Present("/etc/resolv.conf".into()),
        ],
    }
}

fn job(network: bool) -> Plan {
    Plan {
        workdir: "/var/lib/reef/work/a1".into(),
        writable: vec!["/var/lib/reef/work/a1".into()],
        readonly: vec!["/var/lib/reef/apps/x/releases/1".into()],
        network,
        devices: vec![("/dev/nvidia1".into(), "nvidia1".into())],
        files: Vec::new(),
        argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
    }
}

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The arguments that follow `flag` each time it appears.
fn after(args: &[String], flag: &str, n: usize) -> Vec<Vec<String>> {
    args.iter()
        .enumerate()
        .filter(|(_, a)| *a == flag)
        .map(|(i, _)| args[i + 1..i + 1 + n].to_vec())
        .collect()
}

#[test]
fn every_namespace_is_new_and_nothing_privileged_remains() {
    let args = strings(&bwrap_args(&job(false), &host()).args);
    for flag in [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",
        "--disable-userns",
    ] {
        assert!(args.contains(&flag.to_string()), "{flag} in {args:?}");
    }
    assert_eq!(after(&args, "--cap-drop", 1), vec![vec!["ALL".to_string()]]);
    // With the network, only the network namespace is shared.
    let open = strings(&bwrap_args(&job(true), &host()).args);
    assert!(!open.contains(&"--unshare-net".to_string()));
    assert!(open.contains(&"--unshare-pid".to_string()));
}

#[test]
fn the_system_is_read_only_and_links_stay_links() {
    let args = strings(&bwrap_args(&job(false), &host()).args);
    let ro = after(&args, "--ro-bind", 2);
    assert!(ro.contains(&vec!["/usr".to_string(), "/usr".to_string()]));
    assert!(ro.contains(&vec![
        "/etc/resolv.conf".to_string(),
        "/etc/resolv.conf".to_string()
    ]));
    assert_eq!(
        after(&args, "--symlink", 2),
        vec![vec!["usr/bin".to_string(), "/bin".to_string()]]
    );
    // Nothing of the host is bound writable but what the plan names.
    assert_eq!(after(&args, "--bind", 2).len(), 1);
    assert_eq!(after(&args, "--tmpfs", 1), vec![vec!["/tmp".to_string()]]);
    assert_eq!(after(&args, "--proc", 1), vec![vec!["/proc".to_string()]]);
    assert_eq!(after(&args, "--dev", 1), vec![vec!["/dev".to_string()]]);
}

#[test]
fn own_directories_are_staged_in_order_and_bound_at_their_paths() {
    let wrapped = bwrap_args(&job(false), &host());
    let args = strings(&wrapped.args);
    assert_eq!(
        wrapped.stage,
        vec![
            PathBuf::from("/dev/nvidia1"),
            "/var/lib/reef/apps/x/releases/1".into(),
            "/var/lib/reef/work/a1".into(),
        ]
    );
    assert_eq!(
        after(&args, "--dev-bind", 2),
        vec![vec![
            "/tmp/reef-stage/0".to_string(),
            "/dev/nvidia1".to_string()
        ]]
    );
    assert!(after(&args, "--ro-bind", 2).contains(&vec![
        "/tmp/reef-stage/1".to_string(),
        "/var/lib/reef/apps/x/releases/1".to_string()
    ]));
    assert_eq!(
        after(&args, "--bind", 2),
        vec![vec![
            "/tmp/reef-stage/2".to_string(),
            "/var/lib/reef/work/a1".to_string()
        ]]
    );
    // Own directories come after the private /tmp, so a data dir under
    // /tmp is not hidden by it.
    let tmpfs = args.iter().position(|a| a == "--tmpfs").expect("tmpfs");
    let bind = args.iter().position(|a| a == "--bind").expect("bind");
    assert!(bind > tmpfs);
}

#[test]
fn a_file_of_its_own_stands_in_for_the_hosts() {
    let mut plan = job(false);
    plan.files = vec![(
        "/var/lib/reef/services/shop.postgres.passwd".into(),
        "/etc/passwd".into(),
    )];
    let wrapped = bwrap_args(&plan, &host());
    let args = strings(&wrapped.args);
    assert_eq!(
        wrapped.stage.last(),
        Some(&PathBuf::from(
            "/var/lib/reef/services/shop.postgres.passwd"
        ))
    );
    let binds = after(&args, "--ro-bind", 2);
    let own = vec!["/tmp/reef-stage/3".to_string(), "/etc/passwd".to_string()];
    let at = binds.iter().position(|b| *b == own).expect("bound");
    // After the host's /etc/passwd, so it is the one the process sees.
    let host = binds
        .iter()
        .position(|b| b[1] == "/etc/passwd" && b[0] == "/etc/passwd");
    assert!(host.is_none_or(|h| h < at), "{binds:?}");
}

#[test]
fn the_command_comes_last_after_the_working_directory() {
    let args = strings(&bwrap_args(&job(false), &host()).args);
    let n = args.len();
    assert_eq!(
        &args[n - 8..],
        [
            "--remount-ro",
            "/",
            "--chdir",
            "/var/lib/reef/work/a1",
            "--",
            "sh",
            "-c",
            "echo hi"
        ]
    );
}

#[test]
fn a_gpu_job_gets_its_own_device_and_the_shared_ones() {
    let present: Vec<String> = [
        "nvidia0",
        "nvidia1",
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-modeset",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = std::path::Path::new("/dev");
    let names: Vec<String> = gpu_devices(&[1], &present, dir)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        names,
        ["nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset"]
    );
    assert!(
        gpu_devices(&[], &present, dir).is_empty(),
        "no GPU, no device"
    );
    let names: Vec<String> = gpu_devices(&[3], &present, dir)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        names,
        ["nvidiactl", "nvidia-uvm", "nvidia-modeset"],
        "a missing node is not invented"
    );
}

#[test]
fn etc_shows_only_what_programs_need() {
    for private in ["/etc/reef", "/etc/shadow", "/etc/ssh", "/etc/sudoers"] {
        assert!(!ETC_PATHS.contains(&private), "{private}");
    }
}
