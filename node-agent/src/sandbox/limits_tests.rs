use super::limits::*;

fn limits(cpu_max: Option<u32>) -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        cpu_max_millis: cpu_max,
        cpu_weight_millis: 500,
        pids_max: 64,
    }
}

#[test]
fn v2_files_enforce_memory_without_swap_cpu_and_pids() {
    let files = v2_files(&limits(Some(500)));
    let get = |name: &str| {
        files
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("memory.max").as_deref(), Some("268435456"));
    assert_eq!(get("memory.swap.max").as_deref(), Some("0"));
    assert_eq!(get("cpu.max").as_deref(), Some("500000 1000000"));
    assert_eq!(get("pids.max").as_deref(), Some("64"));
    assert_eq!(get("cpu.weight").as_deref(), Some("50"));
    let uncapped = v2_files(&limits(None));
    assert!(uncapped.contains(&("cpu.max".into(), "max 1000000".into())));
}

#[test]
fn v1_files_write_memory_before_memory_with_swap() {
    let files = v1_files(&limits(Some(2000)));
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    let memory = names
        .iter()
        .position(|n| *n == "memory.limit_in_bytes")
        .expect("memory");
    let memsw = names
        .iter()
        .position(|n| *n == "memory.memsw.limit_in_bytes")
        .expect("memsw");
    assert!(memory < memsw);
    assert!(files.contains(&("cpu.cfs_quota_us".into(), "2000000".into())));
    assert!(files.contains(&("cpu.shares".into(), "512".into())));
    assert!(v1_files(&limits(None)).contains(&("cpu.cfs_quota_us".into(), "-1".into())));
}

#[test]
fn quotas_and_weights_stay_in_the_kernel_ranges() {
    assert_eq!(quota_us(1), 1000, "the kernel's smallest quota");
    assert_eq!(quota_us(1000), 1_000_000);
    assert_eq!(v2_weight(0), 1);
    assert_eq!(v2_weight(10_000_000), 10_000);
    assert_eq!(v1_shares(1), 2);
}

#[test]
fn keyed_files_are_read_by_key() {
    let stat = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n";
    assert_eq!(keyed(stat, "usage_usec"), Some(1_500_000));
    assert_eq!(keyed(stat, "usage"), None);
    let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
    assert_eq!(keyed(oom, "oom_kill"), Some(2));
    assert_eq!(keyed("max 7", "max"), Some(7));
    assert_eq!(keyed("max nonsense", "max"), None);
    assert_eq!(keyed("", "max"), None);
}

proptest::proptest! {
    #[test]
    fn keyed_never_panics(text in ".{0,200}", key in "[a-z_]{0,12}") {
        let _ = keyed(&text, &key);
    }
}
