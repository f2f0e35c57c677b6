//! Leader election: one key in the leader bucket, taken and renewed with
//! compare-and-set.
//!
//! The holder renews the key every quarter of the lease. A follower watches
//! the key's revision on its own monotonic clock; once the revision has not
//! changed for a whole lease, it takes the key over with a compare-and-set on
//! that revision, so of several followers exactly one wins. The holder stops
//! leading when a renewal is refused (someone took the key) or when it has not
//! managed to renew for two thirds of a lease, which is before any follower can
//! have taken over. No wall clocks are compared across machines.
//!
//! A follower that learns the holder's connection closed from the holder's
//! side (the servers' disconnect advisory names the connection the lease
//! records: the holder's process is gone) takes the key over at its next
//! look instead of waiting out the lease, with the same compare-and-set.
//!
//! The lease only decides who schedules. Every state write the leader makes is
//! also a compare-and-set on the record's own revision, so a deposed leader
//! that has not noticed yet still cannot overwrite what its successor wrote.
//!
//! The decisions are `plan::lease`'s, fed this coordinator's clock; this
//! file reads the key, calls them, and writes.

use crate::error::{BoxError, CoordinatorError, Report};
use crate::plan::lease::{self, AfterFailure, Because, Decision, Observed, Seen};
use crate::store::Bucket;
use reef_proto::leader::{valid_coordinator_id, LeaderLease};
use reef_proto::{now_ms, subjects};
use std::time::{Duration, Instant};

/// Who this coordinator is.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub id: String,
    pub name: String,
}

/// A follower's view of the lease.
pub(crate) struct Election {
    kv: Bucket<LeaderLease>,
    /// This coordinator's connection, named in the lease it writes.
    client: async_nats::Client,
    me: Identity,
    duration: Duration,
    /// The last revision seen, and when it was first seen.
    seen: Seen,
    /// The holder, as of the last look.
    holder: Option<LeaderLease>,
    /// Connections the servers said closed from their side, newest last
    /// (at most [`GONE_KEPT`]): a lease that names one is held by a process
    /// that is gone, and is taken over now.
    gone: std::collections::VecDeque<(String, u64)>,
}

/// How many closed connections a follower remembers: enough for every
/// client that closes between two looks at the lease.
const GONE_KEPT: usize = 1024;

/// `client`'s connection as its server names it, if connected.
fn connection_of(client: &async_nats::Client) -> Option<(String, u64)> {
    let info = client.server_info();
    (!info.server_id.is_empty()).then_some((info.server_id, info.client_id))
}

/// The outcome of one look at the lease.
pub(crate) enum Look {
    /// Someone else holds it (or nobody does and this coordinator lost the race).
    Follow,
    /// This coordinator holds it now.
    Lead(Box<Lease>),
}

impl Election {
    pub(crate) fn new(
        kv: Bucket<LeaderLease>,
        client: async_nats::Client,
        me: Identity,
        duration: Duration,
    ) -> Self {
        Self {
            kv,
            client,
            me,
            duration,
            seen: Seen::default(),
            holder: None,
            gone: std::collections::VecDeque::new(),
        }
    }

    /// Notes that connection `client` of server `server` closed from its
    /// side; true if it was the holder's (the next look takes over).
    pub(crate) fn connection_closed(&mut self, server: &str, client: u64) -> bool {
        if self.gone.len() == GONE_KEPT {
            self.gone.pop_front();
        }
        self.gone.push_back((server.to_string(), client));
        self.holder
            .as_ref()
            .and_then(|lease| lease.connection.as_ref())
            .is_some_and(|(s, c)| s == server && *c == client)
    }

    /// The current holder, if a live-looking one is known.
    pub(crate) fn holder(&self) -> Option<&LeaderLease> {
        self.holder.as_ref()
    }

