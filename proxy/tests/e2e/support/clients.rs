//! Clients beyond the pooled HTTP/1.1 one: HTTP/2 (over TLS or h2c) and
//! HTTP/1.1 with a streamed request body, each on a connection of its own.

use bytes::Bytes;
use http::Request;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::within;

/// The request body the connection clients send.
pub type ClientBody = BoxBody<Bytes, std::io::Error>;

/// An HTTP/2 connection over `io` (prior knowledge, or after ALPN chose h2).
pub async fn h2_client<I>(io: I) -> http2::SendRequest<ClientBody>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = within(http2::handshake(TokioExecutor::new(), TokioIo::new(io)))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/1.1 connection over `io`.
pub async fn h1_client<I>(io: I) -> http1::SendRequest<ClientBody>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = within(http1::handshake(TokioIo::new(io)))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection.with_upgrades());
    sender
}

/// Sends `request` on an HTTP/2 connection and waits for the response headers.
pub async fn h2_send(
    sender: &mut http2::SendRequest<ClientBody>,
    request: Request<ClientBody>,
) -> http::Response<Incoming> {
    within(sender.send_request(request))
        .await
        .expect("an HTTP/2 response")
}

/// An empty request body.
pub fn no_body() -> ClientBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}
