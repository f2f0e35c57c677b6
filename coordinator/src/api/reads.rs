//! The read-only verbs (`job.get`, `job.list`, `node.list`, `app.status`,
//! `app.list`, `app.releases`, `secret.list`, `cert.list`, `cron.list`,
//! `cron.history`), answered by
//! whichever coordinator takes the request, from KV, on a task of their
//! own: they never wait in the leader's loop, and a follower answers them
//! without relaying.
//!
//! - jobs: one read for `job.get`; a page of `job.list` reads the jobs
//!   bucket from its newest write back only as far as `plan::job_query`
//!   needs, the latest writes from each coordinator's view of them
//!   ([`RecentJobs`]);
//! - nodes: what the leader last wrote of them (`NodeStatuses`, at most a
//!   tick old, at once after a node changes);
//! - apps: the records and releases, and the live instances from a view
//!   every coordinator keeps of the instances bucket
//!   ([`LiveInstances`]), caught up with the bucket before it answers.

use super::live_instances::LiveInstances;
use super::recent_jobs::RecentJobs;
use super::{authorize, incoming, may_see_job, not_found, send_reply};
use crate::error::Report;
use crate::plan::job_query::Page;
use crate::store::{Next, Store};
use reef_proto::api::{
    ApiError, ApiErrorKind, ApiRequest, ApiResponse, AppQuery, AppStatus, JobQuery,
    MAX_LISTED_APPS, MAX_LISTED_JOBS,
};
use reef_proto::app::{AppRecord, Release};
use reef_proto::job::JobRecord;
use reef_proto::roles::Role;
use reef_proto::{subjects, JobId};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// The verbs answered here.
const READ_VERBS: [&str; 13] = [
    subjects::verbs::JOB_GET,
    subjects::verbs::JOB_LIST,
    subjects::verbs::NODE_LIST,
    subjects::verbs::APP_STATUS,
    subjects::verbs::APP_LIST,
    subjects::verbs::APP_RELEASES,
    subjects::verbs::SECRET_LIST,
    subjects::verbs::CERT_LIST,
    subjects::verbs::CRON_LIST,
    subjects::verbs::CRON_HISTORY,
    subjects::verbs::AUDIT_LIST,
    subjects::verbs::APP_BACKUPS,
    subjects::verbs::UI_LINK,
];

/// How many reads are answered at once; more wait their turn.
const READS_AT_ONCE: usize = 32;

/// Whether an API subject's verb is one answered here (`tail` is the
/// subject after the API prefix).
pub(crate) fn is_read(tail: &str) -> bool {
    subjects::parse_api_tail(tail).is_some_and(|(_, _, verb)| READ_VERBS.contains(&verb))
}

/// Answers reads on tasks of its own; cheap to clone.
#[derive(Clone)]
pub(crate) struct Reads {
    reader: Arc<Reader>,
    tasks: TaskTracker,
    slots: Arc<Semaphore>,
}

impl Reads {
    pub(crate) fn new(
        client: async_nats::Client,
        store: Store,
        acme: bool,
        retain_jobs: std::time::Duration,
        audit: super::audit::Audit,
        metrics: crate::metrics::Metrics,
        (links, ui_base): (crate::ui::links::Links, Option<String>),
    ) -> Self {
        let tasks = TaskTracker::new();
        Self {
            reader: Arc::new(Reader {
                instances: LiveInstances::new(store.instances.clone(), tasks.clone()),
                recent_jobs: RecentJobs::new(store.jobs.clone(), retain_jobs, tasks.clone()),
                client,
                store,
                acme,
                audit,
                metrics,
                links,
                ui_base,
            }),
            tasks,
            slots: Arc::new(Semaphore::new(READS_AT_ONCE)),
        }
    }

