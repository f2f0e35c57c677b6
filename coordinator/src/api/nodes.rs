//! Nodes: registration, `reef node drain`, `eligible`, `ineligible` and
//! `rm`. The drain itself advances on the leader's tick (`drive/drain.rs`).

use super::invalid;
use crate::drive::Coordinator;
use crate::error::Report;
use crate::store;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::node::{validate_node_name, Eligibility, NodeRecord};
use reef_proto::{now_ms, NodeId};
use std::time::Instant;

/// The longest drain deadline accepted.
const MAX_DEADLINE_MS: u64 = 7 * 24 * 3_600_000;

impl Coordinator {
    pub(crate) async fn register(
        &mut self,
        mut record: NodeRecord,
    ) -> Result<reef_proto::NodeId, ApiError> {
        validate_node_name(&record.name).map_err(invalid)?;
        reef_proto::job::validate_labels(&record.labels)
            .map_err(|e| invalid(format!("label {e}")))?;
        if record.resources.cpu_millis == 0 || record.resources.memory_bytes == 0 {
            return Err(invalid("a node must offer some cpu and memory"));
        }
        record.registered_at_ms = now_ms();
        if let Err(e) = store::ensure_assign_consumer(&self.store.js, record.id).await {
            tracing::warn!(node = %record.id, error = %Report(&e), "cannot make the node's assignment consumer; repairing the store");
            let config = self.store_config.clone();
            self.repair_store(&config).await;
            store::ensure_assign_consumer(&self.store.js, record.id).await?;
        }
        // Eligibility belongs to the cluster, not to the agent: keep what is stored.
        record.eligibility = match self.cluster.node(record.id) {
            Some(entry) => entry.record.eligibility,
            None => self
                .store
                .nodes
                .get(&record.id.to_string())
                .await?
                .map(|(stored, _)| stored.eligibility)
                .unwrap_or_default(),
        };
        self.store
            .nodes
            .put(&record.id.to_string(), &record)
            .await?;
        let id = record.id;
        tracing::info!(node = %id, name = %record.name, proxy = ?record.proxy_addr, "node registered");
        self.events.emit(
            reef_proto::events::EventKind::NodeUp,
            &record.name,
            format!("registered ({}, {})", record.trust.name(), record.version),
        );
        let proxy_moved = self
            .cluster
            .node(id)
            .is_some_and(|known| known.record.proxy_addr != record.proxy_addr);
        self.cluster.upsert_node(record);
        if proxy_moved {
            self.sync_routes_of_node(id).await;
        }
        self.cluster.heard_from(id, Instant::now(), now_ms());
        self.place_pending(false).await;
        Ok(id)
    }

    /// Finds a node by id or by name; an error names the problem.
    fn resolve_node(&self, node: &str) -> Result<NodeId, ApiError> {
        if let Some(entry) = self
            .cluster
            .nodes()
            .find(|e| e.record.id.to_string() == node)
        {
            return Ok(entry.record.id);
        }
        let named: Vec<NodeId> = self
            .cluster
            .nodes()
            .filter(|e| e.record.name == node)
            .map(|e| e.record.id)
            .collect();
        match named.as_slice() {
            [id] => Ok(*id),
            [] => Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!("no node {node:?}; `reef nodes` lists them"),
            )),
            _ => Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!("{} nodes are named {node:?}; give the node id", named.len()),
            )),
        }
    }

    /// Sets a node's eligibility in KV and in the view.
    pub(crate) async fn set_eligibility(
        &mut self,
        id: NodeId,
        to: Eligibility,
    ) -> Result<(), ApiError> {
        let updated = self
            .store
            .nodes
            .modify(&id.to_string(), |r| {
                if r.eligibility == to {
                    return false;
                }
                r.eligibility = to;
                true
            })
            .await?;
        if let Some(record) = updated {
            self.cluster.set_eligibility(id, record.eligibility);
        }
        Ok(())
    }

    pub(crate) async fn drain_node(
        &mut self,
        node: &str,
        deadline_ms: u64,
    ) -> Result<(), ApiError> {
        let id = self.resolve_node(node)?;
        if deadline_ms > MAX_DEADLINE_MS {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                "the drain deadline must be at most 7 days",
            ));
        }
        let deadline_ms = now_ms().saturating_add(deadline_ms);
        tracing::info!(node = %id, "draining");
        self.set_eligibility(id, Eligibility::Draining { deadline_ms })
            .await?;
        self.advance_drains().await;
        Ok(())
    }

    pub(crate) async fn set_eligible(
        &mut self,
        node: &str,
        eligible: bool,
    ) -> Result<(), ApiError> {
        let id = self.resolve_node(node)?;
        let to = if eligible {
            Eligibility::Eligible
        } else {
            Eligibility::Ineligible
        };
        self.set_eligibility(id, to).await?;
        if eligible {
            self.place_pending(false).await;
        }
        Ok(())
    }

    pub(crate) async fn remove_node(&mut self, node: &str) -> Result<(), ApiError> {
        let id = self.resolve_node(node)?;
        let Some(entry) = self.cluster.node(id) else {
            return Ok(());
        };
        if entry.allocations > 0 && !entry.lost {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!(
                    "node {} still runs {} allocation(s); drain it first (`reef node drain {}`)",
                    entry.record.name, entry.allocations, entry.record.name
                ),
            ));
        }
        self.store.nodes.delete(&id.to_string()).await?;
        self.cluster.remove_node(id);
        tracing::info!(node = %id, "node removed");
        // Its credential goes with it: disconnected now, refused from now on.
        self.revoke_node(id).await
    }
}