    /// Reads the lease and takes it if [`lease::look`] says so.
    pub(crate) async fn look(&mut self) -> Result<Look, CoordinatorError> {
        let entry = self.kv.entry(subjects::LEADER_KEY).await?;
        let observed = match entry {
            None => Observed::Free,
            Some((Err(_), revision)) => {
                self.holder = None;
                Observed::Unreadable { revision }
            }
            Some((Ok(current), revision)) => {
                let holder_gone = current
                    .connection
                    .as_ref()
                    .is_some_and(|connection| self.gone.contains(connection));
                self.holder = Some(current).filter(|l| valid_coordinator_id(&l.coordinator));
                Observed::Held {
                    revision,
                    holder_gone,
                }
            }
        };
        match lease::look(&mut self.seen, observed, Instant::now(), self.duration) {
            Decision::Follow => Ok(Look::Follow),
            Decision::Take { revision, because } => {
                let holder = self.holder.as_ref().map(|l| l.name.clone());
                match because {
                    Because::Free => {}
                    Because::Unreadable => {
                        tracing::warn!(?revision, "the leader lease is unreadable; taking it over")
                    }
                    Because::HolderGone => {
                        tracing::warn!(
                            ?holder,
                            "the leader's connection closed; taking the lease over"
                        )
                    }
                    Because::Expired => {
                        tracing::info!(
                            ?holder,
                            "the leader lease was not renewed in time; taking it over"
                        )
                    }
                }
                self.take(revision).await
            }
        }
    }

    /// Writes the lease for this coordinator: created if `revision` is None,
    /// else replaced only if still at `revision`.
    async fn take(&mut self, revision: Option<u64>) -> Result<Look, CoordinatorError> {
        let sent = Instant::now();
        let record = LeaderLease {
            coordinator: self.me.id.clone(),
            name: self.me.name.clone(),
            acquired_at_ms: now_ms(),
            renewed_at_ms: now_ms(),
            connection: connection_of(&self.client),
        };
        let written = match revision {
            None => self.kv.create(subjects::LEADER_KEY, &record).await?,
            Some(revision) => {
                self.kv
                    .put_if(subjects::LEADER_KEY, &record, revision)
                    .await?
            }
        };
        self.seen.forget();
        let Some(revision) = written else {
            // Another coordinator got there first; look again next time.
            return Ok(Look::Follow);
        };
        self.holder = Some(record.clone());
        Ok(Look::Lead(Box::new(Lease {
            kv: self.kv.clone(),
            client: self.client.clone(),
            record,
            revision,
            confirmed: sent,
            duration: self.duration,
        })))
    }
}

/// The lease, held.
pub(crate) struct Lease {
    kv: Bucket<LeaderLease>,
    client: async_nats::Client,
    record: LeaderLease,
    revision: u64,
    /// When the last successful write of the lease was sent.
    confirmed: Instant,
    duration: Duration,
}

/// Why leadership ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LeaseLost {
    #[error("another coordinator took the leader lease")]
    TakenOver,
    #[error("could not renew the leader lease in time")]
    Unrenewed(#[source] BoxError),
}

impl Lease {
    /// How often to renew.
    pub(crate) fn renew_every(&self) -> Duration {
        lease::renew_every(self.duration)
    }

    /// Whether this coordinator may still act as leader: the lease was
    /// confirmed recently enough that no follower can have taken it yet.
    pub(crate) fn valid(&self) -> bool {
        lease::may_act(self.confirmed, Instant::now(), self.duration)
    }

    /// Renews the lease; an error means this coordinator must stop leading.
    pub(crate) async fn renew(&mut self) -> Result<(), LeaseLost> {
        let sent = Instant::now();
        self.record.renewed_at_ms = now_ms();
        // After a reconnect the connection has another name.
        self.record.connection = connection_of(&self.client);
        let budget = lease::renewal_budget(self.confirmed, sent, self.duration);
        let update = self
            .kv
            .put_if(subjects::LEADER_KEY, &self.record, self.revision);
        let failed = match tokio::time::timeout(budget, update).await {
            Ok(Ok(Some(revision))) => {
                self.revision = revision;
                self.confirmed = sent;
                return Ok(());
            }
            Ok(Ok(None)) => return Err(LeaseLost::TakenOver),
            Ok(Err(e)) => LeaseLost::Unrenewed(Box::new(e)),
            Err(elapsed) => LeaseLost::Unrenewed(Box::new(elapsed)),
        };
        match lease::after_failed_renewal(self.confirmed, Instant::now(), self.duration) {
            AfterFailure::Retry => {
                tracing::warn!(error = %Report(&failed), "leader lease renewal failed; will retry");
                Ok(())
            }
            AfterFailure::Deposed => Err(failed),
        }
    }

    /// Gives the lease up so a follower can lead at once (on clean shutdown).
    pub(crate) async fn release(self) {
        let delete = self.kv.delete_if(subjects::LEADER_KEY, self.revision);
        match tokio::time::timeout(self.duration, delete).await {
            Ok(Ok(())) => tracing::info!("leader lease released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %Report(&e), "could not release the leader lease")
            }
            Err(_) => tracing::warn!("releasing the leader lease timed out"),
        }
    }
}
