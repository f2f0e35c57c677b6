use super::*;

#[test]
fn a_guard_counts_until_dropped() {
    let load = Arc::new(Load::default());
    let first = load.start();
    let second = load.start();
    assert_eq!(load.current(), 2);
    drop(first);
    assert_eq!(load.current(), 1);
    drop(second);
    assert_eq!(load.current(), 0);
}

#[tokio::test]
async fn an_idle_load_drains_at_once() {
    let load = Load::default();
    assert!(load.wait_idle(Duration::ZERO).await);
}

#[tokio::test]
async fn draining_gives_up_at_the_deadline() {
    let load = Arc::new(Load::default());
    let _held = load.start();
    assert!(!load.wait_idle(Duration::from_millis(20)).await);
}

#[tokio::test]
async fn draining_ends_when_the_last_request_ends() {
    let load = Arc::new(Load::default());
    let first = load.start();
    let second = load.start();
    let release = async {
        tokio::task::yield_now().await;
        drop(first);
        tokio::task::yield_now().await;
        drop(second);
    };
    let (drained, ()) = tokio::join!(load.wait_idle(Duration::from_secs(10)), release);
    assert!(drained);
    assert_eq!(load.current(), 0);
}

#[test]
fn the_registry_hands_out_one_load_per_id() {
    let registry = LoadRegistry::default();
    let a = registry.load_for("a");
    let _held = a.start();
    assert_eq!(registry.load_for("a").current(), 1);
    assert_eq!(registry.get("a").map(|l| l.current()), Some(1));
    assert!(registry.get("b").is_none());
}

#[test]
fn the_registry_forgets_loads_nobody_holds() {
    let registry = LoadRegistry::default();
    let a = registry.load_for("a");
    let in_flight = a.start();
    drop(a);
    registry.prune();
    // The request still holds the load, so it is still counted.
    assert_eq!(registry.get("a").map(|l| l.current()), Some(1));
    drop(in_flight);
    registry.prune();
    assert_eq!(registry.len(), 0);
    assert!(registry.get("a").is_none());
}

#[tokio::test]
async fn a_counted_body_ends_its_count_when_dropped() {
    use http_body_util::{BodyExt, Full};

    let load = Arc::new(Load::default());
    let body = CountedBody::new(Full::new(bytes::Bytes::from_static(b"hi")), load.start());
    assert_eq!(load.current(), 1);
    let collected = body.collect().await.expect("infallible").to_bytes();
    assert_eq!(collected, "hi");
    assert_eq!(load.current(), 0);
}
