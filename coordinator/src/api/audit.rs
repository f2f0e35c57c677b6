//! The audit log's writer and reader. Whichever coordinator takes a call
//! hands its entry to [`Audit::record`], which never waits: a
//! [`Journal`] writes the entries in order to the audit stream.
//! `audit.list` reads the stream back through an ordered consumer filtered
//! by caller and verb.

use super::{invalid, ApiError};
use crate::journal::Journal;
use crate::store::Store;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use reef_proto::api::{ApiErrorKind, ApiResponse};
use reef_proto::audit::{self, AuditEntry, AuditQuery, Outcome};
use reef_proto::roles::Role;
use reef_proto::{decode, now_ms, subjects, Report};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The most entries one `audit.list` reads before it answers with what it
/// has (the newest of those), marked truncated.
const MAX_SCANNED: u64 = 200_000;
/// How long one `audit.list` may read.
const READ_WAIT: Duration = Duration::from_secs(10);

/// Hands entries to the writer; cheap to clone.
#[derive(Clone)]
pub(crate) struct Audit {
    journal: Journal,
    coordinator: Arc<str>,
}

impl Audit {
    /// Starts the writer, which publishes with `js` until `shutdown`, then
    /// writes what is queued and stops.
    pub(crate) fn start(
        js: jetstream::Context,
        coordinator: &str,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            journal: Journal::start("audit entries", js, shutdown),
            coordinator: coordinator.into(),
        }
    }

    /// Records a call of `verb` on `target` ([`audit::target`] of the
    /// request) by `caller` with `role` that ended with `result`, if the
    /// audit log keeps such a call: every call that was refused, and every
    /// allowed one that changes something.
    pub(crate) fn record(
        &self,
        (role, caller): (Role, &str),
        (verb, target): (&str, String),
        result: &Result<ApiResponse, ApiError>,
    ) {
        let outcome = match result {
            Ok(response) => Outcome::Done {
                result: audit::result(response),
            },
            Err(e) if e.kind == ApiErrorKind::Forbidden => Outcome::Refused {
                reason: audit::clip(&e.message),
            },
            Err(e) => Outcome::Failed {
                reason: audit::clip(&e.message),
            },
        };
        if matches!(outcome, Outcome::Done { .. } | Outcome::Failed { .. }) && !audit::records(verb)
        {
            return;
        }
        let entry = AuditEntry {
            at_ms: now_ms(),
            role: role.as_str().to_string(),
            caller: caller.to_string(),
            verb: verb.to_string(),
            target,
            outcome,
            coordinator: self.coordinator.to_string(),
        };
        let subject = subjects::audit(&entry.role, &entry.caller, &entry.verb);
        self.journal.write(subject, &entry);
    }

    /// Records a refusal that no API call made: a sign-in link or session
    /// cookie the dashboard refused. `caller` is the user it named, or
    /// `anonymous`; the role is `web`, since nothing vouched for one.
    pub(crate) fn refused_outside(&self, caller: &str, verb: &str, target: &str, reason: &str) {
        let entry = AuditEntry {
            at_ms: now_ms(),
            role: "web".to_string(),
            caller: caller.to_string(),
            verb: verb.to_string(),
            target: audit::clip(target),
            outcome: Outcome::Refused {
                reason: audit::clip(reason),
            },
            coordinator: self.coordinator.to_string(),
        };
        let subject = subjects::audit(&entry.role, &entry.caller, &entry.verb);
        self.journal.write(subject, &entry);
    }

    /// The count of entries dropped because the writer fell behind.
    pub(crate) fn dropped(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.journal.dropped()
    }

    /// Waits for the writer to write what is queued and stop; the
    /// shutdown token given to [`Audit::start`] must be cancelled first.
    pub(crate) async fn close(&self) {
        self.journal.close().await;
    }
}

/// The newest entries `query` asks for, oldest first, and whether older
/// ones matched too.
pub(crate) async fn list(
    store: &Store,
    query: &AuditQuery,
) -> Result<(Vec<AuditEntry>, bool), ApiError> {
    query.validate().map_err(invalid)?;
    let unavailable = |e: String| {
        ApiError::new(
            ApiErrorKind::Unavailable,
            format!("the audit log cannot be read: {e}"),
        )
    };
    let stream = store
        .js
        .get_stream(subjects::AUDIT_STREAM)
        .await
        .map_err(|e| unavailable(Report(&e).to_string()))?;
    let deliver_policy = match query.since_ms {
        0 => consumer::DeliverPolicy::All,
        since => {
            let start = now_ms().saturating_sub(since);
            let start =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start) * 1_000_000)
                    .map_err(|e| invalid(format!("since: {e}")))?;
            consumer::DeliverPolicy::ByStartTime { start_time: start }
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: query.filter(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(Report(&e).to_string()))?;
    let backlog = consumer.cached_info().num_pending;
    let limit = query.limit as usize;
    let mut newest = VecDeque::with_capacity(limit.min(backlog as usize));
    let mut truncated = backlog > MAX_SCANNED;
    if backlog == 0 {
        return Ok((Vec::new(), false));
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable(Report(&e).to_string()))?;
    // The oldest of a long backlog are skipped unread.
    let skip = backlog.saturating_sub(MAX_SCANNED);
    let read = async {
        let mut seen = 0u64;
        while seen < backlog {
            let Some(msg) = messages.next().await else {
                break;
            };
            let msg = msg.map_err(|e| unavailable(Report(&e).to_string()))?;
            seen += 1;
            if seen <= skip {
                continue;
            }
            match decode::<AuditEntry>(&msg.payload) {
                Ok(entry) => {
                    if newest.len() == limit {
                        newest.pop_front();
                        truncated = true;
                    }
                    newest.push_back(entry);
                }
                Err(e) => {
                    tracing::debug!(subject = %msg.subject, error = %Report(&e), "an audit entry that does not decode was skipped");
                }
            }
        }
        Ok::<(), ApiError>(())
    };
    let read = tokio::time::timeout(READ_WAIT, read).await;
    // What was read in time, the newest of it, is still an answer.
    let timed_out = match read {
        Ok(result) => {
            result?;
            false
        }
        Err(_) => true,
    };
    Ok((newest.into(), truncated || timed_out))
}
