use super::*;

fn counts(app: &str, requests: u64, errors: u64, latency_micros: u64) -> AppTraffic {
    AppTraffic {
        app: app.into(),
        requests,
        errors,
        latency_micros,
    }
}

const T: u64 = 1_800_000_000_000;

#[test]
fn growth_between_beats_goes_to_its_minute() {
    let mut traffic = Traffic::default();
    traffic.observe("n1", &[], T);
    traffic.observe("n1", &[counts("web", 5, 1, 500)], T + 1_000);
    traffic.observe("n1", &[counts("web", 8, 1, 800)], T + 2_000);
    traffic.observe("n1", &[counts("web", 10, 2, 1_000)], T + 61_000);
    let hour = traffic.hour(T + 61_000);
    let web = &hour["web"];
    assert_eq!(web.len(), MINUTES as usize);
    let busy: Vec<_> = web.iter().filter(|m| m.requests > 0).collect();
    assert_eq!(busy.len(), 2, "{busy:?}");
    assert_eq!(
        (busy[0].requests, busy[0].errors, busy[0].latency_micros),
        (8, 1, 800)
    );
    assert_eq!(
        (busy[1].requests, busy[1].errors, busy[1].latency_micros),
        (2, 1, 200)
    );
    assert!(web
        .windows(2)
        .all(|w| w[1].start_ms == w[0].start_ms + 60_000));
}

#[test]
fn a_node_first_heard_with_counters_is_a_baseline_and_a_restart_counts_from_zero() {
    let mut traffic = Traffic::default();
    traffic.observe("n1", &[counts("web", 1_000, 0, 9)], T);
    assert!(
        !traffic.hour(T).contains_key("web"),
        "nothing before the baseline"
    );
    traffic.observe("n1", &[counts("web", 1_004, 0, 9)], T + 1_000);
    traffic.observe("n1", &[counts("web", 3, 0, 9)], T + 2_000);
    let total: u64 = traffic.hour(T + 2_000)["web"]
        .iter()
        .map(|m| m.requests)
        .sum();
    assert_eq!(total, 7);
}

#[test]
fn nodes_add_up_and_minutes_older_than_an_hour_go() {
    let mut traffic = Traffic::default();
    for node in ["n1", "n2"] {
        traffic.observe(node, &[], T);
        traffic.observe(node, &[counts("web", 2, 0, 0)], T + 1_000);
    }
    assert_eq!(
        traffic.hour(T + 1_000)["web"]
            .iter()
            .map(|m| m.requests)
            .sum::<u64>(),
        4
    );
    let later = T + 2 * 3_600_000;
    traffic.observe("n1", &[counts("web", 3, 0, 0)], later);
    let hour = traffic.hour(later);
    assert_eq!(hour["web"].iter().map(|m| m.requests).sum::<u64>(), 1);
    assert_eq!(traffic.apps["web"].len(), 1, "old minutes dropped");
}

#[test]
fn apps_beyond_the_bound_are_not_kept() {
    let mut traffic = Traffic::default();
    traffic.observe("n1", &[], T);
    let many: Vec<_> = (0..MAX_APPS + 10)
        .map(|i| counts(&format!("app-{i}"), 1, 0, 0))
        .collect();
    traffic.observe("n1", &many, T + 1_000);
    assert_eq!(traffic.hour(T + 1_000).len(), MAX_APPS);
}

#[test]
fn every_beat_says_when_its_node_was_heard() {
    let mut traffic = Traffic::default();
    traffic.observe("n1", &[], T);
    traffic.observe("n1", &[], T + 1_000);
    traffic.observe("n2", &[], T + 500);
    assert_eq!(traffic.heard().get("n1"), Some(&(T + 1_000)));
    assert_eq!(traffic.heard().get("n2"), Some(&(T + 500)));
}
