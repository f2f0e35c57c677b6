//! Each app's requests and latency over the last hour, per minute, from
//! the counters every agent's heartbeat carries (cumulative since the agent
//! started). Pure: the dashboard's heartbeat listener feeds it, pages read
//! it. Bounded: at most [`MAX_APPS`] apps, [`MAX_PAIRS`] node and app
//! pairs, and an hour of minutes per app.

use reef_proto::node::AppTraffic;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Minutes kept per app.
pub(crate) const MINUTES: u64 = 60;
const MINUTE_MS: u64 = 60_000;
/// The most apps kept; the traffic of more is not charted.
pub(crate) const MAX_APPS: usize = 256;
/// The most (node, app) counters remembered.
pub(crate) const MAX_PAIRS: usize = 16_384;
/// The most nodes remembered as heard from.
const MAX_NODES: usize = 16_384;

/// One minute of an app's requests, over every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Minute {
    pub(crate) start_ms: u64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) latency_micros: u64,
}

#[derive(Clone, Copy, Default)]
struct Counts {
    requests: u64,
    errors: u64,
    latency_micros: u64,
}

/// The last hour of every app's traffic.
#[derive(Default)]
pub(crate) struct Traffic {
    last: HashMap<(String, String), Counts>,
    nodes: HashSet<String>,
    apps: BTreeMap<String, VecDeque<Minute>>,
    /// When each node's latest heartbeat arrived here.
    heard: HashMap<String, u64>,
}

impl Traffic {
    /// Takes a node's heartbeat counters at `now_ms`: what each app's
    /// counters grew by since the node's last beat goes to this minute. A
    /// counter that went down (the agent restarted) counts from zero; an
    /// app first reported by a node heard from before counts whole, since
    /// the node reports an app from its first request on.
    pub(crate) fn observe(&mut self, node: &str, counts: &[AppTraffic], now_ms: u64) {
        if self.heard.len() < MAX_NODES || self.heard.contains_key(node) {
            self.heard.insert(node.to_string(), now_ms);
        }
        let known_node = self.nodes.contains(node);
        if !known_node && self.nodes.len() < MAX_NODES {
            self.nodes.insert(node.to_string());
        }
        for count in counts {
            let now = Counts {
                requests: count.requests,
                errors: count.errors,
                latency_micros: count.latency_micros,
            };
            let key = (node.to_string(), count.app.clone());
            let before = match self.last.get(&key) {
                Some(before) => *before,
                None if self.last.len() >= MAX_PAIRS => continue,
                None if known_node => Counts::default(),
                None => now,
            };
            self.last.insert(key, now);
            let grew = |now: u64, before: u64| if now >= before { now - before } else { now };
            let requests = grew(now.requests, before.requests);
            if requests == 0 {
                continue;
            }
            let errors = grew(now.errors, before.errors);
            let latency = grew(now.latency_micros, before.latency_micros);
            self.add(&count.app, now_ms, requests, errors, latency);
        }
    }

    fn add(&mut self, app: &str, now_ms: u64, requests: u64, errors: u64, latency_micros: u64) {
        if !self.apps.contains_key(app) && self.apps.len() >= MAX_APPS {
            return;
        }
        let start_ms = now_ms - now_ms % MINUTE_MS;
        let minutes = self.apps.entry(app.to_string()).or_default();
        if minutes.back().is_none_or(|m| m.start_ms < start_ms) {
            minutes.push_back(Minute {
                start_ms,
                ..Minute::default()
            });
        }
        if let Some(minute) = minutes.back_mut() {
            minute.requests += requests;
            minute.errors += errors;
            minute.latency_micros += latency_micros;
        }
        let oldest = start_ms.saturating_sub((MINUTES - 1) * MINUTE_MS);
        while minutes.front().is_some_and(|m| m.start_ms < oldest) {
            minutes.pop_front();
        }
    }

    /// When each node was last heard from, by node id.
    pub(crate) fn heard(&self) -> &HashMap<String, u64> {
        &self.heard
    }

    /// Every app's last hour at `now_ms`: [`MINUTES`] minutes, oldest
    /// first, those without requests included.
    pub(crate) fn hour(&self, now_ms: u64) -> BTreeMap<String, Vec<Minute>> {
        let current = now_ms - now_ms % MINUTE_MS;
        let first = current.saturating_sub((MINUTES - 1) * MINUTE_MS);
        self.apps
            .iter()
            .map(|(app, minutes)| {
                let series = (0..MINUTES)
                    .map(|i| first + i * MINUTE_MS)
                    .map(|start_ms| {
                        minutes
                            .iter()
                            .find(|m| m.start_ms == start_ms)
                            .copied()
                            .unwrap_or(Minute {
                                start_ms,
                                ..Minute::default()
                            })
                    })
                    .collect();
                (app.clone(), series)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
