//! What can go wrong reading or writing a bucket.

use crate::error::BoxError;

/// A failed read or write of one bucket, naming the bucket and key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// JetStream did not answer, or refused.
    #[error("{bucket}/{key}: the state store failed")]
    Io {
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    /// A stored value could not be decoded.
    #[error("stored {bucket}/{key} is corrupt")]
    Corrupt {
        bucket: String,
        key: String,
        #[source]
        source: reef_proto::DecodeError,
    },
    /// A value could not be encoded.
    #[error("{bucket}/{key}: the value could not be encoded")]
    Encode {
        bucket: String,
        key: String,
        #[source]
        source: reef_proto::EncodeError,
    },
    /// A key meant to be new exists already.
    #[error("{bucket}/{key} exists already")]
    Exists { bucket: String, key: String },
    /// A compare-and-set write kept losing to other writers.
    #[error("write to {bucket}/{key} kept conflicting with other writers")]
    Conflict { bucket: String, key: String },
}
