//! The coordinator's errors.

/// What can go wrong inside the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// A stream or bucket could not be created or opened.
    #[error("could not set up {what}: {reason}")]
    Setup { what: String, reason: String },
    /// A read or write of cluster state in JetStream failed.
    #[error("state store: {0}")]
    Store(String),
    /// A stored value could not be decoded.
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    /// A compare-and-set write kept losing to other writers.
    #[error("write to {key} kept conflicting with other writers")]
    Conflict { key: String },
    /// A subscription needed to serve the API or apply events ended.
    #[error("NATS subscription failed: {0}")]
    Subscription(String),
}

impl CoordinatorError {
    pub(crate) fn store(err: impl std::fmt::Display) -> Self {
        CoordinatorError::Store(err.to_string())
    }
}
