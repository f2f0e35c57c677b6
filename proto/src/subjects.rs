//! Every NATS subject, stream, consumer and KV bucket name reef uses.
//!
//! Ids are rendered hyphenated, which is valid in a subject token and a KV key;
//! node names never appear in subjects, so a user-chosen name cannot inject
//! wildcards or extra tokens.

use crate::roles::Role;
use crate::{AllocId, InstanceId, JobId, NodeId};

/// Prefix of every API subject; coordinators subscribe to `reef.api.>`.
pub const API_PREFIX: &str = "reef.api";
/// Queue group the coordinators share for API requests.
pub const API_QUEUE_GROUP: &str = "reef-coordinators";

/// API verbs, one subject each: `reef.api.<verb>`.
pub mod verbs {
    pub const JOB_SUBMIT: &str = "job.submit";
    pub const JOB_LIST: &str = "job.list";
    pub const JOB_GET: &str = "job.get";
    pub const JOB_STOP: &str = "job.stop";
    pub const NODE_LIST: &str = "node.list";
    pub const NODE_REGISTER: &str = "node.register";
    pub const NODE_DRAIN: &str = "node.drain";
    pub const NODE_ELIGIBLE: &str = "node.eligible";
    pub const NODE_REMOVE: &str = "node.remove";
    pub const APP_DEPLOY: &str = "app.deploy";
    pub const APP_LIST: &str = "app.list";
    pub const APP_STATUS: &str = "app.status";
    pub const APP_RELEASES: &str = "app.releases";
    pub const APP_ROLLBACK: &str = "app.rollback";
    pub const APP_SCALE: &str = "app.scale";
    pub const APP_STOP: &str = "app.stop";
    pub const APP_START: &str = "app.start";
    pub const APP_DESTROY: &str = "app.destroy";
    pub const SECRET_SET: &str = "secret.set";
    pub const SECRET_LIST: &str = "secret.list";
    pub const SECRET_REMOVE: &str = "secret.remove";
    pub const CERT_ADD: &str = "cert.add";
    pub const CERT_LIST: &str = "cert.list";
    pub const CERT_REMOVE: &str = "cert.remove";
    pub const USER_ADD: &str = "user.add";
    pub const USER_LIST: &str = "user.list";
    pub const USER_REMOVE: &str = "user.remove";
    pub const TOKEN_CREATE: &str = "token.create";
    pub const NODE_JOIN: &str = "node.join";
    pub const NODE_CERTIFICATE: &str = "node.certificate";
    pub const SERVER_JOIN: &str = "server.join";
    pub const SERVER_LIST: &str = "server.list";
    pub const CRON_ADD: &str = "cron.add";
    pub const CRON_LIST: &str = "cron.list";
    pub const CRON_HISTORY: &str = "cron.history";
    pub const CRON_REMOVE: &str = "cron.remove";
    pub const AUDIT_LIST: &str = "audit.list";
    pub const APP_MAINTENANCE: &str = "app.maintenance";
    pub const NOTIFY_ADD: &str = "notify.add";
    pub const NOTIFY_LIST: &str = "notify.list";
    pub const NOTIFY_REMOVE: &str = "notify.remove";
    pub const APP_BACKUP: &str = "app.backup";
    pub const APP_BACKUPS: &str = "app.backups";
    pub const APP_RESTORE: &str = "app.restore";
    /// A one-time sign-in link to the web dashboard for the caller.
    pub const UI_LINK: &str = "ui.link";

    /// Every verb.
    pub const ALL: [&str; 45] = [
        JOB_SUBMIT,
        JOB_LIST,
        JOB_GET,
        JOB_STOP,
        NODE_LIST,
        NODE_REGISTER,
        NODE_DRAIN,
        NODE_ELIGIBLE,
        NODE_REMOVE,
        APP_DEPLOY,
        APP_LIST,
        APP_STATUS,
        APP_RELEASES,
        APP_ROLLBACK,
        APP_SCALE,
        APP_STOP,
        APP_START,
        APP_DESTROY,
        SECRET_SET,
        SECRET_LIST,
        SECRET_REMOVE,
        CERT_ADD,
        CERT_LIST,
        CERT_REMOVE,
        USER_ADD,
        USER_LIST,
        USER_REMOVE,
        TOKEN_CREATE,
        NODE_JOIN,
        NODE_CERTIFICATE,
        SERVER_JOIN,
        SERVER_LIST,
        CRON_ADD,
        CRON_LIST,
        CRON_HISTORY,
        CRON_REMOVE,
        AUDIT_LIST,
        APP_MAINTENANCE,
        NOTIFY_ADD,
        NOTIFY_LIST,
        NOTIFY_REMOVE,
        APP_BACKUP,
        APP_BACKUPS,
        APP_RESTORE,
        UI_LINK,
    ];
}

