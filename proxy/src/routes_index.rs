//! Which app a request goes to, by host and path: each app lists route
//! entries (`example.com`, `example.com/api`, `*.example.com`, ...) and the
//! index answers with the entry of the request's host and the longest prefix
//! of its path, on whole segments (`/api` takes `/api` and `/api/x`, never
//! `/apix`). An exact host is tried first; a request whose path none of its
//! prefixes take falls back to the wildcard of its parent (`*.example.com`
//! covers exactly one label: `a.example.com`, not `a.b.example.com`).
//!
//! The path is matched as the client sent it (without the query) and is
//! forwarded unchanged: the app at `/api` sees `/api/x`, not `/x`.
//!
//! Built once per table change; a lookup is one or two hash lookups and a
//! scan of that host's few prefixes, longest first.

use std::collections::HashMap;
use std::sync::Arc;

use crate::host::normalize;
use crate::table::AppRoutes;

/// A route entry normalized: the host lowercase without a trailing dot, the
/// path prefix without a trailing `/` (`Example.com./api/` → `example.com/api`).
pub(crate) fn normalize_entry(entry: &str) -> String {
    let (host, prefix) = split(entry);
    format!("{}{}", normalize(host), prefix.trim_end_matches('/'))
}

/// An entry's host and path prefix (empty, or starting with `/`).
pub(crate) fn split(entry: &str) -> (&str, &str) {
    match entry.find('/') {
        Some(at) => entry.split_at(at),
        None => (entry, ""),
    }
}

/// Whether `prefix` takes `path` on whole segments.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.is_empty() || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The prefixes of one host, longest first.
type Prefixes = Vec<(String, Arc<AppRoutes>)>;

/// Host (and wildcard parent) → its prefixes.
#[derive(Clone, Default)]
pub(crate) struct RoutesIndex {
    exact: HashMap<String, Prefixes>,
    /// Keyed by the parent: `*.example.com` under `example.com`.
    wildcard: HashMap<String, Prefixes>,
}

impl RoutesIndex {
    /// The index of `entries` (normalized entry → its app).
    pub(crate) fn build<'a>(
        entries: impl IntoIterator<Item = (&'a String, &'a Arc<AppRoutes>)>,
    ) -> Self {
        let mut index = Self::default();
        for (entry, routes) in entries {
            let (host, prefix) = split(entry);
            let (map, key) = match host.strip_prefix("*.") {
                Some(parent) => (&mut index.wildcard, parent),
                None => (&mut index.exact, host),
            };
            map.entry(key.to_string())
                .or_default()
                .push((prefix.to_string(), Arc::clone(routes)));
        }
        for prefixes in index.exact.values_mut().chain(index.wildcard.values_mut()) {
            prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        index
    }

    /// The routes of a request for `host` (normalized) and `target` (its
    /// path, a query allowed).
    pub(crate) fn lookup(&self, host: &str, target: &str) -> Option<&Arc<AppRoutes>> {
        let path = match target.find(['?', '#']) {
            Some(end) => &target[..end],
            None => target,
        };
        if let Some(found) = self.exact.get(host).and_then(|p| longest(p, path)) {
            return Some(found);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent).and_then(|p| longest(p, path))
    }
}

fn longest<'a>(prefixes: &'a Prefixes, path: &str) -> Option<&'a Arc<AppRoutes>> {
    prefixes
        .iter()
        .find(|(prefix, _)| prefix_matches(prefix, path))
        .map(|(_, routes)| routes)
}

#[cfg(test)]
#[path = "routes_index_tests.rs"]
mod tests;
