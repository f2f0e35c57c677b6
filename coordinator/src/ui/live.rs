//! Live views: each coordinator watches the buckets the pages show (the
//! leader bucket's `nodes`, apps, releases, instances, jobs, certificates)
//! and the audit log's subjects, and tells every open page which view
//! changed; the page's stream then reads that view again as its user and
//! pushes it as a server-sent event. Nothing polls.

use super::session::Session;
use super::traffic::Traffic;
use super::{Body, Ui};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use reef_proto::api::{ApiRequest, ApiResponse, JobQuery};
use reef_proto::audit::AuditQuery;
use reef_proto::subjects::{self, verbs};
use reef_proto::Report;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A view a page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Topic {
    Nodes,
    Apps,
    Jobs,
    Certs,
    Audit,
    Traffic,
}

impl Topic {
    const ALL: [Topic; 6] = [
        Topic::Nodes,
        Topic::Apps,
        Topic::Jobs,
        Topic::Certs,
        Topic::Audit,
        Topic::Traffic,
    ];

    fn name(self) -> &'static str {
        match self {
            Topic::Nodes => "nodes",
            Topic::Apps => "apps",
            Topic::Jobs => "jobs",
            Topic::Certs => "certs",
            Topic::Audit => "audit",
            Topic::Traffic => "traffic",
        }
    }

    /// The verb that reads the view, which the user's role must allow.
    fn verb(self) -> &'static str {
        match self {
            Topic::Nodes => verbs::NODE_LIST,
            Topic::Apps => verbs::APP_LIST,
            Topic::Jobs => verbs::JOB_LIST,
            Topic::Certs => verbs::CERT_LIST,
            Topic::Audit => verbs::AUDIT_LIST,
            Topic::Traffic => verbs::APP_LIST,
        }
    }

    /// The view a write to `key` of `bucket` changes.
    fn of(bucket: &str, key: &str) -> Option<Topic> {
        match bucket {
            subjects::LEADER_BUCKET => (key == "nodes").then_some(Topic::Nodes),
            subjects::APPS_BUCKET | subjects::RELEASES_BUCKET | subjects::INSTANCES_BUCKET => {
                Some(Topic::Apps)
            }
            subjects::JOBS_BUCKET => Some(Topic::Jobs),
            subjects::CERTS_BUCKET => (!key.starts_with('_')).then_some(Topic::Certs),
            _ => None,
        }
    }
}

/// How long a stream gathers changes before it reads views again, so a
/// burst of writes is one read.
const SETTLE: Duration = Duration::from_millis(150);
/// A comment line this often keeps idle connections open through proxies.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// The most apps whose release history the apps view carries.
const APPS_WITH_HISTORY: usize = 50;

/// How often pages hear of the traffic charts and the nodes' heartbeats.
const TRAFFIC_EVERY: Duration = Duration::from_secs(5);

