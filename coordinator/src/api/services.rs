//! An app's managed services (`[services.postgres]`): placed with a deploy
//! (`plan/services.rs` decides, before anything is written), recorded in
//! the services bucket for the node that runs them, their password kept as
//! an app secret, their endpoints handed to every instance, shown by
//! `reef status`, and stopped (data kept or deleted) when the app is
//! destroyed.

use crate::api::invalid;
use crate::drive::Coordinator;
use crate::plan::services::{self as plan, Placement, ServiceNode};
use crate::store::Store;
use reef_proto::api::{ApiError, ApiErrorKind, ServiceStatus};
use reef_proto::manifest::AppSpec;
use reef_proto::members::{Member, APP_ROLE};
use reef_proto::node::Eligibility;
use reef_proto::services::{
    role_name, ServiceDesired, ServiceEndpoint, ServiceKind, ServiceRecord, ServiceSpec,
};
use reef_proto::{now_ms, subjects, NodeId};
use std::time::Instant;

/// Length of a generated service password.
const PASSWORD_LEN: usize = 32;

/// Where one of an app's services goes, decided before a deploy writes.
#[derive(Debug)]
pub(crate) struct ServicePlan {
    spec: ServiceSpec,
    node: NodeId,
    port: u16,
    existing: Option<ServiceRecord>,
}

impl Coordinator {
    /// Decides where each service `spec` asks for runs; writes nothing.
    pub(crate) async fn plan_services(&self, spec: &AppSpec) -> Result<Vec<ServicePlan>, ApiError> {
        if spec.services.is_empty() {
            return Ok(Vec::new());
        }
        // The password is kept encrypted with the cluster key.
        self.cluster_key()?;
        if spec.services.iter().any(|s| s.kind == ServiceKind::Nats) {
            // Its credential is signed with the cluster's keys.
            self.authority()?;
        }
        let records = self.store.services.all().await?;
        let now = Instant::now();
        let mut plans = Vec::new();
        for service in spec.services.iter().filter(|s| s.kind.placed()) {
            let existing = records
                .iter()
                .find(|r| r.app == spec.name && r.kind == service.kind);
            let nodes: Vec<ServiceNode<'_>> = self
                .cluster
                .nodes()
                .map(|entry| ServiceNode {
                    id: entry.record.id,
                    name: &entry.record.name,
                    trust: entry.record.trust,
                    ready: self.cluster.node_ready(entry.record.id, now),
                    eligible: entry.record.eligibility == Eligibility::Eligible,
                    versions: plan::versions_of(service.kind, &entry.record),
                    services: plan::pinned_count(&records, entry.record.id),
                })
                .collect();
            let placement = plan::place(&spec.name, service, existing, &nodes).map_err(invalid)?;
            let (node, port) = match placement {
                Placement::Pinned { node, ready } => {
                    if !ready {
                        tracing::warn!(app = %spec.name, kind = service.kind.name(), %node,
                            "the service's node is down; it waits there for it");
                    }
                    let port = existing.map(|r| r.port).unwrap_or(plan::PORTS.start);
                    (node, port)
                }
                Placement::New { node } => {
                    let seed = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u64::from(d.subsec_nanos()));
                    let port = plan::choose_port(&plan::ports_on(&records, node), seed)
                        .ok_or_else(|| invalid("no free port left for a service on its node"))?;
                    (node, port)
                }
            };
            plans.push(ServicePlan {
                spec: service.clone(),
                node,
                port,
                existing: existing.cloned(),
            });
        }
        Ok(plans)
    }

    /// Writes what [`Coordinator::plan_services`] decided: the password
    /// (generated the first time, an app secret), then the record its node
    /// follows.
    pub(crate) async fn write_services(
        &mut self,
        app: &str,
        plans: Vec<ServicePlan>,
    ) -> Result<(), ApiError> {
        for plan in plans {
            let secret = plan.spec.kind.password_secret();
            let password = match self.secret_value(app, secret).await? {
                Some(value) => value,
                None => {
                    let fresh = reef_secrets::password::generate(PASSWORD_LEN)
                        .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
                    self.set_secret(app, secret, fresh.as_bytes(), true).await?;
                    reef_secrets::Zeroizing::new(fresh.as_bytes().to_vec())
                }
            };
            let node = self.cluster.node(plan.node).map(|n| &n.record);
            let sealed_password = match node {
                Some(record) => reef_secrets::seal(
                    &record.sealing_key,
                    &subjects::secret_context(app, secret),
                    &password,
                )
                .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?,
                // Pinned to a node no longer known: what it had stays.
                None => plan
                    .existing
                    .as_ref()
                    .map(|r| r.sealed_password.clone())
                    .unwrap_or_default(),
            };
            let peer = node
                .and_then(|r| r.proxy_addr)
                .or(plan.existing.as_ref().and_then(|r| r.peer));
            let now = now_ms();
            let record = ServiceRecord {
                app: app.to_string(),
                kind: plan.spec.kind,
                version: plan.spec.version,
                databases: plan.spec.databases,
                node: plan.node,
                port: plan.port,
                role: role_name(app),
                peer,
                desired: ServiceDesired::Running,
                sealed_password,
                created_at_ms: plan
                    .existing
                    .as_ref()
                    .filter(|r| r.desired != ServiceDesired::Deleted)
                    .map_or(now, |r| r.created_at_ms),
                updated_at_ms: now,
            };
            self.store
                .services
                .put(&subjects::service_key(app, record.kind.name()), &record)
                .await?;
            tracing::info!(%app, kind = record.kind.name(), node = %record.node, port = record.port,
                "service recorded");
        }
        Ok(())
    }

    /// Gives `app` a credential of its own on the cluster's NATS, kept as
    /// its secret `NATS_CREDS`, unless it has one.
    pub(crate) async fn ensure_app_credential(&mut self, spec: &AppSpec) -> Result<(), ApiError> {
        let kind = ServiceKind::Nats;
        if !spec.services.iter().any(|s| s.kind == kind) {
            return Ok(());
        }
        let app = &spec.name;
        if self
            .secret_value(app, kind.password_secret())
            .await?
            .is_some()
        {
            return Ok(());
        }
        let authority = self.authority()?;
        let (creds, public_key) = authority
            .dir
            .issue_app(app)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        // Known as a holder first, so that destroying the app revokes it.
        let member = Member {
            name: app.clone(),
            role: APP_ROLE.to_string(),
            public_key,
            added_at_ms: now_ms(),
            revoked_at_s: None,
        };
        self.store.members.put(&member.key(), &member).await?;
        self.set_secret(app, kind.password_secret(), creds.as_bytes(), true)
            .await?;
        tracing::info!(%app, "app credential on NATS issued");
        Ok(())
    }

    /// Revokes `app`'s own NATS credential, if it has one (it is destroyed).
    pub(crate) async fn revoke_app_credential(&mut self, app: &str) -> Result<(), ApiError> {
        let key = Member::key_for(APP_ROLE, app);
        let Some((member, _)) = self.store.members.get(&key).await? else {
            return Ok(());
        };
        if member.revoked_at_s.is_some() {
            return Ok(());
        }
        let Some(authority) = self.authority.clone() else {
            tracing::warn!(%app, "the app's NATS credential is not revoked: this coordinator holds no cluster keys (--cluster-dir)");
            return Ok(());
        };
        self.revoke(&authority, member).await?;
        tracing::info!(%app, "app credential on NATS revoked");
        Ok(())
    }

    /// How instances of `spec` reach its services (those that run).
    pub(crate) async fn service_endpoints(
        &self,
        spec: &AppSpec,
    ) -> Result<Vec<ServiceEndpoint>, ApiError> {
        let mut endpoints = Vec::new();
        for service in &spec.services {
            let key = subjects::service_key(&spec.name, service.kind.name());
            if let Some((record, _)) = self.store.services.get(&key).await? {
                if record.desired == ServiceDesired::Running {
                    endpoints.push(ServiceEndpoint::of(&record));
                }
            }
        }
        Ok(endpoints)
    }

    /// Stops `app`'s services, their data kept on their node (a later
    /// deploy takes it up) or, with `delete_data`, removed there; whether
    /// it had any left.
    pub(crate) async fn retire_services(
        &mut self,
        app: &str,
        delete_data: bool,
    ) -> Result<bool, ApiError> {
        let mut any = false;
        let desired = if delete_data {
            ServiceDesired::Deleted
        } else {
            ServiceDesired::Kept
        };
        for kind in reef_proto::services::ServiceKind::ALL {
            let key = subjects::service_key(app, kind.name());
            let stored = self
                .store
                .services
                .modify(&key, |record| {
                    if record.desired == desired || record.desired == ServiceDesired::Deleted {
                        return false;
                    }
                    record.desired = desired;
                    record.updated_at_ms = now_ms();
                    true
                })
                .await?;
            if let Some(record) = stored {
                any |= record.desired == desired;
                tracing::info!(%app, kind = kind.name(), desired = record.desired.name(), "service retired");
            }
        }
        Ok(any)
    }
}

