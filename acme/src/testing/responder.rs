//! [`ChallengeResponder`]: a small real HTTP server on 127.0.0.1 that answers
//! `GET /.well-known/acme-challenge/TOKEN` with what a [`MemoryChallenges`]
//! holds, as a node proxy does in production, and counts the requests so a
//! test can prove that validation really reached it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::pebble::PebbleError;
use crate::challenge::MemoryChallenges;

/// How long one connection may stay open; pebble's validation takes far less.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A running HTTP-01 responder; stopped when dropped or by [`ChallengeResponder::shutdown`].
pub struct ChallengeResponder {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ChallengeResponder {
    /// Listens on a free port of 127.0.0.1 and answers from `answers`.
    pub async fn start(answers: MemoryChallenges) -> Result<Self, PebbleError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|err| PebbleError::Setup(format!("responder listener: {err}")))?;
        let port = listener
            .local_addr()
            .map_err(|err| PebbleError::Setup(format!("responder address: {err}")))?
            .port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, answers, requests.clone(), stop.clone()));
        Ok(Self {
            port,
            requests,
            stop,
            task: Some(task),
        })
    }

    /// The port it listens on (give it to [`super::PebbleOptions::new`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many challenge requests it has answered (found or not).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            // Ends promptly once cancelled; a panic in it has already been reported.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for ChallengeResponder {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts until stopped; every connection task is owned by a `JoinSet`
/// dropped (and so aborted) with this future.
async fn serve(
    listener: TcpListener,
    answers: MemoryChallenges,
    requests: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let answers = answers.clone();
        let requests = requests.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let response = answer(&answers, &requests, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A client that goes away or stalls only ends its own connection.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn answer(
    answers: &MemoryChallenges,
    requests: &AtomicUsize,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    requests.fetch_add(1, Ordering::SeqCst);
    let found = (request.method() == http::Method::GET)
        .then(|| answers.answer(request.uri().path()))
        .flatten();
    let (status, body) = match found {
        Some(key_authorization) => (StatusCode::OK, key_authorization),
        None => (StatusCode::NOT_FOUND, "no such challenge\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
