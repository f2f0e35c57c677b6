//! One client connection on the fast path, request after request:
//!
//! 1. read a request head (within the header timeout; an idle connection
//!    also ends when shutdown begins) and decide whether the fast path takes it;
//! 2. send the rewritten head to the instance, with the body bytes already
//!    read, over an idle upstream connection from the pool, or a new one;
//! 3. read the response head (within the upstream timeout) and send the
//!    client its rewritten head, then the body as it arrives, watching for
//!    the client going away. A body still coming when the head went out is
//!    sent meanwhile, as the client sends it: an instance may answer before
//!    it has read all of it, or stream its answer as it reads;
//! 4. give the upstream connection back to the pool, and keep the client's
//!    for its next request, when their framing allows.
//!
//! A pooled connection found closed before any response byte came back is
//! replaced by a new one and the request sent again, once, when that is
//! safe: an idempotent method and a body that went out whole with the head.

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::buffer::Buffer;
use super::framing::{BodyFault, Framing};
use super::pool::Upstream;
use super::request::{self, client_ip, Forwarding, Parsed, RequestBody};
use super::response::{self, ResponseHead};
use super::{FastPath, Rewind, Served, MAX_HEADERS};
use crate::access::AccessRecord;
use crate::acme::CHALLENGE_PREFIX;
use crate::error::ProxyError;
use crate::pages::error_bytes;
use crate::table::Pick;

/// Serves `io` from `client` until it closes, or until a request needs the
/// full path, which then gets the connection and the bytes read so far.
pub(crate) async fn serve<I>(fast: &FastPath, io: I, client: SocketAddr) -> Served<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn {
        fast,
        io,
        client,
        client_ip: client_ip(client.ip()),
        inbuf: Buffer::new(CLIENT_BUFFER, fast.max_header_bytes),
        out: Vec::with_capacity(HEAD_CAPACITY),
        reply: Vec::with_capacity(HEAD_CAPACITY),
    };
    let served = loop {
        match conn.next_request().await {
            Next::Forward(plan) => {
                if !conn.exchange(plan).await {
                    break Served::Closed;
                }
                conn.trim();
            }
            Next::Close => break Served::Closed,
            Next::Fallback => {
                let prefix = conn.inbuf.take();
                return Served::Fallback(Rewind::new(prefix, conn.io));
            }
        }
    };
    // Sends the end of the stream (and TLS close_notify) rather than just dropping.
    let _ = tokio::time::timeout(fast.header_timeout, conn.io.shutdown()).await;
    served
}

/// What a client connection's read buffer starts at: most request heads fit.
const CLIENT_BUFFER: usize = 4 * 1024;

/// What the head buffers start at, and go back to once a large head or
/// body chunk made them grow.
const HEAD_CAPACITY: usize = 1024;

/// What the connection does next.
enum Next {
    Forward(Plan),
    Close,
    Fallback,
}

/// A request the fast path forwards: the upstream head is in `Conn::out`.
struct Plan {
    head_len: usize,
    body: RequestBody,
    close: bool,
    head_request: bool,
    idempotent: bool,
    app: Arc<str>,
    pick: Pick,
    started: std::time::Instant,
    /// Written when dropped; boxed, as it exists only while the log is on.
    record: Option<Box<AccessRecord>>,
}

/// The response's progress: its head (after any informational ones), then its body.
struct Download {
    head: Option<ResponseHead>,
    body: Framing,
    /// Some bytes of a response arrived.
    received: bool,
    head_request: bool,
    close_client: bool,
}

/// Why an exchange ended before its response was complete.
enum Failed {
    /// The upstream connection ended before any byte of a response.
    Closed,
    /// It ended in the middle of the response, or sent one that cannot be forwarded.
    Broken,
    TimedOut,
    ClientGone,
    /// The request's body broke a limit, or its framing is not valid.
    Refused(ProxyError),
}