/// `app`'s services as `reef status` shows them; `node` gives a node's
/// status as the leader last wrote it.
pub(crate) async fn service_statuses(
    store: &Store,
    app: &str,
    node: impl Fn(NodeId) -> Option<reef_proto::api::NodeStatus>,
) -> Result<Vec<ServiceStatus>, ApiError> {
    let mut out = Vec::new();
    for kind in reef_proto::services::ServiceKind::ALL {
        let key = subjects::service_key(app, kind.name());
        let Some((record, _)) = store.services.get(&key).await? else {
            continue;
        };
        if record.desired == ServiceDesired::Deleted {
            continue;
        }
        let seen = node(record.node);
        let name = seen.as_ref().map(|n| n.record.name.as_str());
        let ready = seen
            .as_ref()
            .is_some_and(|n| n.state == reef_proto::api::NodeState::Ready);
        let reported = seen.as_ref().and_then(|n| {
            n.services
                .iter()
                .find(|s| s.app == record.app && s.kind == record.kind)
                .map(|s| s.state.as_str())
        });
        out.push(ServiceStatus {
            kind: record.kind,
            version: record.version,
            databases: record.databases.clone(),
            node: record.node,
            node_name: name.map(str::to_string),
            port: record.port,
            role: record.role.clone(),
            desired: record.desired,
            state: plan::state(&record, name, ready, reported),
        });
    }
    Ok(out)
}
