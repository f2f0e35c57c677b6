//! The agent's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory is unusable.
    #[error("data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}