impl Download {
    fn new(head_request: bool, close_client: bool) -> Self {
        Self {
            head: None,
            body: Framing::Done,
            received: false,
            head_request,
            close_client,
        }
    }

    fn is_done(&self) -> bool {
        self.head.is_some() && self.body.is_done()
    }

    /// Uses the bytes in `upbuf`: completes the head (informational heads
    /// pass on), then takes the body's bytes. What the client gets is
    /// appended to `reply`; returns how many body bytes that is.
    fn advance(&mut self, upbuf: &mut Buffer, reply: &mut Vec<u8>) -> Result<usize, Failed> {
        while self.head.is_none() {
            if upbuf.is_empty() {
                return Ok(0);
            }
            self.received = true;
            match response::parse(upbuf.filled(), self.head_request, self.close_client, reply) {
                Ok(Some(head)) => {
                    upbuf.consume(head.len);
                    if head.status >= 200 {
                        self.body = Framing::of_response(head.body);
                        self.head = Some(head);
                    }
                }
                Ok(None) if upbuf.is_full() => return Err(Failed::Broken),
                Ok(None) => return Ok(0),
                Err(error) => {
                    tracing::warn!(%error, "instance sent a response that cannot be forwarded");
                    return Err(Failed::Broken);
                }
            }
        }
        let Ok(take) = self.body.advance(upbuf.filled(), u64::MAX) else {
            tracing::warn!("instance sent a chunked body with bad framing");
            return Err(Failed::Broken);
        };
        reply.extend_from_slice(&upbuf.filled()[..take]);
        upbuf.consume(take);
        Ok(take)
    }

    /// The upstream closed its connection: the end of a body that runs
    /// until then, and a failure anywhere else.
    fn closed(&mut self) -> Result<(), Failed> {
        match (&self.head, &self.body) {
            (Some(_), Framing::UntilClose) => {
                self.body = Framing::Done;
                Ok(())
            }
            (None, _) if !self.received => Err(Failed::Closed),
            _ => Err(Failed::Broken),
        }
    }
}

