use super::*;
use reef_proto::job::JobSpec;
use reef_proto::{JobId, NodeId};

fn assignment() -> Assignment {
    Assignment {
        alloc: AllocId::new(),
        job: JobId::new(),
        node: NodeId::new(),
        spec: JobSpec::new(vec!["true".into()]),
        gpus: vec![],
        issued_at_ms: 1,
    }
}

#[tokio::test]
async fn records_survive_a_reopen_and_redelivery_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = Records::<LocalAlloc>::open(dir.path(), "allocs").expect("open");
    let a = assignment();
    assert!(records.accept_assignment(a.clone()).await.expect("accept"));
    assert!(!records
        .accept_assignment(a.clone())
        .await
        .expect("accept again"));
    records
        .transition(a.alloc, AllocState::Running { pid: 42 }, Durability::Synced)
        .await
        .expect("transition");

    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir.path().join("allocs")).expect("list") {
        let path = entry.expect("entry").path();
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }

    let reopened = Records::<LocalAlloc>::open(dir.path(), "allocs").expect("reopen");
    let r = reopened.get(a.alloc).expect("record kept");
    assert_eq!(r.state, AllocState::Running { pid: 42 });
    assert_eq!(r.seq, 2);
    assert!(!reopened
        .accept_assignment(a)
        .await
        .expect("accept after reopen"));
}

#[tokio::test]
async fn forbidden_transitions_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = Records::<LocalAlloc>::open(dir.path(), "allocs").expect("open");
    let a = assignment();
    records.accept_assignment(a.clone()).await.expect("accept");
    records
        .transition(a.alloc, AllocState::Exited { code: 0 }, Durability::Written)
        .await
        .expect("exit");
    let after = records
        .transition(a.alloc, AllocState::Running { pid: 1 }, Durability::Synced)
        .await
        .expect("no-op")
        .expect("record");
    assert_eq!(after.state, AllocState::Exited { code: 0 });
    assert_eq!(after.seq, 2);
}

#[test]
fn corrupt_records_are_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("allocs")).expect("mkdir");
    std::fs::write(dir.path().join("allocs/x.json"), b"{not json").expect("write");
    let records = Records::<LocalAlloc>::open(dir.path(), "allocs").expect("open");
    assert!(records.all().is_empty());
    assert!(dir.path().join("allocs/x.corrupt").exists());
}