/// `reef.api.<role>.<caller>.<verb>`: the subject on which `caller` (a
/// user's name or a node's id) calls `verb`. The server lets a credential
/// publish only under its own role and caller.
pub fn api(role: Role, caller: &str, verb: &str) -> String {
    format!("{API_PREFIX}.{role}.{caller}.{verb}")
}

/// Every API subject one credential may publish on.
pub fn api_caller(role: Role, caller: &str) -> String {
    format!("{API_PREFIX}.{role}.{caller}.>")
}

/// Who calls and what, read from an API subject's tail (after
/// `reef.api.`): `(role, caller, verb)`, or None when it has no such shape.
pub fn parse_api_tail(tail: &str) -> Option<(Role, &str, &str)> {
    let mut parts = tail.splitn(3, '.');
    let role = Role::parse(parts.next()?).ok()?;
    let caller = parts.next().filter(|c| !c.is_empty())?;
    let verb = parts.next().filter(|v| !v.is_empty())?;
    Some((role, caller, verb))
}

/// The inbox prefix of one credential: replies to it arrive only there,
/// and it may subscribe to nothing else of the kind, so no client can read
/// another's answers.
pub fn inbox_prefix(role: Role, caller: &str) -> String {
    format!("_INBOX_{role}_{caller}")
}

/// Stream holding the audit log ([`crate::audit`]); subjects
/// `reef.audit.<role>.<caller>.<verb>`, written by coordinators only.
pub const AUDIT_STREAM: &str = "REEF_AUDIT";
pub const AUDIT_PREFIX: &str = "reef.audit";
pub const AUDIT_WILDCARD: &str = "reef.audit.>";

/// The audit subject of a call of `verb` by `caller` with `role`.
pub fn audit(role: &str, caller: &str, verb: &str) -> String {
    format!("{AUDIT_PREFIX}.{role}.{caller}.{verb}")
}

/// Stream holding the cluster's events ([`crate::events`]); subjects
/// `reef.cluster.<kind>`, written by the leader only.
pub const CLUSTER_EVENTS_STREAM: &str = "REEF_CLUSTER_EVENTS";
pub const CLUSTER_EVENTS_PREFIX: &str = "reef.cluster";
pub const CLUSTER_EVENTS_WILDCARD: &str = "reef.cluster.>";

/// Stream holding every agent command; subjects `reef.assign.<node>`.
pub const ASSIGN_STREAM: &str = "REEF_ASSIGN";
pub const ASSIGN_WILDCARD: &str = "reef.assign.>";

/// Commands for one node.
pub fn assign(node: NodeId) -> String {
    format!("reef.assign.{node}")
}

/// Durable pull consumer through which one node receives its commands.
pub fn assign_consumer(node: NodeId) -> String {
    format!("assign-{node}")
}

/// Stream of allocation events; subjects `reef.events.<node>.<alloc>`.
pub const EVENTS_STREAM: &str = "REEF_EVENTS";
pub const EVENTS_WILDCARD: &str = "reef.events.>";
/// The durable consumer the coordinators share to apply events.
pub const EVENTS_CONSUMER: &str = "coordinator-events";

pub fn event(node: NodeId, alloc: AllocId) -> String {
    format!("reef.events.{node}.{alloc}")
}

/// An instance's events share the stream: `reef.events.<node>.<instance>`.
pub fn instance_event(node: NodeId, instance: InstanceId) -> String {
    format!("reef.events.{node}.{instance}")
}

/// Heartbeats on core NATS: `reef.hb.<node>`.
pub const HEARTBEAT_WILDCARD: &str = "reef.hb.*";

pub fn heartbeat(node: NodeId) -> String {
    format!("reef.hb.{node}")
}

/// Where the leader asks one node to make or restore a part of an app's
/// backup (core request/reply).
pub fn backup(node: NodeId) -> String {
    format!("reef.backup.{node}")
}

/// Where `reef doctor` asks one node for its report (core request/reply).
pub fn doctor(node: NodeId) -> String {
    format!("reef.doctor.{node}")
}