struct Conn<'f, I> {
    fast: &'f FastPath,
    io: I,
    client: SocketAddr,
    client_ip: String,
    /// Bytes from the client not used yet.
    inbuf: Buffer,
    /// The head (and first body bytes) going upstream.
    out: Vec<u8>,
    /// The head (and first body bytes) going to the client.
    reply: Vec<u8>,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<'_, I> {
    /// Reads until a request head is complete and decides what to do with it.
    async fn next_request(&mut self) -> Next {
        let deadline = Instant::now() + self.fast.header_timeout;
        loop {
            if self.inbuf.is_empty() {
                if self.fast.draining.is_cancelled() {
                    return Next::Close;
                }
            } else {
                match plan(
                    self.fast,
                    self.inbuf.filled(),
                    &mut self.out,
                    &self.client_ip,
                    self.client,
                ) {
                    Parsed::Ready(plan) => return Next::Forward(plan),
                    Parsed::Fallback => return Next::Fallback,
                    // Too large for the fast path: the full path answers 431.
                    Parsed::Partial if self.inbuf.is_full() => return Next::Fallback,
                    Parsed::Partial => {}
                }
            }
            let idle = self.inbuf.is_empty();
            let read = tokio::select! {
                biased;
                () = self.fast.draining.cancelled(), if idle => return Next::Close,
                read = tokio::time::timeout_at(deadline, self.inbuf.fill(&mut self.io)) => read,
            };
            match read {
                Ok(Ok(read)) if read > 0 => {}
                // Closed, broken, or too slow: nothing to answer.
                _ => return Next::Close,
            }
        }
    }

    /// Forwards one request and its response; true if the client connection
    /// can carry another request.
    async fn exchange(&mut self, mut plan: Plan) -> bool {
        self.inbuf.consume(plan.head_len);
        let mut body = Framing::of_request(plan.body);
        // The body bytes already read go out with the head.
        let first = match self.take_body(&mut body) {
            Ok(first) => first,
            Err(error) => return self.refuse(error, &mut plan, false).await,
        };
        self.out.extend_from_slice(&self.inbuf.filled()[..first]);
        self.inbuf.consume(first);
        let whole = body.is_done();
        let backend = Arc::clone(&plan.pick.backend);
        let addr = backend.addr;
        let deadline = Instant::now() + self.fast.upstream_timeout;
        let close_client = plan.close || self.fast.draining.is_cancelled();
        let mut fresh_only = false;
        loop {
            let Ok((mut upstream, reused)) = self.fast.pool.get(&backend, fresh_only).await else {
                let error = ProxyError::Unreachable {
                    app: Arc::clone(&plan.app),
                };
                return self.refuse(error, &mut plan, whole).await;
            };
            let mut download = Download::new(plan.head_request, close_client);
            self.reply.clear();
            let outcome = match upstream.stream.write_all(&self.out).await {
                Err(_) => Err(Failed::Closed),
                Ok(()) if whole => {
                    self.receive(&mut upstream, &mut download, deadline, &mut plan)
                        .await
                }
                Ok(()) => {
                    self.duplex(&mut upstream, &mut body, &mut download, deadline, &mut plan)
                        .await
                }
            };
            let failed = match (outcome, download.head) {
                (Ok(()), Some(head)) => {
                    // Bytes after the response would be the start of a
                    // response to nothing: such a connection is not reused.
                    if head.reusable && upstream.buf.is_empty() && body.is_done() {
                        self.fast.pool.put(addr, upstream);
                    }
                    return !head.closes_client
                        && body.is_done()
                        && !self.fast.draining.is_cancelled();
                }
                // A finished download always has its head.
                (Ok(()), None) => Failed::Broken,
                (Err(failed), None) => failed,
                // The client already has part of the response: ending the
                // connection is all that tells it the rest is missing.
                (Err(_), Some(_)) => return false,
            };
            let error = match failed {
                // A reused connection the instance had closed: once more on a new one.
                Failed::Closed if reused && whole && plan.idempotent && !fresh_only => {
                    fresh_only = true;
                    continue;
                }
                Failed::Closed | Failed::Broken => ProxyError::Unreachable {
                    app: Arc::clone(&plan.app),
                },
                Failed::TimedOut => ProxyError::TimedOut {
                    app: Arc::clone(&plan.app),
                },
                Failed::ClientGone => return false,
                Failed::Refused(error) => error,
            };
            return self.refuse(error, &mut plan, body.is_done()).await;
        }
    }

    /// Receives the response to a request sent whole, watching for the
    /// client going away.
    async fn receive(
        &mut self,
        upstream: &mut Upstream,
        download: &mut Download,
        deadline: Instant,
        plan: &mut Plan,
    ) -> Result<(), Failed> {
        while !download.is_done() {
            let read = if download.head.is_none() {
                tokio::select! {
                    biased;
                    read = tokio::time::timeout_at(deadline, upstream.buf.fill(&mut upstream.stream)) => {
                        read.map_err(|_| Failed::TimedOut)?
                    }
                    () = client_gone(&mut self.io, &mut self.inbuf) => return Err(Failed::ClientGone),
                }
            } else {
                tokio::select! {
                    biased;
                    read = upstream.buf.fill(&mut upstream.stream) => read,
                    () = client_gone(&mut self.io, &mut self.inbuf) => return Err(Failed::ClientGone),
                }
            };
            match read {
                Ok(read) if read > 0 => self.deliver(download, plan, &mut upstream.buf).await?,
                _ => download.closed()?,
            }
        }
        Ok(())
    }

    /// Sends the rest of the request body while receiving the response: an
    /// instance may answer before it has read the whole body, or stream its
    /// answer as it reads (an echo). Once the body is sent, watches for the
    /// client going away.
    async fn duplex(
        &mut self,
        upstream: &mut Upstream,
        body: &mut Framing,
        download: &mut Download,
        deadline: Instant,
        plan: &mut Plan,
    ) -> Result<(), Failed> {
        let Upstream { stream, buf } = upstream;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let head_timeout = tokio::time::sleep_until(deadline);
        tokio::pin!(head_timeout);
        // `out` holds the body bytes being written, `sent` of them written.
        self.out.clear();
        let mut sent = 0;
        // The instance stopped reading the body: the rest stays unread.
        let mut abandoned = false;
        while !download.is_done() {
            if self.out.is_empty() && !abandoned && !body.is_done() && !self.inbuf.is_empty() {
                let take = self.take_body(body).map_err(Failed::Refused)?;
                self.out.extend_from_slice(&self.inbuf.filled()[..take]);
                self.inbuf.consume(take);
                sent = 0;
            }
            let uploading = !self.out.is_empty();
            let reading_client = !uploading && !abandoned && !body.is_done();
            let body_timeout = self.fast.body_timeout;
            let client = async {
                if reading_client {
                    match tokio::time::timeout(body_timeout, self.inbuf.fill(&mut self.io)).await {
                        Err(_) => Err(Failed::Refused(ProxyError::BodyStalled)),
                        Ok(Ok(read)) if read > 0 => Ok(()),
                        Ok(_) => Err(Failed::ClientGone),
                    }
                } else {
                    client_gone(&mut self.io, &mut self.inbuf).await;
                    Err(Failed::ClientGone)
                }
            };
            tokio::select! {
                biased;
                read = buf.fill(&mut reader) => match read {
                    Ok(read) if read > 0 => self.deliver(download, plan, buf).await?,
                    _ => download.closed()?,
                },
                () = &mut head_timeout, if download.head.is_none() => return Err(Failed::TimedOut),
                // (Built even when disabled, so it must not panic then.)
                wrote = writer.write(self.out.get(sent..).unwrap_or_default()), if uploading => match wrote {
                    Ok(wrote) if wrote > 0 => {
                        sent += wrote;
                        if sent >= self.out.len() {
                            self.out.clear();
                            sent = 0;
                        }
                    }
                    _ => {
                        abandoned = true;
                        self.out.clear();
                        sent = 0;
                    }
                },
                event = client, if !uploading => event?,
            }
        }
        Ok(())
    }

    /// Passes on what the upstream sent: the client gets its part at once.
    async fn deliver(
        &mut self,
        download: &mut Download,
        plan: &mut Plan,
        upbuf: &mut Buffer,
    ) -> Result<(), Failed> {
        let had_head = download.head.is_some();
        let body_bytes = download.advance(upbuf, &mut self.reply)?;
        if !had_head {
            if let Some(head) = &download.head {
                self.answered(plan, head.status);
            }
        }
        if let Some(record) = &mut plan.record {
            record.add_bytes(body_bytes);
        }
        if !self.reply.is_empty() {
            if self.io.write_all(&self.reply).await.is_err() {
                return Err(Failed::ClientGone);
            }
            self.reply.clear();
        }
        Ok(())
    }

    /// Counts the request in the metrics once its response status is known.
    fn answered(&self, plan: &mut Plan, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        self.fast
            .router
            .metrics()
            .record(&plan.app, status, plan.started.elapsed());
        if let Some(record) = &mut plan.record {
            record.status = Some(status);
        }
    }

    /// Answers `error` itself; true if the connection can go on (the
    /// request's body was read whole, `body_read`, and the error allows it).
    async fn refuse(&mut self, error: ProxyError, plan: &mut Plan, body_read: bool) -> bool {
        tracing::debug!(client = %self.client, %error, "request answered by the proxy");
        let keep = body_read
            && !error.ends_connection()
            && !plan.close
            && !self.fast.draining.is_cancelled();
        self.answered(plan, error.status().as_u16());
        let page = error_bytes(&error, !keep);
        if self.io.write_all(&page).await.is_err() {
            return false;
        }
        keep
    }

    /// How many of the client's buffered bytes belong to the request body,
    /// within the body size limit.
    fn take_body(&mut self, body: &mut Framing) -> Result<usize, ProxyError> {
        let limit = self.fast.max_body;
        body.advance(self.inbuf.filled(), limit)
            .map_err(|fault| match fault {
                BodyFault::Framing => ProxyError::BadBody,
                BodyFault::TooLarge => ProxyError::BodyTooLarge { limit },
            })
    }

    /// Gives back what a large head or body made the buffers grow to, so an
    /// idle connection holds little memory.
    fn trim(&mut self) {
        if self.inbuf.is_empty() {
            self.inbuf.shrink();
        }
        for head in [&mut self.out, &mut self.reply] {
            if head.capacity() > 4 * HEAD_CAPACITY {
                *head = Vec::with_capacity(HEAD_CAPACITY);
            }
        }
    }
}

