//! A job's output for the dashboard: followed as it is written (each
//! whole line a server-sent event) or downloaded as text. Whether the user
//! may see the job is the API's answer to its `job.get`; only then does the
//! coordinator read the job's subjects of the logs stream.

use super::session::Session;
use super::{full, json, status_of, Body, Ui};
use async_nats::jetstream::consumer;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::job::JobRecord;
use reef_proto::log_batch::{self, JoinedLine, LineJoiner};
use reef_proto::subjects::{self, Output};
use reef_proto::{JobId, Report};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The most a download carries; the start of a longer log is left out.
const MAX_DOWNLOAD: usize = 16 << 20;

/// `GET /logs/<job>` (follow) or `GET /logs/<job>?download=1`.
pub(crate) async fn answer(
    ui: &Arc<Ui>,
    session: Session,
    job: &str,
    download: bool,
) -> Response<Body> {
    let Ok(id) = job.parse::<JobId>() else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": format!("{job:?} is not a job id") }),
        );
    };
    let job = match ui.call(&session, ApiRequest::GetJob(id)).await {
        Ok(ApiResponse::Job(job)) => *job,
        Ok(_) => {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "error": "unexpected answer" }),
            )
        }
        Err(e) => return json(status_of(&e), &serde_json::json!({ "error": e.message })),
    };
    let messages = match open(ui, &job).await {
        Ok(messages) => messages,
        Err(e) => {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "error": e }),
            )
        }
    };
    if download {
        return downloaded(messages, &job).await;
    }
    let Some(slot) = ui.stream_slot() else {
        return super::too_many_streams();
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let shutdown = ui.shutdown.clone();
    ui.tasks.spawn(async move {
        let _slot = slot;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = follow(messages, tx) => {}
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = full(StatusCode::OK, "text/event-stream", "");
    *response.body_mut() = BodyExt::boxed(StreamBody::new(body));
    response
}

/// The job's messages from the first, and how many there are now.
async fn open(ui: &Ui, job: &JobRecord) -> Result<(consumer::pull::Ordered, u64), String> {
    let stream = ui
        .js
        .get_stream(subjects::LOGS_STREAM)
        .await
        .map_err(|e| Report(&e).to_string())?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subjects::job_logs(&job.spec.owner, job.id),
            ..Default::default()
        })
        .await
        .map_err(|e| Report(&e).to_string())?;
    let pending = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| Report(&e).to_string())?;
    Ok((messages, pending))
}

/// Whole lines from batches, each process's pieces in its own sequence
/// (a batch delivered twice gives its lines once).
#[derive(Default)]
struct Lines {
    next: HashMap<(String, u64), u64>,
    joiners: HashMap<String, LineJoiner>,
}

impl Lines {
    fn take(&mut self, subject: &str, payload: &[u8]) -> Vec<JoinedLine> {
        let Ok(batch) = log_batch::decode(payload) else {
            return Vec::new();
        };
        let next = self
            .next
            .entry((subject.to_string(), batch.source))
            .or_insert(0);
        let joiner = self.joiners.entry(subject.to_string()).or_default();
        let mut lines = Vec::new();
        for piece in &batch.pieces {
            if piece.seq < *next {
                continue;
            }
            *next = piece.seq + 1;
            lines.extend(joiner.push(piece));
        }
        lines
    }
}

async fn follow((mut messages, _): (consumer::pull::Ordered, u64), tx: mpsc::Sender<Bytes>) {
    let mut lines = Lines::default();
    let mut keepalive = tokio::time::interval(Duration::from_secs(15));
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return,
            _ = keepalive.tick() => {
                if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() { return; }
                continue;
            }
            message = messages.next() => message,
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::debug!(error = %Report(&e), "dashboard: a log message could not be read");
                continue;
            }
            None => return,
        };
        for line in lines.take(&message.subject, &message.payload) {
            let event = serde_json::json!({
                "stderr": line.output == Output::Stderr,
                "text": String::from_utf8_lossy(&line.bytes),
            });
            if tx
                .send(Bytes::from(format!("data: {event}\n\n")))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

async fn downloaded(
    (mut messages, pending): (consumer::pull::Ordered, u64),
    job: &JobRecord,
) -> Response<Body> {
    let mut lines = Lines::default();
    let mut text = Vec::new();
    let mut seen = 0;
    while seen < pending {
        let message = match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(message))) => message,
            _ => break,
        };
        seen += 1;
        for line in lines.take(&message.subject, &message.payload) {
            text.extend_from_slice(&line.bytes);
            if line.newline {
                text.push(b'\n');
            }
        }
    }
    if text.len() > MAX_DOWNLOAD {
        text.drain(..text.len() - MAX_DOWNLOAD);
    }
    let mut response = full(StatusCode::OK, "text/plain; charset=utf-8", text);
    if let Ok(value) = format!("attachment; filename=\"job-{}.log\"", job.id).parse() {
        response.headers_mut().insert("content-disposition", value);
    }
    response
}
