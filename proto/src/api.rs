//! The request/reply API between the CLI (or any client) and the coordinators,
//! on `reef.api.<verb>`. Every request gets a reply: a result or a typed error.

use crate::app::{AppRecord, ArtifactRef, Instance, Release};
use crate::certs::CertStatus;
use crate::envelope::{Message, MessageKind};
use crate::ids::{JobId, NodeId};
use crate::job::{JobRecord, JobSpec, Resources};
use crate::manifest::AppSpec;
use crate::node::NodeRecord;
use crate::subjects::verbs;
use serde::{Deserialize, Serialize};

/// Most jobs one `job.list` reply carries (newest first).
pub const MAX_LISTED_JOBS: usize = 1000;

/// How many jobs or apps a page holds unless asked otherwise.
pub const DEFAULT_PAGE: u32 = 50;

/// Most apps one `app.list` reply carries.
pub const MAX_LISTED_APPS: u32 = 1000;

/// Which jobs a `job.list` answers with: newest first (by submission),
/// those that pass every filter given, at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQuery {
    /// Only jobs in this state ([`crate::job::JobState::name`]).
    pub state: Option<String>,
    /// At most this many, 1 to [`MAX_LISTED_JOBS`].
    pub limit: u32,
    /// Only jobs submitted before this one: the last of the previous page.
    pub before: Option<JobId>,
    /// Only jobs whose id starts with this (hex digits and hyphens).
    pub prefix: Option<String>,
}

impl JobQuery {
    /// A page of the newest `limit` jobs.
    pub fn newest(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Whether the query can be answered; if not, what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_LISTED_JOBS as u32).contains(&self.limit) {
            return Err(format!(
                "limit must be between 1 and {MAX_LISTED_JOBS}, not {}",
                self.limit
            ));
        }
        if let Some(state) = &self.state {
            if !crate::job::JOB_STATES.contains(&state.as_str()) {
                return Err(format!(
                    "{state:?} is not a job state; one of {}",
                    crate::job::JOB_STATES.join(", ")
                ));
            }
        }
        if let Some(prefix) = &self.prefix {
            let valid = !prefix.is_empty()
                && prefix.len() <= 36
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
            if !valid {
                return Err(format!("{prefix:?} is not the start of a job id"));
            }
        }
        Ok(())
    }
}

/// Which apps an `app.list` answers with: most recently changed first,
/// those in `state` if given, at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppQuery {
    /// Only apps in this state ([`AppRecord::state_name`]).
    pub state: Option<String>,
    /// At most this many, 1 to [`MAX_LISTED_APPS`].
    pub limit: u32,
}