/// Stream of job and app output; subjects
/// `reef.logs.<node>.job.<owner>.<job>.<alloc>.log` and
/// `reef.logs.<node>.app.<app>.<instance>.log`: the node that wrote a
/// batch comes first, so the server lets a node write only its own, and a
/// job's owner is in it, so a submitter may read only its own jobs' logs.
/// Each message is a batch of stdout and stderr pieces
/// ([`crate::log_batch`]).
pub const LOGS_STREAM: &str = "REEF_LOGS";
pub const LOGS_WILDCARD: &str = "reef.logs.>";

/// Which output stream of a process a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// The log subject of a job's allocation. `owner` is the job's owner (a
/// user name); a job recorded without one is under `_`.
pub fn logs(node: NodeId, owner: &str, job: JobId, alloc: AllocId) -> String {
    format!(
        "reef.logs.{node}.job.{}.{job}.{alloc}.log",
        owner_token(owner)
    )
}

/// A job owner as a subject token: user names are tokens already; none is `_`.
fn owner_token(owner: &str) -> &str {
    if owner.is_empty() {
        "_"
    } else {
        owner
    }
}

/// Every job log subject of jobs owned by `owner`.
pub fn owned_job_logs(owner: &str) -> String {
    format!("reef.logs.*.job.{}.>", owner_token(owner))
}

/// Every log subject one node may write.
pub fn node_logs(node: NodeId) -> String {
    format!("reef.logs.{node}.>")
}

/// Every log subject of one job (owned by `owner`), for `reef logs`.
pub fn job_logs(owner: &str, job: JobId) -> String {
    format!("reef.logs.*.job.{}.{job}.>", owner_token(owner))
}

/// The log subject of one app instance: `reef.logs.<node>.app.<app>.<instance>.log`.
pub fn instance_logs(node: NodeId, app: &str, instance: InstanceId) -> String {
    format!("reef.logs.{node}.app.{app}.{instance}.log")
}

/// The node and instance tokens of an app instance's log subject.
pub fn instance_of_log(subject: &str) -> Option<(&str, &str)> {
    let mut tokens = subject.split('.');
    let (node, kind) = (tokens.nth(2)?, tokens.next()?);
    let instance = tokens.nth(1)?;
    (kind == "app").then_some((node, instance))
}

/// Every log subject of one app instance.
pub fn one_instance_logs(app: &str, instance: InstanceId) -> String {
    format!("reef.logs.*.app.{app}.{instance}.>")
}

/// Every log subject of one app, for `reef logs APP`.
pub fn app_logs(app: &str) -> String {
    format!("reef.logs.*.app.{app}.>")
}

/// KV bucket of apps, keyed by app name.
pub const APPS_BUCKET: &str = "reef-apps";
/// KV bucket of releases, keyed `<app>.<version>`.
pub const RELEASES_BUCKET: &str = "reef-releases";
/// KV bucket of app instances, keyed by instance id.
pub const INSTANCES_BUCKET: &str = "reef-instances";
/// KV bucket of app routes, keyed by app name: each app's healthy instances
/// and their nodes' proxies. Written by the leader only.
pub const ROUTES_BUCKET: &str = "reef-routes";
/// KV bucket of secrets, keyed `<app>.<KEY>`, values encrypted with the cluster key.
pub const SECRETS_BUCKET: &str = "reef-secrets";

pub fn secret_key(app: &str, key: &str) -> String {
    format!("{app}.{key}")
}

/// The context a secret is bound to when encrypted or sealed.
pub fn secret_context(app: &str, key: &str) -> String {
    format!("{app}/{key}")
}

/// KV bucket of the apps' managed services, keyed `<app>.<kind>`
/// ([`crate::services::ServiceRecord`]); written by coordinators, read by
/// dedicated nodes (the one that runs the service, and those whose
/// instances reach it).
pub const SERVICES_BUCKET: &str = "reef-services";

pub fn service_key(app: &str, kind: &str) -> String {
    format!("{app}.{kind}")
}

/// KV bucket of TLS certificates, keyed by primary domain (`certs::cert_key`).
pub const CERTS_BUCKET: &str = "reef-certs";
/// KV bucket of pending ACME HTTP-01 answers, keyed by token; entries expire.
pub const CHALLENGES_BUCKET: &str = "reef-challenges";

/// Object store of release artifacts, each named by its sha256.
pub const ARTIFACTS_STORE: &str = "reef-artifacts";

pub fn release_key(app: &str, version: u32) -> String {
    format!("{app}.{version}")
}