/// Waits until the client closes its connection (or breaks it), keeping
/// whatever it sends meanwhile (a pipelined request) for later; waits
/// forever once that buffer is full.
async fn client_gone<I: AsyncRead + Unpin>(io: &mut I, inbuf: &mut Buffer) {
    loop {
        if inbuf.is_full() {
            return pending().await;
        }
        match inbuf.fill(io).await {
            Ok(read) if read > 0 => {}
            _ => return,
        }
    }
}

/// Decides about the request head at the start of `buf`: a [`Plan`] (its
/// upstream head written into `out`) when the fast path forwards it.
fn plan(
    fast: &FastPath,
    buf: &[u8],
    out: &mut Vec<u8>,
    client_ip: &str,
    client: SocketAddr,
) -> Parsed<Plan> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head = match request::parse(buf, &mut headers) {
        Parsed::Ready(head) => head,
        Parsed::Partial => return Parsed::Partial,
        Parsed::Fallback => return Parsed::Fallback,
    };
    if fast.side.is_plain() && head.path.starts_with(CHALLENGE_PREFIX) {
        return Parsed::Fallback;
    }
    let Some(routes) = fast.router.lookup(&head.name, head.path) else {
        return Parsed::Fallback;
    };
    if (fast.side.is_plain() && routes.redirect_https) || routes.maintenance.is_some() {
        return Parsed::Fallback;
    }
    if matches!(head.body, RequestBody::Length(length) if length > fast.max_body) {
        return Parsed::Fallback;
    }
    // A request from another node is served here or not at all.
    let Some(pick) = routes.pick(fast.side.is_peer()) else {
        return Parsed::Fallback;
    };
    let started = std::time::Instant::now();
    // As on the full path: only another node's X-Forwarded-* are kept.
    let keep_chain = fast.side.keeps_forwarded();
    let scheme = match keep_chain {
        true => head.forwarded_proto.unwrap_or(fast.side.own_scheme()),
        false => fast.side.own_scheme(),
    };
    out.clear();
    let forwarding = Forwarding {
        client_ip,
        scheme,
        keep_chain,
    };
    request::write_upstream(out, &head, &forwarding);
    let record = AccessRecord::enabled().then(|| {
        let path = head.path.split('?').next().unwrap_or(head.path);
        let method = Method::from_bytes(head.method.as_bytes()).unwrap_or_default();
        let mut record = AccessRecord::new(
            started,
            method,
            path.to_owned(),
            Version::HTTP_11,
            client,
            fast.side.tls(),
        );
        record.host = Some(head.name.clone().into_owned());
        record.app = Some(Arc::clone(&routes.app));
        record.backend = Some(pick.backend.id.clone());
        Box::new(record)
    });
    Parsed::Ready(Plan {
        head_len: head.len,
        body: head.body,
        close: head.close,
        head_request: head.is_head(),
        idempotent: head.is_idempotent(),
        app: Arc::clone(&routes.app),
        pick,
        started,
        record,
    })
}
