//! API handlers: every request on `reef.api.<verb>` gets exactly one reply,
//! a result or a typed error naming what was wrong.
//!
//! - this file: checking who may call what, and handing each verb to its
//!   handler;
//! - `submit`: job submissions taken in batches; `jobs`: stopping a job;
//! - `deploy`, `lifecycle`, `domains`, `secrets`: apps;
//! - `nodes`: registration, drain and eligibility; `users`, `join`,
//!   `peers`: credentials; `servers`: servers joining, and the list;
//! - `reads`: the read-only verbs, answered by any coordinator from KV,
//!   with `live_instances` and `recent_jobs`, each coordinator's views of
//!   the live instances and of the latest job writes, kept by `followed`;
//! - `relay`: a follower passing requests to the leader.

pub(crate) mod audit;
pub(crate) mod backups;
pub(crate) mod cron;
pub(crate) mod deploy;
pub(crate) mod domains;
pub(crate) mod followed;
pub(crate) mod jobs;
pub(crate) mod join;
pub(crate) mod lifecycle;
pub(crate) mod live_instances;
pub(crate) mod maintenance;
pub(crate) mod nodes;
pub(crate) mod notify;
pub(crate) mod peers;
pub(crate) mod reads;
pub(crate) mod recent_jobs;
pub(crate) mod relay;
pub(crate) mod secrets;
pub(crate) mod servers;
pub(crate) mod services;
pub(crate) mod submit;
pub(crate) mod users;

use crate::drive::Coordinator;
use crate::error::{CoordinatorError, Report};
use reef_proto::api::{ApiError, ApiErrorKind, ApiReply, ApiRequest, ApiResponse};
use reef_proto::job::JobRecord;
use reef_proto::node::TrustClass;
use reef_proto::roles::Role;
use reef_proto::{decode, encode, subjects};

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::Invalid, message)
}

pub(crate) fn not_found(app: &str) -> ApiError {
    ApiError::new(ApiErrorKind::NotFound, format!("no app {app}"))
}