impl AppQuery {
    /// Whether the query can be answered; if not, what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_LISTED_APPS).contains(&self.limit) {
            return Err(format!(
                "limit must be between 1 and {MAX_LISTED_APPS}, not {}",
                self.limit
            ));
        }
        if let Some(state) = &self.state {
            if !crate::app::APP_STATES.contains(&state.as_str()) {
                return Err(format!(
                    "{state:?} is not an app state; one of {}",
                    crate::app::APP_STATES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiRequest {
    SubmitJob(JobSpec),
    ListJobs,
    GetJob(JobId),
    StopJob(JobId),
    ListNodes,
    /// An agent registers itself. `credential` is its NATS user JWT: the
    /// coordinator takes the node's trust class from it, not from `record`.
    RegisterNode {
        record: NodeRecord,
        credential: Option<String>,
    },
    /// Empty a node (by name or id): replicas move, jobs get until the deadline.
    DrainNode {
        node: String,
        deadline_ms: u64,
    },
    /// Let a node (by name or id) take new work again, or not.
    SetEligible {
        node: String,
        eligible: bool,
    },
    /// Forget a node (by name or id) that is down or empty.
    RemoveNode(String),
    /// Record a new release of an app (creating the app if needed) and roll it out.
    DeployApp {
        spec: Box<AppSpec>,
        artifact: ArtifactRef,
    },
    ListApps,
    AppStatus(String),
    ListReleases(String),
    /// Roll out a copy of an earlier release (by default the one before the current).
    Rollback {
        app: String,
        to: Option<u32>,
    },
    /// Change the number of replicas of the current release.
    Scale {
        app: String,
        replicas: u32,
    },
    StopApp(String),
    StartApp(String),
    /// Stop every instance and forget the app and its releases.
    DestroyApp(String),
    /// Store a secret, encrypted with the cluster key. For an app that is
    /// not deployed yet only with `create`.
    SetSecret {
        app: String,
        key: String,
        value: Vec<u8>,
        #[serde(default)]
        create: bool,
    },
    ListSecrets(String),
    RemoveSecret {
        app: String,
        key: String,
    },
    /// Store a certificate from files for `domains` (the first is the primary
    /// one); the key is encrypted and sealed by the coordinator, never stored
    /// as sent.
    AddCertificate {
        domains: Vec<String>,
        chain_pem: String,
        key_pem: Vec<u8>,
    },
    ListCertificates,
    /// Forget the certificate whose primary domain is this one.
    RemoveCertificate(String),
    /// Sign a credential for a new user: `public_key` is the user's nkey,
    /// made by the caller, whose seed never leaves it.
    AddUser {
        name: String,
        role: String,
        public_key: String,
    },
    ListUsers,
    /// Revoke a user's credential: the user is disconnected at once.
    RemoveUser(String),
    /// Create a single-use join token for a node of `trust` with `labels`.
    CreateToken {
        trust: crate::node::TrustClass,
        labels: std::collections::BTreeMap<String, String>,
        ttl_ms: u64,
    },
    /// A joining machine presents its public key (with the token's
    /// credential, which names the token).
    JoinNode {
        public_key: String,
    },
    /// A dedicated node asks for its certificate for the peer links, for
    /// the P-256 key it made (the uncompressed point); the private key never
    /// leaves the node.
    NodeCertificate {
        public_key: Vec<u8>,
    },
    /// A page of jobs (`job.list`); `ListJobs` is the newest
    /// [`MAX_LISTED_JOBS`] with no filter.
    QueryJobs(JobQuery),
    /// A page of apps (`app.list`); `ListApps` is every app by name.
    QueryApps(AppQuery),
    /// Create a single-use join token for a server (`reef join --server`):
    /// its credential may also call `server.join`, which hands out the
    /// cluster's keys.
    CreateServerToken {
        ttl_ms: u64,
    },
    /// A joining server presents its node's public key, the X25519 key the
    /// cluster's keys are sealed to, and where it can be reached (with the
    /// token's credential, which names the token).
    JoinServer {
        name: String,
        public_key: String,
        sealing_key: [u8; 32],
        route: String,
        client: String,
    },
    ListServers,
    /// Add a periodic job (`reef cron add`); its owner is the caller.
    AddCron(crate::cron::CronSpec),
    ListCrons,
    /// A periodic job's latest runs, newest first, at most `limit`.
    CronHistory {
        name: String,
        limit: u32,
    },
    /// Remove a periodic job; runs under way go on.
    RemoveCron(String),
    /// The audit log's newest entries that match (`reef audit`).
    ListAudit(crate::audit::AuditQuery),
    /// Put an app in maintenance with this page (None: the default one), or
    /// take it out (`on` false, `page` ignored).
    SetMaintenance {
        app: String,
        on: bool,
        page: Option<crate::maintenance::MaintenancePage>,
    },
    /// Send the cluster's events of `kinds` (all when empty) to `url`.
    AddWebhook {
        name: String,
        url: String,
        kinds: Vec<crate::events::EventKind>,
    },
    ListWebhooks,
    RemoveWebhook(String),
    /// Back up an app now (`reef backup run`).
    BackupApp(String),
    /// An app's backups, newest first (`reef backup list`).
    ListBackups(String),
    /// Restore an app from one of its backups (the newest finished one
    /// when `id` is None).
    RestoreApp {
        app: String,
        id: Option<u64>,
    },
    /// A one-time sign-in link to the web dashboard for the caller (`reef ui`).
    UiLink,
    /// Destroy an app like [`ApiRequest::DestroyApp`]; with `delete_data`,
    /// also remove its managed services' data on their nodes (without, it
    /// is kept, and a later deploy of the app takes it up again).
    DestroyAppData {
        app: String,
        delete_data: bool,
    },
}

impl ApiRequest {
    /// The verb, and so the subject, this request is sent on.
    pub fn verb(&self) -> &'static str {
        match self {
            ApiRequest::SubmitJob(_) => verbs::JOB_SUBMIT,
            ApiRequest::ListJobs => verbs::JOB_LIST,
            ApiRequest::GetJob(_) => verbs::JOB_GET,
            ApiRequest::StopJob(_) => verbs::JOB_STOP,
            ApiRequest::ListNodes => verbs::NODE_LIST,
            ApiRequest::RegisterNode { .. } => verbs::NODE_REGISTER,
            ApiRequest::DrainNode { .. } => verbs::NODE_DRAIN,
            ApiRequest::SetEligible { .. } => verbs::NODE_ELIGIBLE,
            ApiRequest::RemoveNode(_) => verbs::NODE_REMOVE,
            ApiRequest::DeployApp { .. } => verbs::APP_DEPLOY,
            ApiRequest::ListApps => verbs::APP_LIST,
            ApiRequest::AppStatus(_) => verbs::APP_STATUS,
            ApiRequest::ListReleases(_) => verbs::APP_RELEASES,
            ApiRequest::Rollback { .. } => verbs::APP_ROLLBACK,
            ApiRequest::Scale { .. } => verbs::APP_SCALE,
            ApiRequest::StopApp(_) => verbs::APP_STOP,
            ApiRequest::StartApp(_) => verbs::APP_START,
            ApiRequest::DestroyApp(_) => verbs::APP_DESTROY,
            ApiRequest::SetSecret { .. } => verbs::SECRET_SET,
            ApiRequest::ListSecrets(_) => verbs::SECRET_LIST,
            ApiRequest::RemoveSecret { .. } => verbs::SECRET_REMOVE,
            ApiRequest::AddCertificate { .. } => verbs::CERT_ADD,
            ApiRequest::ListCertificates => verbs::CERT_LIST,
            ApiRequest::RemoveCertificate(_) => verbs::CERT_REMOVE,
            ApiRequest::AddUser { .. } => verbs::USER_ADD,
            ApiRequest::ListUsers => verbs::USER_LIST,
            ApiRequest::RemoveUser(_) => verbs::USER_REMOVE,
            ApiRequest::CreateToken { .. } => verbs::TOKEN_CREATE,
            ApiRequest::JoinNode { .. } => verbs::NODE_JOIN,
            ApiRequest::NodeCertificate { .. } => verbs::NODE_CERTIFICATE,
            ApiRequest::QueryJobs(_) => verbs::JOB_LIST,
            ApiRequest::QueryApps(_) => verbs::APP_LIST,
            ApiRequest::CreateServerToken { .. } => verbs::TOKEN_CREATE,
            ApiRequest::JoinServer { .. } => verbs::SERVER_JOIN,
            ApiRequest::ListServers => verbs::SERVER_LIST,
            ApiRequest::AddCron(_) => verbs::CRON_ADD,
            ApiRequest::ListCrons => verbs::CRON_LIST,
            ApiRequest::CronHistory { .. } => verbs::CRON_HISTORY,
            ApiRequest::RemoveCron(_) => verbs::CRON_REMOVE,
            ApiRequest::ListAudit(_) => verbs::AUDIT_LIST,
            ApiRequest::SetMaintenance { .. } => verbs::APP_MAINTENANCE,
            ApiRequest::AddWebhook { .. } => verbs::NOTIFY_ADD,
            ApiRequest::ListWebhooks => verbs::NOTIFY_LIST,
            ApiRequest::RemoveWebhook(_) => verbs::NOTIFY_REMOVE,
            ApiRequest::BackupApp(_) => verbs::APP_BACKUP,
            ApiRequest::ListBackups(_) => verbs::APP_BACKUPS,
            ApiRequest::RestoreApp { .. } => verbs::APP_RESTORE,
            ApiRequest::UiLink => verbs::UI_LINK,
            ApiRequest::DestroyAppData { .. } => verbs::APP_DESTROY,
        }
    }
}

impl Message for ApiRequest {
    const KIND: MessageKind = MessageKind::ApiRequest;
}

/// Whether a node is heard from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    Ready,
    /// No heartbeat within the grace period.
    Down,
}

/// A node as `reef nodes` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub record: NodeRecord,
    pub state: NodeState,
    pub last_seen_ms: u64,
    /// Resources committed to live allocations on this node.
    pub allocated: Resources,
    /// Live allocations on this node.
    pub allocations: u32,
    /// Its owner paused it: it takes no new work.
    #[serde(default)]
    pub paused: bool,
    /// Of its results of replicated jobs: (agreed, disagreed) with the
    /// accepted one; None if it has none on record.
    #[serde(default)]
    pub verdicts: Option<(u64, u64)>,
    /// The managed services it runs, as its last heartbeat said.
    #[serde(default)]
    pub services: Vec<crate::services::ServiceHealth>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiResponse {
    Job(Box<JobRecord>),
    Jobs {
        jobs: Vec<JobRecord>,
        /// More jobs exist than were listed.
        truncated: bool,
    },
    Nodes(Vec<NodeStatus>),
    Registered(NodeId),
    /// A release was recorded and is rolling out to these instances.
    Deploying {
        release: Box<Release>,
        instances: Vec<Instance>,
    },
    Apps(Vec<AppStatus>),
    App(Box<AppStatus>),
    Releases(Vec<Release>),
    /// These instances were asked to drain and stop.
    Stopping(Vec<Instance>),
    /// Secret names (never values).
    SecretNames(Vec<String>),
    Certificates(Vec<CertStatus>),
    Done,
    /// The new user's JWT, to put beside its seed in a `.creds` file.
    UserAdded {
        jwt: String,
    },
    Users(Vec<crate::members::Member>),
    /// A join token's id and short-lived credential.
    Token {
        id: String,
        creds: String,
        expires_at_ms: u64,
    },
    /// The joined node's id and its credential's JWT.
    Joined {
        node: NodeId,
        jwt: String,
    },
    /// A node's certificate for the peer links, signed by the cluster CA.
    NodeCertificate {
        cert_pem: String,
        not_after_ms: u64,
    },
    /// A page of apps, with whether more matched than were listed.
    AppPage {
        apps: Vec<AppStatus>,
        truncated: bool,
    },
    /// The joined server's node id, its credential's JWT, the cluster's
    /// keys sealed to its X25519 key (`reef_trust::bundle`), and every
    /// server of the cluster, itself included.
    ServerJoined {
        node: NodeId,
        jwt: String,
        bundle: Vec<u8>,
        servers: Vec<crate::servers::ServerRecord>,
    },
    /// The cluster's servers, and every stream's copies.
    Servers {
        servers: Vec<crate::servers::ServerRecord>,
        streams: Vec<crate::servers::StreamHealth>,
    },
    Cron(Box<crate::cron::CronStatus>),
    Crons(Vec<crate::cron::CronStatus>),
    CronRuns(Vec<crate::cron::RunStatus>),
    /// Audit entries, oldest first, and whether older ones matched too.
    Audit {
        entries: Vec<crate::audit::AuditEntry>,
        truncated: bool,
    },
    Webhooks(Vec<crate::notify::Webhook>),
    /// A backup was started, or a restore of it: follow it in `app.backups`.
    BackupStarted {
        app: String,
        id: u64,
        restore_started_ms: Option<u64>,
    },
    Backups(Vec<crate::backup::BackupRecord>),
    /// A sign-in link's single-use token, the dashboard of the coordinator
    /// that answered (None: it serves none), and when the token expires.
    UiLink {
        token: String,
        base: Option<String>,
        expires_at_ms: u64,
    },
}

/// An app as `reef apps` and `reef status` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub record: AppRecord,
    /// The release that should be running.
    pub release: Release,
    /// Every instance that is not finished, of any release.
    pub instances: Vec<Instance>,
    /// The app's managed services (never their passwords).
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
}

/// A managed service as `reef status APP` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub kind: crate::services::ServiceKind,
    pub version: u32,
    pub databases: Vec<String>,
    pub node: NodeId,
    /// The node's name, when it is known.
    pub node_name: Option<String>,
    pub port: u16,
    pub role: String,
    pub desired: crate::services::ServiceDesired,
    /// What the cluster sees: `running`, `waiting: node NAME is down`, ...
    pub state: String,
}

