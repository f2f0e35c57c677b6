//! The coordinator's errors: one enum, its variants naming what was being
//! done and keeping the cause as a typed source ([`Report`] prints the
//! whole chain for logs and API answers).

pub use crate::store::StoreError;
pub use reef_proto::Report;

/// Any error, kept with its type for the chain of causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong inside the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// A stream, bucket or consumer could not be created or opened.
    #[error("could not set up {what}")]
    Setup {
        what: String,
        #[source]
        source: BoxError,
    },
    /// A read or write of cluster state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message could not be published, or JetStream did not take it.
    #[error("could not publish {what}")]
    Publish {
        what: String,
        #[source]
        source: BoxError,
    },
    /// A command could not be encoded or sealed for its node.
    #[error("could not encode {what}")]
    Encode {
        what: String,
        #[source]
        source: BoxError,
    },
    /// The metrics listener could not be bound.
    #[error("cannot listen for metrics on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A subscription needed to serve the API or apply events failed.
    #[error("could not subscribe to {subject}")]
    Subscription {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The cluster key could not be loaded or created.
    #[error("could not load the cluster key")]
    ClusterKey(#[source] reef_secrets::SecretsError),
    /// A periodic job's tick could not be carried out (yet).
    #[error("periodic job {name}: {reason}")]
    Cron { name: String, reason: String },
}

impl CoordinatorError {
    /// `what` could not be set up.
    pub(crate) fn setup(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CoordinatorError::Setup {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// Whether the cause is a stored value that does not decode (an
    /// internal error, not a passing outage).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, CoordinatorError::Store(StoreError::Corrupt { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_every_cause() {
        let error =
            CoordinatorError::setup("stream REEF_EVENTS", std::io::Error::other("no space"));
        assert_eq!(
            Report(&error).to_string(),
            "could not set up stream REEF_EVENTS: no space"
        );
        let stored = CoordinatorError::from(StoreError::Conflict {
            bucket: "reef-jobs".into(),
            key: "j".into(),
        });
        assert_eq!(
            Report(&stored).to_string(),
            "write to reef-jobs/j kept conflicting with other writers"
        );
    }
}
