//! A `domains` entry of a manifest: a host (`example.com`), a one-label
//! wildcard host (`*.example.com`), either followed by a path prefix
//! (`example.com/api`). The proxy routes a request to the entry with the
//! request's host (an exact host before a wildcard) and the longest prefix
//! that matches the request's path on whole segments: `/api` takes `/api`
//! and `/api/x`, not `/apix` (the proxy's `routes_index.rs`). The path is
//! forwarded as the client sent it.

use crate::manifest::validate_domain;

/// The longest path prefix an entry may carry.
pub const MAX_PREFIX_BYTES: usize = 1024;

/// One `domains` entry, split.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteDomain {
    /// The host, lowercase, without a trailing dot; `*.parent` for a wildcard.
    pub host: String,
    /// The path prefix without a trailing `/`; empty for the whole host.
    pub prefix: String,
}

impl RouteDomain {
    /// Splits an entry leniently, the way routes are compared: the host
    /// lowercased and without a trailing dot, the prefix without a trailing
    /// `/`. For entries already checked by [`validate_route_domain`].
    pub fn split(entry: &str) -> Self {
        let (host, prefix) = match entry.find('/') {
            Some(at) => entry.split_at(at),
            None => (entry, ""),
        };
        Self {
            host: host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase(),
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// Whether the host is a wildcard (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.host.starts_with("*.")
    }
}

/// Checks a `domains` entry: a host name or `*.` and a host name of at
/// least two labels, optionally followed by a path prefix of non-empty
/// segments of URL path characters (no `.` or `..` segment, no query, no
/// fragment, no trailing `/`).
pub fn validate_route_domain(entry: &str) -> Result<RouteDomain, String> {
    let (host, prefix) = match entry.find('/') {
        Some(at) => entry.split_at(at),
        None => (entry, ""),
    };
    match host.strip_prefix("*.") {
        Some(parent) if parent.starts_with("*.") || parent == "*" => {
            return Err(format!(
                "{entry:?}: a wildcard covers exactly one label, at the start: use *.example.com"
            ))
        }
        Some(parent) => {
            validate_domain(parent).map_err(|e| format!("{entry:?}: {e}"))?;
            if parent.split('.').count() < 2 {
                return Err(format!(
                    "{entry:?} would cover a whole top-level domain; use *.example.com or narrower"
                ));
            }
        }
        None if host.contains('*') => {
            return Err(format!(
                "{entry:?}: a wildcard covers exactly one label, at the start: use *.example.com"
            ))
        }
        None => validate_domain(host).map_err(|e| format!("{entry:?}: {e}"))?,
    }
    validate_prefix(entry, prefix)?;
    Ok(RouteDomain {
        host: host.to_string(),
        prefix: prefix.to_string(),
    })
}

/// Checks the path part of `entry` (empty, or starting with `/`).
fn validate_prefix(entry: &str, prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err(format!(
            "{entry:?}: the path is longer than {MAX_PREFIX_BYTES} bytes"
        ));
    }
    if prefix.contains(['?', '#']) {
        return Err(format!(
            "{entry:?}: a route is a host and a path prefix; a query string or fragment has no place in it"
        ));
    }
    if prefix == "/" || prefix.ends_with('/') {
        return Err(format!(
            "{entry:?}: leave out the trailing '/' (write {:?})",
            entry.trim_end_matches('/')
        ));
    }
    for segment in prefix[1..].split('/') {
        if segment.is_empty() {
            return Err(format!("{entry:?}: the path has an empty segment (\"//\")"));
        }
        if segment == "." || segment == ".." {
            return Err(format!(
                "{entry:?}: the path has a {segment:?} segment; write the path it stands for"
            ));
        }
        if let Some(bad) = segment.chars().find(|c| !is_path_char(*c)) {
            return Err(format!(
                "{entry:?}: {bad:?} is not allowed in a path (percent-encode it)"
            ));
        }
        if !percent_escapes_ok(segment) {
            return Err(format!(
                "{entry:?}: '%' must start a percent-escape of two hex digits"
            ));
        }
    }
    Ok(())
}

/// RFC 3986 `pchar`, less nothing: unreserved, sub-delims, `:`, `@` and `%`.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c)
}

fn percent_escapes_ok(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
#[path = "route_domain_tests.rs"]
mod tests;
