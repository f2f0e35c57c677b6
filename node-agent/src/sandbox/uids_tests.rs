use super::uids::*;
use std::collections::BTreeSet;

#[test]
fn a_node_block_is_stable_and_inside_the_range() {
    let a = UidRange::for_node(b"node-a");
    assert_eq!(a, UidRange::for_node(b"node-a"));
    assert_ne!(a, UidRange::for_node(b"node-b"));
    assert!(a.first >= DEFAULT_BASE);
    assert!(u64::from(a.first) + u64::from(a.count) <= i32::MAX as u64);
    assert_eq!(a.count, BLOCK);
}

#[test]
fn ranges_parse_and_refuse_nonsense() {
    let r = UidRange::parse("100000-165535").expect("range");
    assert_eq!((r.first, r.count, r.last()), (100_000, 65_536, 165_535));
    for bad in [
        "",
        "5",
        "100-200",
        "2000-1000",
        "3000-3000",
        "a-b",
        "1000-4294967295",
    ] {
        assert!(UidRange::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn lowest_free_skips_used_and_runs_out() {
    let used: BTreeSet<u32> = [10, 11, 13].into();
    assert_eq!(lowest_free(10..15, &used), Some(12));
    let full: BTreeSet<u32> = (10..15).collect();
    assert_eq!(lowest_free(10..15, &full), None);
}

#[test]
fn apps_keep_their_uid_and_jobs_get_distinct_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("uids.json");
    let range = UidRange::parse("100000-100009").expect("range");
    let mut uids = Uids::load(range, path.clone()).expect("load");
    let web = uids.app("web").expect("web");
    let api = uids.app("api").expect("api");
    assert_ne!(web, api);
    assert!((100_000..100_005).contains(&web), "apps in the first half");
    let a = uids.take_job().expect("a");
    let b = uids.take_job().expect("b");
    assert_ne!(a, b);
    assert!((100_005..100_010).contains(&a), "jobs in the second half");
    uids.give_back(a);
    assert_eq!(uids.take_job().expect("again"), a);
    // Kept across restarts.
    let mut again = Uids::load(range, path).expect("reload");
    assert_eq!(again.app("web").expect("web"), web);
    assert_eq!(again.app("api").expect("api"), api);
    // The block runs out with a clear error.
    for _ in 0..5 {
        let _ = again.take_job();
    }
    assert!(again.take_job().is_err());
}
