use super::*;
use proptest::prelude::*;

fn policy(attempts: u32, interval_ms: u64, delay_ms: u64, max_delay_ms: u64) -> RestartPolicy {
    RestartPolicy {
        attempts,
        interval_ms,
        delay_ms,
        max_delay_ms,
    }
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn delays_double_up_to_the_cap_then_the_budget_runs_out() {
    let mut budget = RestartBudget::new(&policy(4, 60_000, 500, 1_500));
    let t = Instant::now();
    assert_eq!(budget.on_crash(t, 1), OnCrash::Restart(500 * MS));
    assert_eq!(
        budget.on_crash(t + 10 * MS, 1),
        OnCrash::Restart(1_000 * MS)
    );
    assert_eq!(
        budget.on_crash(t + 20 * MS, 1),
        OnCrash::Restart(1_500 * MS)
    );
    assert_eq!(
        budget.on_crash(t + 30 * MS, 1),
        OnCrash::Restart(1_500 * MS)
    );
    assert_eq!(
        budget.on_crash(t + 40 * MS, 3),
        OnCrash::GiveUp("exited with code 3; 4 restarts within 1m0s used up".into())
    );
}

#[test]
fn no_attempts_gives_up_at_the_first_crash() {
    let mut budget = RestartBudget::new(&policy(0, 60_000, 500, 1_000));
    assert!(matches!(
        budget.on_crash(Instant::now(), 9),
        OnCrash::GiveUp(reason) if reason.starts_with("exited with code 9; 0 restarts")
    ));
}

#[test]
fn restarts_leave_the_window_and_the_delay_starts_over() {
    let mut budget = RestartBudget::new(&policy(2, 1_000, 100, 10_000));
    let t = Instant::now();
    assert_eq!(budget.on_crash(t, 1), OnCrash::Restart(100 * MS));
    assert_eq!(budget.on_crash(t + 500 * MS, 1), OnCrash::Restart(200 * MS));
    // The first restart left the window: one more fits, at the next delay.
    assert_eq!(
        budget.on_crash(t + 1_200 * MS, 1),
        OnCrash::Restart(400 * MS)
    );
    // All of them left it: the delay is back at its start.
    assert_eq!(
        budget.on_crash(t + 5_000 * MS, 1),
        OnCrash::Restart(100 * MS)
    );
}

#[test]
fn a_cap_below_the_first_delay_is_the_first_delay() {
    let mut budget = RestartBudget::new(&policy(3, 60_000, 800, 100));
    let t = Instant::now();
    assert_eq!(budget.on_crash(t, 1), OnCrash::Restart(800 * MS));
    assert_eq!(budget.on_crash(t, 1), OnCrash::Restart(800 * MS));
}

proptest! {
    /// Within any window, no more restarts than the budget; every delay
    /// within its bounds; a crash past a give-up with the same recent
    /// history gives up too.
    #[test]
    fn the_budget_holds_for_any_crash_times(
        attempts in 0u32..6,
        interval_ms in 1u64..5_000,
        delay_ms in 0u64..2_000,
        max_delay_ms in 0u64..10_000,
        gaps in prop::collection::vec(0u64..3_000, 1..40),
    ) {
        let p = policy(attempts, interval_ms, delay_ms, max_delay_ms);
        let mut budget = RestartBudget::new(&p);
        let start = Instant::now();
        let mut now = start;
        let mut restarted: Vec<Instant> = Vec::new();
        for gap in gaps {
            now += Duration::from_millis(gap);
            match budget.on_crash(now, 1) {
                OnCrash::Restart(delay) => {
                    prop_assert!(delay >= Duration::from_millis(delay_ms));
                    prop_assert!(delay <= Duration::from_millis(delay_ms.max(max_delay_ms)));
                    restarted.push(now);
                }
                OnCrash::GiveUp(_) => {}
            }
            let window = Duration::from_millis(interval_ms);
            let recent = restarted.iter().filter(|t| now.duration_since(**t) <= window).count();
            prop_assert!(recent as u32 <= attempts, "{recent} restarts within the window, budget {attempts}");
        }
    }
}