/// Starts the watches that feed `changes` (and `traffic`, from the
/// nodes' heartbeats), on `tasks`, until `shutdown`.
pub(crate) async fn watch(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    changes: &broadcast::Sender<Topic>,
    traffic: &Arc<Mutex<Traffic>>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    match client.subscribe(subjects::HEARTBEAT_WILDCARD).await {
        Ok(beats) => {
            let (changes, traffic, shutdown) = (changes.clone(), traffic.clone(), shutdown.clone());
            tasks.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = follow_traffic(beats, &traffic, &changes) => {}
                }
            });
        }
        Err(e) => tracing::warn!(error = %Report(&e), "dashboard: heartbeats cannot be followed"),
    }
    for bucket in [
        subjects::LEADER_BUCKET,
        subjects::APPS_BUCKET,
        subjects::RELEASES_BUCKET,
        subjects::INSTANCES_BUCKET,
        subjects::JOBS_BUCKET,
        subjects::CERTS_BUCKET,
    ] {
        let (js, changes, shutdown) = (js.clone(), changes.clone(), shutdown.clone());
        tasks.spawn(async move {
            while !shutdown.is_cancelled() {
                if let Err(e) = follow_bucket(&js, bucket, &changes, &shutdown).await {
                    tracing::warn!(bucket, error = %e, "dashboard: a watch ended; watching again");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
    let audit = format!("{}.>", subjects::AUDIT_PREFIX);
    match client.subscribe(audit).await {
        Ok(mut entries) => {
            let (changes, shutdown) = (changes.clone(), shutdown.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        entry = entries.next() => match entry {
                            Some(_) => { let _ = changes.send(Topic::Audit); }
                            None => break,
                        },
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %Report(&e), "dashboard: the audit log cannot be followed")
        }
    }
}

async fn follow_traffic(
    mut beats: async_nats::Subscriber,
    traffic: &Mutex<Traffic>,
    changes: &broadcast::Sender<Topic>,
) {
    let mut told = tokio::time::Instant::now();
    while let Some(msg) = beats.next().await {
        let Ok(beat) = reef_proto::decode::<reef_proto::node::Heartbeat>(&msg.payload) else {
            continue;
        };
        // A node speaks only for itself: the server lets it publish on its own subject alone.
        if msg.subject.as_str() != subjects::heartbeat(beat.node) {
            continue;
        }
        traffic.lock().unwrap_or_else(|e| e.into_inner()).observe(
            &beat.node.to_string(),
            &beat.traffic,
            reef_proto::now_ms(),
        );
        if told.elapsed() >= TRAFFIC_EVERY {
            told = tokio::time::Instant::now();
            let _ = changes.send(Topic::Traffic);
        }
    }
}

async fn follow_bucket(
    js: &async_nats::jetstream::Context,
    bucket: &'static str,
    changes: &broadcast::Sender<Topic>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let kv = js
        .get_key_value(bucket)
        .await
        .map_err(|e| Report(&e).to_string())?;
    let mut updates = kv.watch_all().await.map_err(|e| Report(&e).to_string())?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            update = updates.next() => match update {
                Some(Ok(entry)) => {
                    if let Some(topic) = Topic::of(bucket, &entry.key) {
                        let _ = changes.send(topic);
                    }
                }
                Some(Err(e)) => return Err(Report(&e).to_string()),
                None => return Err("the watch closed".into()),
            },
        }
    }
}

/// `GET /events`: every view the user's role may read at once, then each
/// again whenever it changes.
pub(crate) fn stream(ui: &Arc<Ui>, session: Session) -> Response<Body> {
    let Some(slot) = ui.stream_slot() else {
        return super::too_many_streams();
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let changes = ui.changes.subscribe();
    let (calls, shutdown) = (ui.clone(), ui.shutdown.clone());
    ui.tasks.spawn(async move {
        let _slot = slot;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = push(calls, session, tx, changes) => {}
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = super::full(StatusCode::OK, "text/event-stream", "");
    *response.body_mut() = BodyExt::boxed(StreamBody::new(body));
    response
}

async fn push(
    calls: Arc<Ui>,
    session: Session,
    tx: mpsc::Sender<Bytes>,
    mut changes: broadcast::Receiver<Topic>,
) {
    let topics: Vec<Topic> = Topic::ALL
        .into_iter()
        .filter(|t| session.role.may_call(t.verb()))
        .collect();
    let mut due: BTreeSet<Topic> = topics.iter().copied().collect();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    loop {
        for topic in std::mem::take(&mut due) {
            let event = view(&calls, &session, topic).await;
            if tx.send(event).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = keepalive.tick() => {
                if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                    return;
                }
            }
            change = changes.recv() => {
                match change {
                    Ok(topic) => { due.insert(topic); }
                    Err(broadcast::error::RecvError::Lagged(_)) => due.extend(topics.iter().copied()),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                tokio::time::sleep(SETTLE).await;
                while let Ok(topic) = changes.try_recv() {
                    due.insert(topic);
                }
                due.retain(|t| topics.contains(t));
            }
        }
    }
}

/// One view, read as the user, as an event: `{"data": ...}` or `{"error": ...}`.
async fn view(ui: &Ui, session: &Session, topic: Topic) -> Bytes {
    let call = |request| ui.call(session, request);
    let data = match topic {
        Topic::Nodes => call(ApiRequest::ListNodes).await.map(|r| match r {
            ApiResponse::Nodes(nodes) => serde_json::json!(nodes),
            _ => serde_json::Value::Null,
        }),
        Topic::Apps => match call(ApiRequest::ListApps).await {
            Ok(ApiResponse::Apps(apps)) => {
                let mut history = serde_json::Map::new();
                for app in apps.iter().take(APPS_WITH_HISTORY) {
                    let name = app.record.name.clone();
                    if let Ok(ApiResponse::Releases(releases)) =
                        call(ApiRequest::ListReleases(name.clone())).await
                    {
                        let brief: Vec<_> = releases
                            .iter()
                            .map(|r| serde_json::json!({ "version": r.version, "created_at_ms": r.created_at_ms, "copied_from": r.copied_from }))
                            .collect();
                        history.insert(name, brief.into());
                    }
                }
                Ok(serde_json::json!({ "apps": apps, "releases": history }))
            }
            Ok(_) => Ok(serde_json::Value::Null),
            Err(e) => Err(e),
        },
        Topic::Jobs => call(ApiRequest::QueryJobs(JobQuery::newest(100)))
            .await
            .map(|r| match r {
                ApiResponse::Jobs { jobs, .. } => serde_json::json!(jobs),
                _ => serde_json::Value::Null,
            }),
        Topic::Certs => call(ApiRequest::ListCertificates).await.map(|r| match r {
            ApiResponse::Certificates(certs) => serde_json::json!(certs),
            _ => serde_json::Value::Null,
        }),
        Topic::Traffic => {
            let traffic = ui.traffic.lock().unwrap_or_else(|e| e.into_inner());
            Ok(serde_json::json!({
                "apps": traffic.hour(reef_proto::now_ms()),
                "heard": traffic.heard(),
            }))
        }
        Topic::Audit => call(ApiRequest::ListAudit(AuditQuery {
            since_ms: 0,
            user: None,
            verb: None,
            limit: 100,
        }))
        .await
        .map(|r| match r {
            ApiResponse::Audit { entries, .. } => serde_json::json!(entries),
            _ => serde_json::Value::Null,
        }),
    };
    let payload = match data {
        Ok(data) => serde_json::json!({ "data": data }),
        Err(e) => serde_json::json!({ "error": e.message }),
    };
    Bytes::from(format!("event: {}\ndata: {payload}\n\n", topic.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_change_the_views_that_show_them() {
        assert_eq!(
            Topic::of(subjects::LEADER_BUCKET, "nodes"),
            Some(Topic::Nodes)
        );
        assert_eq!(Topic::of(subjects::LEADER_BUCKET, "lease"), None);
        assert_eq!(
            Topic::of(subjects::INSTANCES_BUCKET, "x"),
            Some(Topic::Apps)
        );
        assert_eq!(Topic::of(subjects::CERTS_BUCKET, "_acme-account.x"), None);
        assert_eq!(Topic::of(subjects::SECRETS_BUCKET, "a.B"), None);
    }
}