/// What kind of failure an API error is, so clients can react without parsing text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiErrorKind {
    /// The request itself is wrong; the message names the field.
    Invalid,
    NotFound,
    /// The coordinator could not reach its state; retrying may help.
    Unavailable,
    Internal,
    /// The caller's role may not do this; the message names the role needed.
    Forbidden,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The reply to every API request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReply(pub Result<ApiResponse, ApiError>);

impl Message for ApiReply {
    const KIND: MessageKind = MessageKind::ApiReply;
}

#[cfg(test)]
mod query_tests {
    use super::*;
    use crate::job::{JobState, JOB_STATES};

    #[test]
    fn every_job_state_name_is_a_valid_filter() {
        let states = [
            JobState::Pending { reason: "x".into() },
            JobState::Assigned,
            JobState::Running,
            JobState::Exited { code: 0 },
            JobState::Stopped,
            JobState::Failed { reason: "x".into() },
            JobState::Lost { reason: "x".into() },
        ];
        let names: Vec<&str> = states.iter().map(JobState::name).collect();
        assert_eq!(names, JOB_STATES);
        for name in JOB_STATES {
            let query = JobQuery {
                state: Some(name.into()),
                ..JobQuery::newest(10)
            };
            assert_eq!(query.validate(), Ok(()));
        }
    }

    #[test]
    fn a_query_names_what_is_wrong_with_it() {
        assert!(JobQuery::newest(0).validate().is_err());
        assert!(JobQuery::newest(1001).validate().is_err());
        let bad_state = JobQuery {
            state: Some("done".into()),
            ..JobQuery::newest(5)
        };
        assert!(bad_state
            .validate()
            .expect_err("not a state")
            .contains("one of pending"));
        let bad_prefix = JobQuery {
            prefix: Some("0192 or 1=1".into()),
            ..JobQuery::newest(5)
        };
        assert!(bad_prefix.validate().is_err());
        let upper = JobQuery {
            prefix: Some("0192ABC".into()),
            ..JobQuery::newest(5)
        };
        assert!(upper.validate().is_err(), "ids are printed in lower case");
        assert!(AppQuery {
            state: Some("halted".into()),
            limit: 3
        }
        .validate()
        .is_ok());
        assert!(AppQuery {
            state: Some("gone".into()),
            limit: 3
        }
        .validate()
        .is_err());
        assert!(AppQuery {
            state: None,
            limit: 0
        }
        .validate()
        .is_err());
    }
}
