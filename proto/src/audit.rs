//! The audit log: every API call that changes something, and every call a
//! coordinator refused, with who made it (from the subject the NATS server
//! let only that credential publish on), what it acted on, when, and how it
//! ended. Coordinators write it to the audit stream; `reef audit` reads it.
//! What a call carried that is secret (a secret's value, a key, a token) is
//! never part of an entry.

use crate::api::{ApiRequest, ApiResponse};
use crate::envelope::{Message, MessageKind};
use crate::subjects::verbs;
use serde::{Deserialize, Serialize};

/// The most entries one answer holds.
pub const MAX_LIMIT: u32 = 1000;
/// Entries one answer holds unless asked for another number.
pub const DEFAULT_LIMIT: u32 = 100;
/// The longest target and reason kept; longer ones are cut at a character
/// boundary and end with `…`.
pub const MAX_TEXT: usize = 240;

/// One API call as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the coordinator took the call (its clock), ms since the epoch.
    pub at_ms: u64,
    /// The caller's role and name, from the subject it called on.
    pub role: String,
    pub caller: String,
    pub verb: String,
    /// What the call acted on (an app, a job, a node, a user, ...); empty
    /// when nothing in particular.
    pub target: String,
    pub outcome: Outcome,
    /// The coordinator that took the call.
    pub coordinator: String,
}