impl From<CoordinatorError> for ApiError {
    fn from(e: CoordinatorError) -> Self {
        let kind = match e.is_corrupt() {
            true => ApiErrorKind::Internal,
            false => ApiErrorKind::Unavailable,
        };
        ApiError::new(kind, Report(&e).to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        CoordinatorError::from(e).into()
    }
}

fn deploying(
    (release, instances): (reef_proto::app::Release, Vec<reef_proto::app::Instance>),
) -> ApiResponse {
    ApiResponse::Deploying {
        release: Box::new(release),
        instances,
    }
}

/// Whether `caller`, with `role` (both from the subject, which the NATS
/// server let only that credential publish on), may make `request`.
pub(crate) fn authorize(role: Role, caller: &str, request: &ApiRequest) -> Result<(), ApiError> {
    let verb = request.verb();
    if !role.may_call(verb) {
        return Err(ApiError::new(
            ApiErrorKind::Forbidden,
            format!(
                "{caller} ({role}) may not call {verb}: it needs the {} role",
                Role::needed_for(verb)
            ),
        ));
    }
    if let ApiRequest::RegisterNode { record, .. } = request {
        if role == Role::Node && record.id.to_string() != caller {
            return Err(ApiError::new(
                ApiErrorKind::Forbidden,
                format!(
                    "node {caller} may register only itself, not node {}",
                    record.id
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `caller`, with `role`, may see (and, if its role lets it, stop)
/// `job`: a submitter only its own jobs, every other role any job.
pub(crate) fn may_see_job(role: Role, caller: &str, job: &JobRecord) -> Result<(), ApiError> {
    if role != Role::Submitter || job.spec.owner == caller {
        return Ok(());
    }
    Err(ApiError::new(
        ApiErrorKind::Forbidden,
        format!(
            "job {} is not {caller}'s: a submitter sees and stops only its own jobs",
            job.id
        ),
    ))
}

/// A node's registration, with its trust class taken from its credential
/// (signed by `issuer`, naming the node) rather than from what the agent
/// says. Other requests, and registrations by an admin, pass unchanged.
fn vouch(request: ApiRequest, role: Role, issuer: Option<&str>) -> Result<ApiRequest, ApiError> {
    let (mut record, credential, issuer) = match (request, role, issuer) {
        (ApiRequest::RegisterNode { record, credential }, Role::Node, Some(issuer)) => {
            (record, credential, issuer)
        }
        (request, _, _) => return Ok(request),
    };
    let forbidden = |why: String| ApiError::new(ApiErrorKind::Forbidden, why);
    let Some(jwt) = credential.as_deref() else {
        return Err(forbidden(format!(
            "node {} registered without its credential",
            record.id
        )));
    };
    let (trust, labels) = crate::plan::node_trust::node_trust(record.id, jwt, issuer)
        .map_err(|e| forbidden(Report(&e).to_string()))?;
    record.trust = trust;
    if !labels.is_empty() {
        record.labels = labels;
    }
    Ok(ApiRequest::RegisterNode { record, credential })
}

/// The verbs that change what `node.list` shows.
const NODE_CHANGES: [&str; 4] = [
    subjects::verbs::NODE_REGISTER,
    subjects::verbs::NODE_DRAIN,
    subjects::verbs::NODE_ELIGIBLE,
    subjects::verbs::NODE_REMOVE,
];

/// An API subject after the shared prefix (`<role>.<caller>.<verb>`);
/// empty if it has not that prefix.
pub(crate) fn tail(subject: &str) -> &str {
    subject
        .strip_prefix(subjects::API_PREFIX)
        .and_then(|t| t.strip_prefix('.'))
        .unwrap_or_default()
}

/// The caller's role and name (from the subject, whose tail after the API
/// prefix is `tail`), and its request; or why it cannot be answered.
pub(crate) fn incoming(
    msg: &async_nats::Message,
    tail: &str,
) -> Result<(Role, String, ApiRequest), ApiError> {
    let request = match decode::<ApiRequest>(&msg.payload) {
        Ok(request) => request,
        Err(reef_proto::DecodeError::Version { got }) => {
            tracing::warn!(subject = %msg.subject, protocol = got, "a caller of another protocol was refused");
            return Err(invalid(reef_proto::envelope::refuse_caller(got)));
        }
        Err(e) => return Err(invalid(format!("malformed request: {}", Report(&e)))),
    };
    match subjects::parse_api_tail(tail) {
        None => Err(invalid(format!(
            "{} is not an API subject (reef.api.<role>.<caller>.<verb>)",
            msg.subject
        ))),
        Some((_, _, verb)) if verb != request.verb() => Err(invalid(format!(
            "a {} request was sent to {}",
            request.verb(),
            msg.subject
        ))),
        Some((role, caller, _)) => Ok((role, caller.to_string(), request)),
    }
}

/// Sends one API answer.
pub(crate) async fn send_reply(
    client: &async_nats::Client,
    reply_to: async_nats::Subject,
    result: Result<ApiResponse, ApiError>,
) {
    let reply = match encode(&ApiReply(result)) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %Report(&e), "reply could not be encoded");
            let internal = ApiError::new(ApiErrorKind::Internal, Report(&e).to_string());
            match encode(&ApiReply(Err(internal))) {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = client.publish(reply_to, reply).await {
        tracing::warn!(error = %Report(&e), "could not send API reply");
    }
}

impl Coordinator {
    pub(crate) async fn handle_api(&mut self, msg: async_nats::Message) {
        let Some(reply_to) = msg.reply.clone() else {
            self.malformed += 1;
            tracing::debug!(subject = %msg.subject, "dropping API message without a reply subject");
            return;
        };
        let mut changes_nodes = false;
        let started = std::time::Instant::now();
        let result = match incoming(&msg, self.verb_of(&msg.subject)) {
            Err(e) => {
                self.malformed += 1;
                Err(e)
            }
            Ok((role, caller, request)) => {
                let verb = request.verb();
                changes_nodes = NODE_CHANGES.contains(&verb);
                let target = reef_proto::audit::target(&request);
                let result = match authorize(role, &caller, &request)
                    .and_then(|()| vouch(request, role, self.node_issuer.as_deref()))
                {
                    Err(e) => {
                        tracing::info!(%role, %caller, %verb, error = %Report(&e), "API call refused");
                        Err(e)
                    }
                    Ok(ApiRequest::JoinNode { public_key }) if role == Role::Joiner => self
                        .join(&caller, public_key)
                        .await
                        .map(|(node, jwt)| ApiResponse::Joined { node, jwt }),
                    Ok(ApiRequest::JoinServer {
                        name,
                        public_key,
                        sealing_key,
                        route,
                        client,
                    }) if role == Role::Joiner => self
                        .join_server(&caller, name, public_key, sealing_key, route, client)
                        .await
                        .map(|joined| ApiResponse::ServerJoined {
                            node: joined.node,
                            jwt: joined.jwt,
                            bundle: joined.bundle,
                            servers: joined.servers,
                        }),
                    Ok(ApiRequest::NodeCertificate { public_key }) if role == Role::Node => self
                        .peer_certificate(&caller, &public_key)
                        .map(|issued| ApiResponse::NodeCertificate {
                            cert_pem: issued.cert_pem,
                            not_after_ms: issued.not_after_ms,
                        }),
                    Ok(request) => self.serve(request, role, &caller).await,
                };
                self.audit.record((role, &caller), (verb, target), &result);
                self.metrics.api_call(verb, &result, started.elapsed());
                result
            }
        };
        if changes_nodes {
            // `node.list` answers from these: current before the reply.
            self.publish_node_statuses().await;
        }
        send_reply(&self.client, reply_to, result).await;
    }

    /// The verb an API subject names (on the shared API prefix or this
    /// coordinator's relay prefix); empty if neither.
    pub(crate) fn verb_of<'s>(&self, subject: &'s str) -> &'s str {
        match subject.strip_prefix(self.relay_prefix.as_str()) {
            Some(relayed) => relayed.strip_prefix('.').unwrap_or_default(),
            None => tail(subject),
        }
    }

    /// Answers `request` from `caller`, whose `role` allows it.
    async fn serve(
        &mut self,
        request: ApiRequest,
        role: Role,
        caller: &str,
    ) -> Result<ApiResponse, ApiError> {
        let request_verb = request.verb();
        match request {
            ApiRequest::SubmitJob(mut spec) => {
                if spec.app.is_some() {
                    return Err(invalid(
                        "a job runs in an app's release only from the app's [[cron]] tables",
                    ));
                }
                spec.owner = caller.to_string();
                self.submit(spec)
                    .await
                    .map(|j| ApiResponse::Job(Box::new(j)))
            }
            ApiRequest::StopJob(id) => {
                let (job, _) = self.job(id).await?;
                may_see_job(role, caller, &job)?;
                let stopped = self.stop(id).await?;
                // The copies of a replicated job are one job to its submitter.
                for copy in self.other_copies(&job).await? {
                    if let Err(e) = self.stop(copy).await {
                        tracing::debug!(job = %copy, error = %Report(&e), "could not stop a copy");
                    }
                }
                // Copies that were waiting end at once: the last may decide.
                self.copy_ended(&stopped).await?;
                Ok(ApiResponse::Job(Box::new(stopped)))
            }
            ApiRequest::RegisterNode { record, credential } => {
                let key = credential
                    .as_deref()
                    .and_then(|jwt| reef_trust::identity::from_jwt(jwt).ok())
                    .map(|who| who.key);
                let id = self.register(record).await?;
                if let Some(key) = key {
                    self.node_keys.insert(key.clone(), id);
                    self.note_node_key(id, key).await;
                }
                Ok(ApiResponse::Registered(id))
            }
            ApiRequest::AddUser {
                name,
                role,
                public_key,
            } => self
                .add_user(name, role, public_key)
                .await
                .map(|jwt| ApiResponse::UserAdded { jwt }),
            ApiRequest::ListUsers => self.list_users().await.map(ApiResponse::Users),
            ApiRequest::CreateToken {
                trust,
                labels,
                ttl_ms,
            } => self.create_token(trust, labels, ttl_ms, false).await.map(
                |(id, creds, expires_at_ms)| ApiResponse::Token {
                    id,
                    creds,
                    expires_at_ms,
                },
            ),
            ApiRequest::CreateServerToken { ttl_ms } => self
                .create_token(TrustClass::Dedicated, Default::default(), ttl_ms, true)
                .await
                .map(|(id, creds, expires_at_ms)| ApiResponse::Token {
                    id,
                    creds,
                    expires_at_ms,
                }),
            ApiRequest::ListServers => {
                let servers = self.list_servers().await?;
                let streams = self.stream_health().await?;
                Ok(ApiResponse::Servers { servers, streams })
            }
            ApiRequest::JoinServer { .. } => Err(invalid(
                "server.join is made with a server token's credential (`reef join --server TOKEN`)",
            )),
            ApiRequest::JoinNode { .. } => Err(invalid(
                "node.join is made with a join token's credential (`reef agent --join TOKEN`)",
            )),
            ApiRequest::NodeCertificate { .. } => Err(invalid(
                "node.certificate is asked for by a node with its own credential",
            )),
            ApiRequest::RemoveUser(name) => {
                self.remove_user(&name).await.map(|()| ApiResponse::Done)
            }
            ApiRequest::DrainNode { node, deadline_ms } => self
                .drain_node(&node, deadline_ms)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::SetEligible { node, eligible } => self
                .set_eligible(&node, eligible)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::RemoveNode(node) => {
                self.remove_node(&node).await.map(|()| ApiResponse::Done)
            }
            ApiRequest::DeployApp { spec, artifact } => self
                .deploy_app(*spec, artifact, caller)
                .await
                .map(deploying),
            ApiRequest::Rollback { app, to } => {
                self.rollback(&app, to, caller).await.map(deploying)
            }
            ApiRequest::Scale { app, replicas } => {
                self.scale(&app, replicas, false).await.map(deploying)
            }
            ApiRequest::StartApp(app) => self.start_app(&app).await.map(deploying),
            ApiRequest::StopApp(app) => self.stop_app(&app, false).await.map(ApiResponse::Stopping),
            ApiRequest::DestroyApp(app) => {
                self.stop_app(&app, true).await.map(ApiResponse::Stopping)
            }
            ApiRequest::DestroyAppData { app, delete_data } => self
                .destroy_app(&app, delete_data)
                .await
                .map(ApiResponse::Stopping),
            ApiRequest::SetSecret {
                app,
                key,
                value,
                create,
            } => {
                let value = reef_secrets::Zeroizing::new(value);
                self.set_secret(&app, &key, &value, create)
                    .await
                    .map(|()| ApiResponse::Done)
            }
            ApiRequest::RemoveSecret { app, key } => self
                .remove_secret(&app, &key)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::AddCertificate {
                domains,
                chain_pem,
                key_pem,
            } => {
                let key_pem = reef_secrets::Zeroizing::new(key_pem);
                self.add_certificate(domains, chain_pem, &key_pem)
                    .await
                    .map(|status| ApiResponse::Certificates(vec![status]))
            }
            ApiRequest::RemoveCertificate(domain) => self
                .remove_certificate(&domain)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::AddCron(spec) => self
                .add_cron(spec, caller)
                .await
                .map(|status| ApiResponse::Cron(Box::new(status))),
            ApiRequest::RemoveCron(name) => self
                .remove_cron(&name, role, caller)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::SetMaintenance { app, on, page } => self
                .set_maintenance(&app, on, page)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::AddWebhook { name, url, kinds } => {
                notify::add(&self.store, name, url, kinds, caller)
                    .await
                    .map(|()| ApiResponse::Done)
            }
            ApiRequest::ListWebhooks => notify::list(&self.store).await.map(ApiResponse::Webhooks),
            ApiRequest::RemoveWebhook(name) => notify::remove(&self.store, &name)
                .await
                .map(|()| ApiResponse::Done),
            ApiRequest::BackupApp(app) => self.backup_app(&app).await,
            ApiRequest::RestoreApp { app, id } => self.restore_app(&app, id, caller).await,
            // Diverted to `reads` before they reach the loop.
            ApiRequest::GetJob(_)
            | ApiRequest::ListJobs
            | ApiRequest::QueryJobs(_)
            | ApiRequest::ListNodes
            | ApiRequest::ListApps
            | ApiRequest::QueryApps(_)
            | ApiRequest::AppStatus(_)
            | ApiRequest::ListReleases(_)
            | ApiRequest::ListSecrets(_)
            | ApiRequest::ListCertificates
            | ApiRequest::ListCrons
            | ApiRequest::CronHistory { .. }
            | ApiRequest::ListAudit(_)
            | ApiRequest::ListBackups(_)
            | ApiRequest::UiLink => Err(ApiError::new(
                ApiErrorKind::Internal,
                format!("{request_verb} is answered by the read path"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reef_proto::job::JobSpec;

    #[test]
    fn a_submitter_sees_only_its_own_jobs_and_other_roles_see_all() {
        let mut spec = JobSpec::new(vec!["true".into()]);
        spec.owner = "alice".into();
        let job = crate::plan::fixtures::job(spec);
        assert!(may_see_job(Role::Submitter, "alice", &job).is_ok());
        let refused = may_see_job(Role::Submitter, "bob", &job).expect_err("not bob's");
        assert_eq!(refused.kind, ApiErrorKind::Forbidden);
        assert!(refused.message.contains("only its own"), "{refused}");
        for role in [Role::Admin, Role::Deployer, Role::Viewer] {
            assert!(may_see_job(role, "bob", &job).is_ok(), "{role}");
        }
    }
}
