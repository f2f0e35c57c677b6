//! The lease decisions, at chosen instants.

use super::*;
use proptest::prelude::*;

const LEASE: Duration = Duration::from_secs(3);

fn held(revision: u64) -> Observed {
    Observed::Held {
        revision,
        holder_gone: false,
    }
}

#[test]
fn a_free_lease_is_created() {
    let mut seen = Seen::default();
    assert_eq!(
        look(&mut seen, Observed::Free, Instant::now(), LEASE),
        Decision::Take {
            revision: None,
            because: Because::Free
        }
    );
}

#[test]
fn a_held_lease_is_followed_until_its_revision_stood_still_a_whole_lease() {
    let t0 = Instant::now();
    let mut seen = Seen::default();
    assert_eq!(look(&mut seen, held(7), t0, LEASE), Decision::Follow);
    let almost = t0 + LEASE - Duration::from_millis(1);
    assert_eq!(look(&mut seen, held(7), almost, LEASE), Decision::Follow);
    assert_eq!(
        look(&mut seen, held(7), t0 + LEASE, LEASE),
        Decision::Take {
            revision: Some(7),
            because: Because::Expired
        }
    );
}

#[test]
fn a_renewal_starts_the_count_again() {
    let t0 = Instant::now();
    let mut seen = Seen::default();
    look(&mut seen, held(7), t0, LEASE);
    let later = t0 + LEASE / 2;
    assert_eq!(look(&mut seen, held(8), later, LEASE), Decision::Follow);
    assert_eq!(
        look(&mut seen, held(8), t0 + LEASE, LEASE),
        Decision::Follow
    );
    assert!(matches!(
        look(&mut seen, held(8), later + LEASE, LEASE),
        Decision::Take {
            revision: Some(8),
            ..
        }
    ));
}

#[test]
fn a_gone_holder_or_an_unreadable_key_is_taken_over_at_once() {
    let t0 = Instant::now();
    let mut seen = Seen::default();
    let gone = Observed::Held {
        revision: 3,
        holder_gone: true,
    };
    assert_eq!(
        look(&mut seen, gone, t0, LEASE),
        Decision::Take {
            revision: Some(3),
            because: Because::HolderGone
        }
    );
    let mut seen = Seen::default();
    assert_eq!(
        look(&mut seen, Observed::Unreadable { revision: 4 }, t0, LEASE),
        Decision::Take {
            revision: Some(4),
            because: Because::Unreadable
        }
    );
}

#[test]
fn forgetting_the_revision_restarts_the_wait() {
    let t0 = Instant::now();
    let mut seen = Seen::default();
    look(&mut seen, held(7), t0, LEASE);
    seen.forget();
    assert_eq!(
        look(&mut seen, held(7), t0 + LEASE, LEASE),
        Decision::Follow
    );
}

#[test]
fn the_holder_acts_for_two_thirds_of_a_lease_after_a_confirmed_write() {
    let t0 = Instant::now();
    assert!(may_act(t0, t0, LEASE));
    assert!(may_act(t0, t0 + Duration::from_millis(1999), LEASE));
    assert!(!may_act(t0, t0 + Duration::from_secs(2), LEASE));
    assert_eq!(renew_every(LEASE), Duration::from_millis(750));
    assert_eq!(
        renewal_budget(t0, t0 + Duration::from_millis(500), LEASE),
        Duration::from_millis(1500)
    );
    assert_eq!(
        renewal_budget(t0, t0 + Duration::from_secs(5), LEASE),
        Duration::ZERO
    );
    assert_eq!(
        after_failed_renewal(t0, t0 + Duration::from_secs(1), LEASE),
        AfterFailure::Retry
    );
    assert_eq!(
        after_failed_renewal(t0, t0 + Duration::from_secs(2), LEASE),
        AfterFailure::Deposed
    );
}

proptest! {
    /// Whatever the lease and whenever things happen: while the holder may
    /// act on a write sent at `sent`, no follower that first saw that
    /// revision at or after `sent` decides the lease expired.
    #[test]
    fn a_follower_never_takes_over_while_the_holder_may_act(
        lease_ms in 1u64..60_000,
        seen_after_ms in 0u64..120_000,
        at_ms in 0u64..240_000,
    ) {
        let lease = Duration::from_millis(lease_ms);
        let sent = Instant::now();
        let first_seen = sent + Duration::from_millis(seen_after_ms);
        let now = sent + Duration::from_millis(at_ms);
        let mut seen = Seen::default();
        look(&mut seen, held(1), first_seen, lease);
        let takes = look(&mut seen, held(1), now.max(first_seen), lease) != Decision::Follow;
        prop_assert!(!(takes && may_act(sent, now.max(first_seen), lease)));
    }

    /// A follower that keeps seeing new revisions never takes over.
    #[test]
    fn a_renewed_lease_is_never_taken(steps in proptest::collection::vec(1u64..2_999, 1..50)) {
        let mut seen = Seen::default();
        let mut now = Instant::now();
        for (revision, step) in steps.into_iter().enumerate() {
            now += Duration::from_millis(step);
            prop_assert_eq!(look(&mut seen, held(revision as u64), now, LEASE), Decision::Follow);
        }
    }
}