    /// Answers `msg` (whose subject after the API prefix is `tail`) on a
    /// task of its own.
    pub(crate) fn spawn(&self, msg: async_nats::Message, tail: String) {
        let (reader, slots) = (self.reader.clone(), self.slots.clone());
        self.tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            reader.answer(msg, &tail).await;
        });
    }

    /// Waits for the reads under way (and the instances view) to end;
    /// `shutdown` must be cancelled first.
    pub(crate) async fn close(&self) {
        self.reader.instances.stop();
        self.reader.recent_jobs.stop();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// What answering reads needs.
pub(crate) struct Reader {
    client: async_nats::Client,
    store: Store,
    instances: LiveInstances,
    recent_jobs: RecentJobs,
    /// Whether certificates are ordered over ACME (domains without one are
    /// listed then).
    acme: bool,
    audit: super::audit::Audit,
    metrics: crate::metrics::Metrics,
    /// Sign-in links to the dashboard, which any coordinator issues.
    links: crate::ui::links::Links,
    /// This coordinator's dashboard (None: it serves none).
    ui_base: Option<String>,
}

impl Reader {
    async fn answer(&self, msg: async_nats::Message, tail: &str) {
        let Some(reply_to) = msg.reply.clone() else {
            return;
        };
        let result = match incoming(&msg, tail) {
            Ok((role, caller, request)) => {
                let started = std::time::Instant::now();
                let (verb, target) = (request.verb(), reef_proto::audit::target(&request));
                let result = match authorize(role, &caller, &request) {
                    Ok(()) => self.serve(request, role, &caller).await,
                    Err(e) => {
                        tracing::info!(%role, %caller, error = %Report(&e), "API call refused");
                        Err(e)
                    }
                };
                self.audit.record((role, &caller), (verb, target), &result);
                self.metrics.api_call(verb, &result, started.elapsed());
                result
            }
            Err(e) => Err(e),
        };
        send_reply(&self.client, reply_to, result).await;
    }

    async fn serve(
        &self,
        request: ApiRequest,
        role: Role,
        caller: &str,
    ) -> Result<ApiResponse, ApiError> {
        match request {
            ApiRequest::GetJob(id) => {
                let job = self.job(id).await?;
                may_see_job(role, caller, &job)?;
                Ok(ApiResponse::Job(Box::new(job)))
            }
            ApiRequest::ListJobs => {
                self.jobs(JobQuery::newest(MAX_LISTED_JOBS as u32), role, caller)
                    .await
            }
            ApiRequest::QueryJobs(query) => self.jobs(query, role, caller).await,
            ApiRequest::ListNodes => Ok(ApiResponse::Nodes(
                self.store
                    .node_statuses
                    .get(subjects::NODE_STATUS_KEY)
                    .await?
                    .map(|(statuses, _)| statuses.nodes)
                    .unwrap_or_default(),
            )),
            ApiRequest::AppStatus(name) => {
                Ok(ApiResponse::App(Box::new(self.app_status(&name).await?)))
            }
            ApiRequest::ListApps => {
                let (mut apps, _) = self
                    .apps(&AppQuery {
                        state: None,
                        limit: MAX_LISTED_APPS,
                    })
                    .await?;
                apps.sort_by(|a, b| a.record.name.cmp(&b.record.name));
                Ok(ApiResponse::Apps(apps))
            }
            ApiRequest::QueryApps(query) => {
                query.validate().map_err(super::invalid)?;
                let (apps, truncated) = self.apps(&query).await?;
                Ok(ApiResponse::AppPage { apps, truncated })
            }
            ApiRequest::ListReleases(name) => {
                Ok(ApiResponse::Releases(self.releases(&name).await?))
            }
            ApiRequest::ListSecrets(app) => Ok(ApiResponse::SecretNames(
                super::secrets::secret_names(&self.store, &app).await?,
            )),
            ApiRequest::ListCertificates => Ok(ApiResponse::Certificates(
                crate::certs::list(&self.store, self.acme).await?,
            )),
            ApiRequest::ListCrons => Ok(ApiResponse::Crons(
                super::cron::list(&self.store, role, caller).await?,
            )),
            ApiRequest::CronHistory { name, limit } => Ok(ApiResponse::CronRuns(
                super::cron::history(&self.store, &name, limit, role, caller).await?,
            )),
            ApiRequest::ListAudit(query) => {
                let (entries, truncated) = super::audit::list(&self.store, &query).await?;
                Ok(ApiResponse::Audit { entries, truncated })
            }
            ApiRequest::ListBackups(app) => Ok(ApiResponse::Backups(
                super::backups::list(&self.store, &app).await?,
            )),
            ApiRequest::UiLink => {
                let (token, expires_at_ms) = self.links.issue(caller, role).await.map_err(|e| {
                    ApiError::new(
                        ApiErrorKind::Unavailable,
                        format!("no sign-in link could be made: {e}"),
                    )
                })?;
                Ok(ApiResponse::UiLink {
                    token,
                    base: self.ui_base.clone(),
                    expires_at_ms,
                })
            }
            other => Err(ApiError::new(
                ApiErrorKind::Internal,
                format!("{} is not a read", other.verb()),
            )),
        }
    }

    async fn job(&self, id: JobId) -> Result<JobRecord, ApiError> {
        self.store
            .jobs
            .get(&id.to_string())
            .await?
            .map(|(job, _)| job)
            .ok_or_else(|| ApiError::new(ApiErrorKind::NotFound, format!("no job {id}")))
    }

    /// A page of jobs, read from the newest write back only as far as the
    /// page needs; a submitter sees only its own.
    async fn jobs(
        &self,
        query: JobQuery,
        role: Role,
        caller: &str,
    ) -> Result<ApiResponse, ApiError> {
        query.validate().map_err(super::invalid)?;
        let owner = (role == Role::Submitter).then(|| caller.to_string());
        let expected = u64::from(query.limit) * 4;
        let mut page = Page::new(query, owner);
        let mut visit = |written_ms: u64, job: Option<&JobRecord>| {
            if page.full(written_ms) {
                return Next::Stop;
            }
            if let Some(job) = job {
                page.offer(job);
            }
            Next::More
        };
        let (next, below) = self.recent_jobs.newest(&mut visit).await?;
        if next == Next::More {
            self.store
                .jobs
                .newest_first(Some(below), expected, |written| {
                    visit(written.written_ms, written.value.as_ref())
                })
                .await?;
        }
        let (jobs, truncated) = page.finish();
        Ok(ApiResponse::Jobs { jobs, truncated })
    }

    async fn app_status(&self, name: &str) -> Result<AppStatus, ApiError> {
        let (record, _) = self
            .store
            .apps
            .get(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        self.status_of(record).await
    }

    async fn status_of(&self, mut record: AppRecord) -> Result<AppStatus, ApiError> {
        // A listing of many apps must stay small: the page stays in the
        // record and the routes, its size is listed.
        if let Some(maintenance) = record.maintenance.as_mut() {
            maintenance.page.body = Vec::new();
        }
        let name = record.name.clone();
        let (release, _) = self
            .store
            .releases
            .get(&subjects::release_key(&name, record.version))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorKind::Internal,
                    format!("release {} of {name} is missing", record.version),
                )
            })?;
        let instances = self.instances.of(&name).await?;
        let services = if release.spec.services.is_empty() {
            Vec::new()
        } else {
            let nodes = self
                .store
                .node_statuses
                .get(subjects::NODE_STATUS_KEY)
                .await?
                .map(|(statuses, _)| statuses.nodes)
                .unwrap_or_default();
            super::services::service_statuses(&self.store, &name, |id| {
                nodes.iter().find(|n| n.record.id == id).cloned()
            })
            .await?
        };
        Ok(AppStatus {
            record,
            release,
            instances,
            services,
        })
    }

    /// The apps in `query`'s state, most recently changed first, at most
    /// its limit; and whether more matched.
    async fn apps(&self, query: &AppQuery) -> Result<(Vec<AppStatus>, bool), ApiError> {
        let mut records: Vec<AppRecord> = self
            .store
            .apps
            .all()
            .await?
            .into_iter()
            .filter(|r| query.state.as_deref().is_none_or(|s| r.state_name() == s))
            .collect();
        records.sort_by(|a, b| {
            b.updated_at_ms
                .cmp(&a.updated_at_ms)
                .then_with(|| a.name.cmp(&b.name))
        });
        let truncated = records.len() > query.limit as usize;
        records.truncate(query.limit as usize);
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            out.push(self.status_of(record).await?);
        }
        Ok((out, truncated))
    }

    async fn releases(&self, name: &str) -> Result<Vec<Release>, ApiError> {
        if self.store.apps.get(name).await?.is_none() {
            return Err(not_found(name));
        }
        let prefix = format!("{name}.");
        let keys = self
            .store
            .releases
            .keys()
            .await?
            .into_iter()
            .filter(|k| k.starts_with(&prefix));
        let mut releases: Vec<Release> = self
            .store
            .releases
            .read_many(keys)
            .await?
            .into_iter()
            .map(|(_, release, _)| release)
            .filter(|r| r.app == name)
            .collect();
        releases.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(releases)
    }
}
