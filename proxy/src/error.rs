//! Why the proxy could not forward a request. Each variant's message is what
//! the client reads; [`crate::pages`] turns it into a response.

use std::sync::Arc;

use http::StatusCode;

/// A request the proxy answers itself instead of forwarding.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The request has no Host header, or one that is not a host name.
    #[error("the request has no valid Host header")]
    BadHost,
    /// No app is routed at this host.
    #[error("no app is deployed at {host}")]
    UnknownHost { host: String },
    /// The app is known but none of its instances can take requests.
    #[error("{app} has no healthy instance right now")]
    NoInstance { app: Arc<str> },
    /// The instance refused the connection, did not accept it in time, or
    /// broke it before answering.
    #[error("{app}: instance did not answer")]
    Unreachable { app: Arc<str> },
    /// The instance accepted the request but sent no response headers in time.
    #[error("{app}: instance did not answer in time")]
    TimedOut { app: Arc<str> },
    /// The request body is larger than `max_request_body_bytes`.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The client stopped sending its request body for `client_body_timeout`.
    #[error("the request body stopped arriving")]
    BodyStalled,
    /// The request body's chunked framing is not valid.
    #[error("the request body's chunked framing is not valid")]
    BadBody,
    /// The proxy is shutting down and its grace period is over.
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

impl ProxyError {
    /// The status the client gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadHost | Self::BadBody => StatusCode::BAD_REQUEST,
            Self::UnknownHost { .. } => StatusCode::NOT_FOUND,
            Self::NoInstance { .. } | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            Self::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyStalled => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Whether the client connection must not carry another request: the
    /// rest of this request's body was never read, so the next request's
    /// start cannot be found.
    pub(crate) fn ends_connection(&self) -> bool {
        matches!(
            self,
            Self::BodyTooLarge { .. } | Self::BodyStalled | Self::BadBody | Self::ShuttingDown
        )
    }
}
