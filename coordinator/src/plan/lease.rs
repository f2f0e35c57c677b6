//! The leader lease's decisions, fed explicit instants of the deciding
//! coordinator's own monotonic clock (no wall clocks compared across
//! machines):
//!
//! - a follower ([`look`]) takes the lease when nobody holds it, when it is
//!   unreadable, when the servers said the holder's connection closed from
//!   its side, or when its revision has not changed for a whole lease since
//!   this follower first saw it; otherwise it follows;
//! - the holder ([`may_act`]) acts as leader only while its last confirmed
//!   write was sent less than two thirds of a lease ago, which ends before
//!   any follower can take over; it renews every quarter of a lease
//!   ([`renew_every`]), and a failed renewal ([`after_failed_renewal`]) is
//!   retried while it may still act, and ends the term after.
//!
//! `drive/election.rs` reads the key, calls these, and writes.

use std::time::{Duration, Instant};

/// The lease key as one look found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// No key (never written, or deleted by a leader that shut down cleanly).
    Free,
    /// A key that does not decode, at this revision.
    Unreadable { revision: u64 },
    /// A holder's key at this revision; `holder_gone` when the servers said
    /// the connection it names closed from its side.
    Held { revision: u64, holder_gone: bool },
}

/// What a follower remembers between looks: the last revision it saw, and
/// when it first saw it (its own clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen(Option<(u64, Instant)>);

impl Seen {
    /// Forgets the revision (after a write by this coordinator, won or lost).
    pub fn forget(&mut self) {
        self.0 = None;
    }
}

/// Why a follower takes the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Because {
    Free,
    Unreadable,
    HolderGone,
    Expired,
}

/// A follower's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write the lease for this coordinator: create it (`revision` None) or
    /// replace it only if still at `revision`.
    Take {
        revision: Option<u64>,
        because: Because,
    },
    Follow,
}

/// One look at the lease, `now` by the follower's clock.
pub fn look(seen: &mut Seen, observed: Observed, now: Instant, lease: Duration) -> Decision {
    let revision = match observed {
        Observed::Free => {
            return Decision::Take {
                revision: None,
                because: Because::Free,
            }
        }
        Observed::Unreadable { revision } | Observed::Held { revision, .. } => revision,
    };
    let since = match seen.0 {
        Some((known, since)) if known == revision => since,
        _ => {
            seen.0 = Some((revision, now));
            now
        }
    };
    let because = match observed {
        Observed::Unreadable { .. } => Some(Because::Unreadable),
        Observed::Held {
            holder_gone: true, ..
        } => Some(Because::HolderGone),
        _ if now.saturating_duration_since(since) >= lease => Some(Because::Expired),
        _ => None,
    };
    match because {
        Some(because) => Decision::Take {
            revision: Some(revision),
            because,
        },
        None => Decision::Follow,
    }
}

/// How often the holder renews.
pub fn renew_every(lease: Duration) -> Duration {
    lease / 4
}

/// How long after a confirmed write was sent the holder may act.
fn validity(lease: Duration) -> Duration {
    lease * 2 / 3
}

/// Whether the holder may still act as leader at `now`, its last
/// successful write having been sent at `confirmed`.
pub fn may_act(confirmed: Instant, now: Instant, lease: Duration) -> bool {
    now.saturating_duration_since(confirmed) < validity(lease)
}

/// How long a renewal sent at `now` may take before it is too late.
pub fn renewal_budget(confirmed: Instant, now: Instant, lease: Duration) -> Duration {
    validity(lease).saturating_sub(now.saturating_duration_since(confirmed))
}

/// What a renewal that failed (not refused: refused means another holder)
/// leaves the holder to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Still within its validity: try again at the next renewal.
    Retry,
    /// Too late: stop leading.
    Deposed,
}

pub fn after_failed_renewal(confirmed: Instant, now: Instant, lease: Duration) -> AfterFailure {
    match may_act(confirmed, now, lease) {
        true => AfterFailure::Retry,
        false => AfterFailure::Deposed,
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
