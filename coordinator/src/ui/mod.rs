//! The web dashboard every coordinator may serve (`reef coordinator --ui
//! ADDR`): pages embedded in the binary (`assets/`), sign-in by one-time
//! link (`links`) into a signed session cookie (`session`), live views
//! pushed over server-sent events from the buckets' watches (`live`), a
//! job's output followed as it is written (`logs`), and actions.
//!
//! The dashboard decides no permission itself: every read and every action
//! is an API call on the signed-in user's own subject
//! (`reef.api.<role>.<user>.<verb>`), answered by the coordinators' usual
//! dispatch, which checks the role and writes the audit log.

mod creds;
mod http;
pub(crate) mod links;
mod live;
mod logs;
mod pages;
pub(crate) mod session;
mod traffic;

use crate::api::audit::Audit;
use bytes::Bytes;
use http::{full, header, is_tls, json, same_origin, status_of};
use http_body_util::{combinators::BoxBody, BodyExt};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use reef_proto::api::{ApiError, ApiErrorKind, ApiReply, ApiRequest, ApiResponse};
use reef_proto::{now_ms, subjects, Report};
use session::{CookieRefused, Session};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// How long one API call made for the dashboard may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body the dashboard reads.
const MAX_BODY: usize = 16 * 1024;
/// The largest credential sign-in it reads (a JWT may take 64 KiB).
const MAX_CREDS_BODY: usize = 80 * 1024;

/// What serving the dashboard needs; shared by its connections.
pub(crate) struct Ui {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    links: links::Links,
    audit: Audit,
    /// Who holds a credential: a removed user's session ends with it.
    members: crate::store::Bucket<reef_proto::members::Member>,
    /// The key that signs the cluster's credentials (None: sign-in with a
    /// credential is refused here).
    issuer: Option<String>,
    changes: tokio::sync::broadcast::Sender<live::Topic>,
    /// Each app's last hour of requests, from the nodes' heartbeats.
    traffic: Arc<std::sync::Mutex<traffic::Traffic>>,
    /// Open event streams (pages and followed logs), at most [`MAX_STREAMS`].
    streams: Arc<tokio::sync::Semaphore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// The most event streams one coordinator's dashboard keeps open; more are
/// answered 503 until some close.
const MAX_STREAMS: usize = 512;

/// What the dashboard is served with, from the coordinator.
pub(crate) struct Parts {
    pub(crate) client: async_nats::Client,
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) links: links::Links,
    pub(crate) audit: Audit,
    pub(crate) members: crate::store::Bucket<reef_proto::members::Member>,
    /// The key that signs the cluster's credentials.
    pub(crate) issuer: Option<String>,
}

/// Serves the dashboard on `listener` until `shutdown`; waits for its
/// connections and streams to end.
pub(crate) async fn serve(listener: TcpListener, parts: Parts, shutdown: CancellationToken) {
    let Parts {
        client,
        js,
        links,
        audit,
        members,
        issuer,
    } = parts;
    tracing::info!(addr = ?listener.local_addr().ok(), "dashboard listening");
    let (changes, _) = tokio::sync::broadcast::channel(256);
    let tasks = TaskTracker::new();
    let traffic = Arc::default();
    live::watch(&client, &js, &changes, &traffic, &tasks, &shutdown).await;
    let ui = Arc::new(Ui {
        client,
        js,
        links,
        audit,
        members,
        issuer,
        changes,
        traffic,
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        tasks: tasks.clone(),
        shutdown: shutdown.clone(),
    });
    while let Some(stream) = reef_proxy::exposition::accept(&listener, &shutdown, "dashboard").await
    {
        tasks.spawn(connection(stream, ui.clone()));
    }
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("dashboard connections did not close in time");
    }
}