impl Message for AuditEntry {
    const KIND: MessageKind = MessageKind::AuditEntry;
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It did what it asked; `result` names what it made, if anything (a
    /// job's id, a release's number), else it is empty.
    Done { result: String },
    /// The caller may not make it: why.
    Refused { reason: String },
    /// It was allowed and failed: why.
    Failed { reason: String },
}

impl Outcome {
    /// `done`, `refused` or `failed`, as `reef audit` shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::Refused { .. } => "refused",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// Which entries `reef audit` asks for: the newest `limit` of those at most
/// `since_ms` old (0: any age the stream keeps), of one caller and one verb
/// when given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub since_ms: u64,
    pub user: Option<String>,
    pub verb: Option<String>,
    pub limit: u32,
}

impl AuditQuery {
    /// Why the query cannot be answered, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(format!(
                "limit: {} is out of range: 1 to {MAX_LIMIT}",
                self.limit
            ));
        }
        if let Some(user) = &self.user {
            let token_like = !user.is_empty()
                && user.len() <= 128
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !token_like {
                return Err(format!(
                    "user: {user:?} is not a user or node name (letters, digits, '-' and '_')"
                ));
            }
        }
        if let Some(verb) = &self.verb {
            if !verbs::ALL.contains(&verb.as_str()) {
                return Err(format!(
                    "verb: {verb:?} is not an API verb (one of {})",
                    verbs::ALL.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The audit subjects it reads (`reef.audit.<role>.<caller>.<verb>`).
    pub fn filter(&self) -> String {
        let user = self.user.as_deref().unwrap_or("*");
        match &self.verb {
            Some(verb) => format!("{}.*.{user}.{verb}", crate::subjects::AUDIT_PREFIX),
            None => format!("{}.*.{user}.>", crate::subjects::AUDIT_PREFIX),
        }
    }
}

/// Whether a call of `verb` goes into the audit log when it is allowed:
/// every verb that changes something. Reads are recorded only when refused.
pub fn records(verb: &str) -> bool {
    !matches!(
        verb,
        verbs::JOB_LIST
            | verbs::JOB_GET
            | verbs::NODE_LIST
            | verbs::APP_LIST
            | verbs::APP_STATUS
            | verbs::APP_RELEASES
            | verbs::SECRET_LIST
            | verbs::CERT_LIST
            | verbs::USER_LIST
            | verbs::SERVER_LIST
            | verbs::CRON_LIST
            | verbs::CRON_HISTORY
            | verbs::AUDIT_LIST
            | verbs::NOTIFY_LIST
            | verbs::APP_BACKUPS
    )
}

/// What `request` acts on, as an entry names it; never a secret's value,
/// a key or a credential.
pub fn target(request: &ApiRequest) -> String {
    let text = match request {
        ApiRequest::SubmitJob(spec) => return job_target(spec),
        ApiRequest::GetJob(id) | ApiRequest::StopJob(id) => format!("job {id}"),
        ApiRequest::RegisterNode { record, .. } => format!("node {} ({})", record.name, record.id),
        ApiRequest::DrainNode { node, .. } | ApiRequest::RemoveNode(node) => format!("node {node}"),
        ApiRequest::SetEligible { node, eligible } => {
            let to = if *eligible { "eligible" } else { "ineligible" };
            format!("node {node} {to}")
        }
        ApiRequest::DeployApp { spec, .. } => spec.name.clone(),
        ApiRequest::AppStatus(app)
        | ApiRequest::ListReleases(app)
        | ApiRequest::StopApp(app)
        | ApiRequest::StartApp(app)
        | ApiRequest::DestroyApp(app)
        | ApiRequest::ListSecrets(app) => app.clone(),
        ApiRequest::DestroyAppData {
            app,
            delete_data: true,
        } => format!("{app} with its data"),
        ApiRequest::DestroyAppData { app, .. } => app.clone(),
        ApiRequest::Rollback { app, to: Some(to) } => format!("{app} to release {to}"),
        ApiRequest::Rollback { app, to: None } => app.clone(),
        ApiRequest::Scale { app, replicas } => format!("{app} to {replicas}"),
        // Not its URL, which may carry a token.
        ApiRequest::AddWebhook { name, .. } | ApiRequest::RemoveWebhook(name) => name.clone(),
        ApiRequest::SetMaintenance { app, on, .. } => {
            format!("{app} {}", if *on { "on" } else { "off" })
        }
        ApiRequest::SetSecret { app, key, .. } | ApiRequest::RemoveSecret { app, key } => {
            format!("{app} {key}")
        }
        ApiRequest::AddCertificate { domains, .. } => domains.join(" "),
        ApiRequest::RemoveCertificate(domain) => domain.clone(),
        ApiRequest::AddUser { name, role, .. } => format!("{name} ({role})"),
        ApiRequest::RemoveUser(name) => name.clone(),
        ApiRequest::CreateToken { trust, .. } => format!("a {} node", trust.name()),
        ApiRequest::CreateServerToken { .. } => "a server".to_string(),
        ApiRequest::JoinServer { name, .. } => name.clone(),
        ApiRequest::AddCron(spec) => spec.name.clone(),
        ApiRequest::CronHistory { name, .. } | ApiRequest::RemoveCron(name) => name.clone(),
        ApiRequest::BackupApp(app) | ApiRequest::ListBackups(app) => app.clone(),
        ApiRequest::RestoreApp { app, id: Some(id) } => format!("{app} from backup {id}"),
        ApiRequest::RestoreApp { app, id: None } => format!("{app} from its newest backup"),
        ApiRequest::ListJobs
        | ApiRequest::ListNodes
        | ApiRequest::ListApps
        | ApiRequest::ListCertificates
        | ApiRequest::ListUsers
        | ApiRequest::JoinNode { .. }
        | ApiRequest::NodeCertificate { .. }
        | ApiRequest::QueryJobs(_)
        | ApiRequest::QueryApps(_)
        | ApiRequest::ListServers
        | ApiRequest::ListCrons
        | ApiRequest::ListAudit(_)
        | ApiRequest::ListWebhooks
        | ApiRequest::UiLink => String::new(),
    };
    clip(&text)
}

/// What a job submission acts on: its command.
pub fn job_target(spec: &crate::job::JobSpec) -> String {
    clip(&spec.command.join(" "))
}

/// What a successful call made, as an entry names it; never a credential.
pub fn result(response: &ApiResponse) -> String {
    match response {
        ApiResponse::Job(job) => format!("job {}", job.id),
        ApiResponse::Deploying { release, .. } => format!("release {}", release.version),
        ApiResponse::Registered(node) => format!("node {node}"),
        ApiResponse::Joined { node, .. } | ApiResponse::ServerJoined { node, .. } => {
            format!("node {node}")
        }
        ApiResponse::Token { id, .. } => format!("token {id}"),
        ApiResponse::Stopping(instances) => match instances.len() {
            1 => "1 instance stopping".to_string(),
            n => format!("{n} instances stopping"),
        },
        _ => String::new(),
    }
}

/// `text`, cut to at most [`MAX_TEXT`] bytes at a character boundary.
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
