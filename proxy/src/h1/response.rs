//! An upstream's response head, as the fast path reads it: parsed in place,
//! its body's framing worked out (RFC 9112, section 6.3), and written out
//! again for the client without the hop-by-hop headers. The body is
//! forwarded as it comes, so its framing headers stay as they are.

use super::request::{parse_length, put_header, tokens};
use super::{hop_by_hop, is_named_by, MAX_HEADERS};

/// How the response's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseBody {
    /// No body: HEAD, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A complete response head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    /// Bytes of the head, the final CRLF included.
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) body: ResponseBody,
    /// The upstream connection can carry another request after this one.
    pub(crate) reusable: bool,
    /// The client connection ends after this response.
    pub(crate) closes_client: bool,
}

/// Why an upstream's response cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadResponse {
    #[error("the response head does not parse")]
    Malformed,
    #[error("the response switches protocols, which this request did not ask for")]
    UnaskedSwitch,
    #[error("the response's Content-Length is not valid")]
    BadLength,
}

/// Parses the response head at the start of `buf`; when complete, writes
/// the head the client gets into `out`. `head_request`: the request was
/// HEAD. `close_client`: the client connection ends after this response
/// anyway (it also ends when the body runs until the upstream closes).
pub(crate) fn parse(
    buf: &[u8],
    head_request: bool,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, BadResponse> {
    read(buf, head_request, |head| {
        let closes_client =
            !head.informational() && (close_client || head.body == ResponseBody::UntilClose);
        write_client(
            out,
            head.status,
            head.reason,
            head.headers,
            head.has_coding,
            closes_client,
        );
        closes_client
    })
}

/// Parses the response head at the start of `buf` into the head of a
/// response for the full path (an HTTP/2 client, mostly): the status and
/// the headers less the hop-by-hop and framing ones, as the body is decoded
/// and framed again by hyper.
pub(crate) fn parse_for_hyper(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<(ResponseHead, http::response::Parts)>, BadResponse> {
    let mut parts = None;
    let read = read(buf, head_request, |head| {
        let mut response = http::Response::new(());
        *response.status_mut() =
            http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        let named = head
            .headers
            .iter()
            .any(|header| header.name.eq_ignore_ascii_case("connection"));
        let map = response.headers_mut();
        for header in head.headers {
            let name = header.name;
            let framing = name.eq_ignore_ascii_case("transfer-encoding")
                || (head.has_coding && name.eq_ignore_ascii_case("content-length"));
            if framing || hop_by_hop(name) || (named && is_named_by(head.headers, name)) {
                continue;
            }
            // httparse checked both; a name http refuses is left out.
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(header.value),
            ) {
                map.append(name, value);
            }
        }
        parts = Some(response.into_parts().0);
        false
    })?;
    Ok(read.and_then(|head| Some((head, parts?))))
}

/// A parsed response head, for the writers.
struct Head<'h, 'b> {
    status: u16,
    reason: &'b str,
    headers: &'h [httparse::Header<'b>],
    body: ResponseBody,
    /// It has a `Transfer-Encoding`.
    has_coding: bool,
}

impl Head<'_, '_> {
    fn informational(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Parses and classifies the head at the start of `buf`, hands it to
/// `write` (which says whether the client connection ends after it), and
/// returns what the exchange needs to know.
fn read(
    buf: &[u8],
    head_request: bool,
    write: impl FnOnce(&Head<'_, '_>) -> bool,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(version), Some(status)) = (response.version, response.code) else {
        return Err(BadResponse::Malformed);
    };
    if status == 101 {
        return Err(BadResponse::UnaskedSwitch);
    }
    let headers: &[httparse::Header<'_>] = response.headers;
    let mut length = None;
    let mut chunked = None;
    let mut upstream_close = version == 0;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = parse_length(header.value).ok_or(BadResponse::BadLength)?;
            if length.is_some_and(|earlier| earlier != value) {
                return Err(BadResponse::BadLength);
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides (RFC 9112, section 6.3).
            chunked = tokens(header.value)
                .last()
                .map(|coding| coding.eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in tokens(header.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    upstream_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    upstream_close = false;
                }
            }
        }
    }
    let informational = (100..200).contains(&status);
    let body = if head_request || informational || status == 204 || status == 304 {
        ResponseBody::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => ResponseBody::Chunked,
            (Some(false), _) => ResponseBody::UntilClose,
            (None, Some(0)) => ResponseBody::Empty,
            (None, Some(length)) => ResponseBody::Length(length),
            (None, None) => ResponseBody::UntilClose,
        }
    };
    let head = Head {
        status,
        reason: response.reason.unwrap_or(""),
        headers,
        body,
        has_coding: chunked.is_some(),
    };
    let closes_client = write(&head);
    Ok(Some(ResponseHead {
        len,
        status,
        body,
        reusable: !upstream_close && body != ResponseBody::UntilClose,
        closes_client,
    }))
}

/// The head the client gets: HTTP/1.1, the same status and reason, the
/// headers less the hop-by-hop ones (and less `Content-Length` next to a
/// `Transfer-Encoding`), and `Connection: close` when the connection ends.
fn write_client(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[httparse::Header<'_>],
    has_coding: bool,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_digits(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let named = headers
        .iter()
        .any(|header| header.name.eq_ignore_ascii_case("connection"));
    for header in headers {
        let name = header.name;
        let keep = if name.eq_ignore_ascii_case("transfer-encoding") {
            true
        } else if name.eq_ignore_ascii_case("content-length") {
            !has_coding
        } else {
            !(hop_by_hop(name) || (named && is_named_by(headers, name)))
        };
        if keep {
            put_header(out, name.as_bytes(), header.value);
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A status code's three digits (httparse only gives 100 to 999).
fn status_digits(status: u16) -> [u8; 3] {
    let digit = |value: u16| b'0' + u8::try_from(value % 10).unwrap_or(0);
    [digit(status / 100), digit(status / 10), digit(status)]
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
