use super::helper::*;
use std::ffi::OsString;

#[test]
fn a_request_survives_its_arguments() {
    let request = Request {
        cgroups: vec!["/sys/fs/cgroup/reef/n/a/cgroup.procs".into()],
        stage: vec!["/var/lib/reef/work/a".into(), "/dev/nvidia0".into()],
        uid: Some((2_000_000_001, 2_000_000_001)),
        seccomp: true,
        argv: vec!["/usr/bin/bwrap".into(), "--".into(), "sh".into()],
    };
    assert_eq!(Request::parse(&request.to_args()), Ok(request.clone()));
    let plain = Request {
        uid: None,
        stage: Vec::new(),
        seccomp: false,
        ..request
    };
    assert_eq!(Request::parse(&plain.to_args()), Ok(plain));
}

#[test]
fn bad_requests_are_refused() {
    let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
    assert!(
        Request::parse(&args(&["--uid", "5", "--", "true"])).is_err(),
        "uid without gid"
    );
    assert!(Request::parse(&args(&["--cgroup"])).is_err());
    assert!(Request::parse(&args(&["--uid", "x", "--gid", "1", "--", "true"])).is_err());
    assert!(Request::parse(&args(&["--"])).is_err(), "no program");
    assert!(Request::parse(&args(&["--what", "--", "true"])).is_err());
    assert_eq!(staged(3), std::path::PathBuf::from("/tmp/reef-stage/3"));
}