/// KV bucket holding the coordinator leadership lease (one key, [`LEADER_KEY`]).
pub const LEADER_BUCKET: &str = "reef-leader";
pub const LEADER_KEY: &str = "lease";
/// Key of the leader bucket with the nodes as the leader last saw them
/// (`leader::NodeStatuses`).
pub const NODE_STATUS_KEY: &str = "nodes";
/// Key of the leader bucket with where the next leader starts
/// (`leader::Checkpoint`).
pub const CHECKPOINT_KEY: &str = "checkpoint";

/// Prefix of the subjects on which the leader takes API requests relayed by
/// the other coordinators: `reef.coord.<id>.api.<verb>`.
pub fn coordinator_api_prefix(coordinator: &str) -> String {
    format!("reef.coord.{coordinator}.api")
}

/// KV bucket of job records, keyed by job id.
pub const JOBS_BUCKET: &str = "reef-jobs";
/// KV bucket of allocations, keyed by allocation id.
pub const ALLOCS_BUCKET: &str = "reef-allocs";
/// KV bucket of credential holders (`members::Member`), keyed
/// `user.<name>` or `node.<id>`: public keys and revocations only.
pub const MEMBERS_BUCKET: &str = "reef-members";

/// Where the system account takes an account JWT the operator signed
/// (nats-server's own subject for its full resolver).
pub const CLAIMS_UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";

/// KV bucket of join tokens (`members::JoinTokenRecord`), keyed by token id.
pub const TOKENS_BUCKET: &str = "reef-tokens";

/// KV bucket of registered nodes, keyed by node id.
pub const NODES_BUCKET: &str = "reef-nodes";

/// KV bucket of the cluster's servers (`reef server`), keyed by name.
pub const SERVERS_BUCKET: &str = "reef-servers";
/// Periodic jobs, by name (`reef cron`); only coordinators read or write it.
pub const CRON_BUCKET: &str = "reef-cron";
/// The claim on each tick of a periodic job, kept a day; only coordinators.
pub const CRON_TICKS_BUCKET: &str = "reef-cron-ticks";
/// Webhooks for the cluster's events, by name.
pub const NOTIFY_BUCKET: &str = "reef-notify";
/// App backups' records: key = `<app>.<id>` ([`crate::backup::key`]).
pub const BACKUPS_BUCKET: &str = "reef-backups";
/// App backups' encrypted parts: name = [`crate::backup::object_name`].
pub const BACKUPS_STORE: &str = "reef-backups";
/// The dashboard's one-time sign-in links (coordinators only), key = the
/// hash of the link's token; entries expire by themselves.
pub const UI_LINKS_BUCKET: &str = "reef-ui-links";
/// The key every coordinator signs and checks dashboard sessions with
/// (coordinators only).
pub const UI_KEYS_BUCKET: &str = "reef-ui-keys";

/// A tick's key in [`CRON_TICKS_BUCKET`]: `<name>.<tick in ms>`.
pub fn cron_tick_key(name: &str, tick_ms: u64) -> String {
    format!("{name}.{tick_ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_the_documented_shape() {
        let node = NodeId::new();
        let alloc = AllocId::new();
        let job = JobId::new();
        assert_eq!(assign(node), format!("reef.assign.{node}"));
        assert_eq!(event(node, alloc).split('.').count(), 4);
        assert_eq!(
            logs(node, "alice", job, alloc),
            format!("reef.logs.{node}.job.alice.{job}.{alloc}.log")
        );
        let instance = InstanceId::new();
        let subject = instance_logs(node, "web", instance);
        assert_eq!(
            instance_of_log(&subject),
            Some((node.to_string().as_str(), instance.to_string().as_str()))
        );
        assert_eq!(instance_of_log(&logs(node, "alice", job, alloc)), None);
        assert_eq!(instance_of_log("reef.logs"), None);
        assert_eq!(
            job_logs("alice", job),
            format!("reef.logs.*.job.alice.{job}.>")
        );
        assert_eq!(owned_job_logs("alice"), "reef.logs.*.job.alice.>");
        // A job without an owner (recorded before owners) is under `_`.
        assert!(logs(node, "", job, alloc).contains(".job._."));
        assert_eq!(job_logs("", job), format!("reef.logs.*.job._.{job}.>"));
        assert_eq!(
            api(Role::Admin, "ops", verbs::JOB_SUBMIT),
            "reef.api.admin.ops.job.submit"
        );
        assert_eq!(
            parse_api_tail("node.abc.node.register"),
            Some((Role::Node, "abc", "node.register"))
        );
        assert_eq!(parse_api_tail("root.abc.job.list"), None);
        assert_eq!(parse_api_tail("admin.ops"), None);
        assert_eq!(parse_api_tail("admin..job.list"), None);
    }
}