async fn connection(stream: tokio::net::TcpStream, ui: Arc<Ui>) {
    let shutdown = ui.shutdown.clone();
    let service = hyper::service::service_fn(move |request| {
        let ui = ui.clone();
        async move { Ok::<_, Infallible>(ui.answer(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(Duration::from_secs(2), connection.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "dashboard connection ended with an error");
    }
}

/// Why a request carries no usable session.
enum NoSession {
    /// No cookie at all: the sign-in page, nothing to record.
    Absent,
    /// A cookie that was refused: recorded in the audit log.
    Refused(CookieRefused),
}

/// The answer when every stream is taken.
fn too_many_streams() -> Response<Body> {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "error": "this dashboard has as many live views open as it serves: try again later" }),
    )
}

impl Ui {
    /// A place for one more event stream, held until it closes.
    fn stream_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    async fn answer(self: &Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "/app.js") => full(StatusCode::OK, "text/javascript", pages::APP_JS),
            (Method::GET, "/app.css") => full(StatusCode::OK, "text/css", pages::APP_CSS),
            (Method::GET, "/signin.js") => {
                full(StatusCode::OK, "text/javascript", pages::SIGNIN_JS)
            }
            (Method::GET, "/signin") => self.sign_in(&request).await,
            (Method::POST, "/signin/nonce") => match self.links.issue_nonce().await {
                Ok(nonce) => json(StatusCode::OK, &serde_json::json!({ "nonce": nonce })),
                Err(e) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({ "error": e }),
                ),
            },
            (Method::POST, "/signin/creds") => self.sign_in_with_creds(request).await,
            (method, path) => {
                let (session, cookie) = match self.session(&request, path).await {
                    Ok(found) => found,
                    Err(NoSession::Absent) => return pages::signed_out(None),
                    Err(NoSession::Refused(why)) => return pages::signed_out(Some(why)),
                };
                match (method, path) {
                    (Method::GET, "/") => {
                        full(StatusCode::OK, "text/html; charset=utf-8", pages::INDEX)
                    }
                    (Method::GET, "/session") => self.whoami(&session, &cookie),
                    (Method::GET, "/events") => live::stream(self, session),
                    (Method::POST, "/action") => self.act(request, &session, &cookie).await,
                    (Method::GET, path) if path.starts_with("/logs/") => {
                        let download = request.uri().query() == Some("download=1");
                        logs::answer(self, session, &path["/logs/".len()..], download).await
                    }
                    _ => full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
                }
            }
        }
    }

    /// The session a request's cookie carries, with the cookie's value.
    async fn session(
        &self,
        request: &Request<Incoming>,
        path: &str,
    ) -> Result<(Session, String), NoSession> {
        let value = request
            .headers()
            .get_all("cookie")
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find_map(|h| session::cookie_value(h, session::COOKIE))
            .ok_or(NoSession::Absent)?;
        let opened = match session::open(&self.links.key, value, now_ms()) {
            Ok(session) => self.still_member(session).await,
            Err(why) => Err(why),
        };
        match opened {
            Ok(session) => Ok((session, value.to_string())),
            Err(why) => {
                // The name a cookie claims, where it is one, so the entry
                // says whose session someone tried.
                let claimed = value.split('.').next().filter(|u| session::is_token(u));
                self.audit.refused_outside(
                    claimed.unwrap_or("anonymous"),
                    "ui.session",
                    path,
                    &why.to_string(),
                );
                tracing::info!(error = %why, "dashboard session refused");
                Err(NoSession::Refused(why))
            }
        }
    }

    /// `session`, unless its user was removed (`reef user rm`) or given
    /// another role since it signed in. A user whose credential was issued
    /// outside the cluster (`reef cluster creds`) has no record to check.
    async fn still_member(&self, session: Session) -> Result<Session, CookieRefused> {
        let key = reef_proto::members::Member::key_for(session.role.as_str(), &session.user);
        match self.members.get(&key).await {
            Ok(Some((member, _))) if member.revoked_at_s.is_some() => Err(CookieRefused::Revoked),
            Ok(_) => Ok(session),
            Err(e) => {
                tracing::warn!(error = %Report(&e), "dashboard: the members bucket cannot be read");
                Err(CookieRefused::Unchecked)
            }
        }
    }

    /// `GET /signin?token=T`: the link's session in a cookie, then `/`
    /// without the token.
    async fn sign_in(&self, request: &Request<Incoming>) -> Response<Body> {
        let token = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .unwrap_or_default();
        match self.links.redeem(token).await {
            Ok(session) => {
                let secure = is_tls(request.headers());
                let cookie = session::seal(&self.links.key, &session);
                let mut response = full(StatusCode::SEE_OTHER, "text/plain", "signed in\n");
                response.headers_mut().insert("location", header("/"));
                response
                    .headers_mut()
                    .insert("set-cookie", header(&session::set_cookie(&cookie, secure)));
                response
            }
            Err(why) => {
                self.audit.refused_outside(
                    why.user().unwrap_or("anonymous"),
                    "ui.signin",
                    "sign-in link",
                    &why.to_string(),
                );
                tracing::info!(error = %why, "dashboard sign-in refused");
                pages::link_refused(&why)
            }
        }
    }

    /// `POST /signin/creds`: a credential's JWT and its signature of a
    /// nonce this dashboard gave out; the seed never left the browser.
    async fn sign_in_with_creds(&self, request: Request<Incoming>) -> Response<Body> {
        if let Err(why) = same_origin(request.headers()) {
            return json(StatusCode::FORBIDDEN, &serde_json::json!({ "error": why }));
        }
        let secure = is_tls(request.headers());
        let body = match read_body(request, MAX_CREDS_BODY).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |name: &str| value[name].as_str().unwrap_or_default().to_string();
        let (jwt, nonce, signature) = (field("jwt"), field("nonce"), field("signature"));
        let refuse = |user: &str, status: StatusCode, why: String| {
            self.audit
                .refused_outside(user, "ui.signin", "credential", &why);
            tracing::info!(error = %why, "dashboard sign-in with a credential refused");
            json(status, &serde_json::json!({ "error": why }))
        };
        let Some(issuer) = &self.issuer else {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "error": "this coordinator does not know the cluster's signing key: sign in with `reef ui`" }),
            );
        };
        if self.links.spend_nonce(&nonce).await.is_err() {
            return refuse(
                "anonymous",
                StatusCode::UNAUTHORIZED,
                "the sign-in challenge is unknown, used or expired: try again".into(),
            );
        }
        let now_s = now_ms() / 1000;
        let (user, role, issued_at) = match creds::check(&jwt, issuer, &nonce, &signature, now_s) {
            Ok(who) => who,
            Err(why) => return refuse("anonymous", StatusCode::UNAUTHORIZED, why.to_string()),
        };
        let key = reef_proto::members::Member::key_for(role.as_str(), &user);
        match self.members.get(&key).await {
            Ok(Some((member, _))) if member.revoked_at_s.is_some_and(|r| issued_at <= r) => {
                let why = creds::CredsRefused::Revoked(user.clone()).to_string();
                return refuse(&user, StatusCode::UNAUTHORIZED, why);
            }
            Ok(_) => {}
            Err(e) => {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({ "error": format!("the credential cannot be checked now: {}", Report(&e)) }),
                )
            }
        }
        let session = Session {
            user,
            role,
            expires_at_ms: now_ms() + session::SESSION_MS,
        };
        let cookie = session::seal(&self.links.key, &session);
        let mut response = json(StatusCode::OK, &serde_json::json!({ "ok": true }));
        response
            .headers_mut()
            .insert("set-cookie", header(&session::set_cookie(&cookie, secure)));
        response
    }

    /// `GET /session`: who is signed in, the form token, and which verbs
    /// the role may call (from the API's own table, to hide what it may not).
    fn whoami(&self, session: &Session, cookie: &str) -> Response<Body> {
        let may: serde_json::Map<String, serde_json::Value> = subjects::verbs::ALL
            .iter()
            .map(|verb| (verb.to_string(), session.role.may_call(verb).into()))
            .collect();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "user": session.user,
                "role": session.role.as_str(),
                "csrf": session::csrf(&self.links.key, cookie),
                "may": may,
            }),
        )
    }

    /// `POST /action`: one action, as an API call of the signed-in user.
    /// Refused unless it carries the session's form token and, when the
    /// browser names one, comes from the dashboard's own origin.
    async fn act(
        &self,
        request: Request<Incoming>,
        session: &Session,
        cookie: &str,
    ) -> Response<Body> {
        let forbidden =
            |why: &str| json(StatusCode::FORBIDDEN, &serde_json::json!({ "error": why }));
        let headers = request.headers();
        let given = headers
            .get("x-reef-csrf")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !session::csrf_matches(&self.links.key, cookie, given) {
            return forbidden("the form token is missing or wrong: reload the page");
        }
        if let Err(why) = same_origin(headers) {
            return forbidden(why);
        }
        let body = match read_body(request, MAX_BODY).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let action = match pages::action(&body) {
            Ok(action) => action,
            Err(why) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "error": why }),
                )
            }
        };
        match self.call(session, action).await {
            Ok(_) => json(StatusCode::OK, &serde_json::json!({ "ok": true })),
            Err(e) => json(status_of(&e), &serde_json::json!({ "error": e.message })),
        }
    }

    /// Calls the API as `session`'s user: the same subject, checks, audit
    /// and dispatch as that user's own CLI.
    pub(crate) async fn call(
        &self,
        session: &Session,
        request: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let unavailable = |why: String| ApiError::new(ApiErrorKind::Unavailable, why);
        let subject = subjects::api(session.role, &session.user, request.verb());
        let payload =
            reef_proto::encode(&request).map_err(|e| unavailable(Report(&e).to_string()))?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, self.client.request(subject, payload))
            .await
            .map_err(|_| unavailable("no coordinator answered within 5s".into()))?
            .map_err(|e| unavailable(Report(&e).to_string()))?;
        reef_proto::decode::<ApiReply>(&reply.payload)
            .map_err(|e| unavailable(Report(&e).to_string()))?
            .0
    }
}

/// The body of `request`, at most `max` bytes; a larger or cut-off body
/// gets a 400 that says so.
async fn read_body(request: Request<Incoming>, max: usize) -> Result<bytes::Bytes, Response<Body>> {
    match http_body_util::Limited::new(request.into_body(), max)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "the request body is too large or was cut off" }),
        )),
    }
}
