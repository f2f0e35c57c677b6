//! Job submissions in batches. API messages that arrive together are taken
//! together: each submission is placed in memory, one after another (so each
//! sees the resources the previous ones took), then every job's writes go to
//! KV at once (each job's allocation before its record, the commit point, as
//! for a single job), then the assignments are published and the answers
//! sent. Requests of every other kind are handled one by one, in order.
//!
//! One at a time, a submission costs three round trips to JetStream on the
//! leader's only loop; in a batch of 64 the round trips overlap.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::error::Report;
use crate::state::cluster::Pending;
use crate::store;
use futures::FutureExt;
use reef_proto::alloc::Allocation;
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::job::{JobRecord, JobSpec, JobState};
use reef_proto::{decode, now_ms, subjects, JobId};

/// The most API messages taken in one batch.
pub(crate) const MAX_BATCH: usize = 64;

/// Takes `first` and whatever else `messages` already holds, up to [`MAX_BATCH`].
pub(crate) fn batch(
    first: async_nats::Message,
    messages: &mut async_nats::Subscriber,
) -> Vec<async_nats::Message> {
    use futures::StreamExt;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match messages.next().now_or_never() {
            Some(Some(msg)) => batch.push(msg),
            _ => break,
        }
    }
    batch
}

/// A job to record: its spec, the id it gets and what started it.
pub(crate) struct NewJob {
    pub(crate) spec: JobSpec,
    pub(crate) id: JobId,
    pub(crate) cron: Option<reef_proto::cron::CronTick>,
}

impl NewJob {
    /// A job submitted by its owner, with a fresh id.
    pub(crate) fn submitted(spec: JobSpec) -> Self {
        Self {
            spec,
            id: JobId::new(),
            cron: None,
        }
    }
}

/// A valid submission, taken off the batch: where to answer, and who asked.
struct Submission {
    reply_to: async_nats::Subject,
    role: reef_proto::roles::Role,
    spec: JobSpec,
}

/// A new job, and the allocation decided for it (None: it waits).
struct Planned {
    job: JobRecord,
    alloc: Option<Allocation>,
}

impl Coordinator {
    /// Handles API messages that arrived together.
    pub(crate) async fn handle_api_batch(&mut self, batch: Vec<async_nats::Message>) {
        let mut submissions = Vec::new();
        for msg in batch {
            let tail = self.verb_of(&msg.subject);
            if super::reads::is_read(tail) {
                let tail = tail.to_string();
                self.reads.spawn(msg, tail);
                continue;
            }
            match self.submission(&msg) {
                Some(submission) => submissions.push(submission),
                None => self.handle_api(msg).await,
            }
        }
        if !submissions.is_empty() {
            self.submit_batch(submissions).await;
        }
    }

    /// The reply subject and job of a well-formed, valid submission by a
    /// caller whose role may submit, the caller made its owner; None for
    /// anything else (which `handle_api` answers, refusals and errors included).
    fn submission(&self, msg: &async_nats::Message) -> Option<Submission> {
        let reply_to = msg.reply.clone()?;
        let (role, caller, verb) = subjects::parse_api_tail(self.verb_of(&msg.subject))?;
        if verb != subjects::verbs::JOB_SUBMIT || !role.may_call(verb) {
            return None;
        }
        match decode::<ApiRequest>(&msg.payload) {
            // Only the app's own `[[cron]]` runs in its release.
            Ok(ApiRequest::SubmitJob(mut spec))
                if spec.validate().is_ok() && spec.app.is_none() =>
            {
                spec.owner = caller.to_string();
                Some(Submission {
                    reply_to,
                    role,
                    spec,
                })
            }
            _ => None,
        }
    }

    async fn submit_batch(&mut self, submissions: Vec<Submission>) {
        let started = std::time::Instant::now();
        let mut callers = Vec::with_capacity(submissions.len());
        let mut specs = Vec::with_capacity(submissions.len());
        for s in submissions {
            let target = reef_proto::audit::job_target(&s.spec);
            callers.push((s.reply_to, s.role, s.spec.owner.clone(), target));
            specs.push(s.spec);
        }
        let results = self.submit_all(specs).await;
        for ((reply_to, role, caller, target), result) in callers.into_iter().zip(results) {
            let response = result.map(|job| ApiResponse::Job(Box::new(job)));
            self.audit.record(
                (role, &caller),
                (subjects::verbs::JOB_SUBMIT, target),
                &response,
            );
            self.metrics
                .api_call(subjects::verbs::JOB_SUBMIT, &response, started.elapsed());
            super::send_reply(&self.client, reply_to, response).await;
        }
    }

    /// Accepts valid jobs: places them, records them, publishes their
    /// assignments; one result per job, in order.
    pub(crate) async fn submit_all(
        &mut self,
        specs: Vec<JobSpec>,
    ) -> Vec<Result<JobRecord, reef_proto::api::ApiError>> {
        self.record_jobs(specs.into_iter().map(NewJob::submitted).collect())
            .await
    }

    /// [`Coordinator::submit_all`] for jobs whose ids are chosen already
    /// (a periodic job's run): a job whose id is recorded already is not
    /// recorded again (its result is an error), so a run is started once
    /// however often it is asked for.
    pub(crate) async fn record_jobs(
        &mut self,
        jobs: Vec<NewJob>,
    ) -> Vec<Result<JobRecord, reef_proto::api::ApiError>> {
        // Each spec's records, the first (the one answered with) first.
        let planned: Vec<(usize, Planned)> = jobs
            .into_iter()
            .enumerate()
            .flat_map(|(i, new)| {
                let copies = self.plan(new);
                copies.into_iter().map(move |p| (i, p))
            })
            .collect::<Vec<_>>();
        let store = self.store.clone();
        let writes = planned
            .iter()
            .map(|(_, p)| write(&store, &p.job, p.alloc.as_ref()));
        let results = futures::future::join_all(writes).await;
        let placed = planned
            .iter()
            .zip(&results)
            .filter(|((_, p), r)| p.alloc.is_some() && r.is_ok())
            .count();
        self.metrics
            .jobs_recorded(results.iter().filter(|r| r.is_ok()).count(), placed);
        let mut out = Vec::with_capacity(results.len());
        let mut answered = None;
        for ((spec, Planned { job, alloc }), result) in planned.into_iter().zip(results) {
            let first = answered != Some(spec);
            answered = Some(spec);
            let result = match result {
                Ok((alloc_revision, job_revision)) => {
                    self.accepted(&job, alloc.as_ref(), alloc_revision, job_revision)
                        .await;
                    Ok(job)
                }
                Err(e) => {
                    if let Some(alloc) = alloc {
                        // Its record may exist with no job pointing at it.
                        let reason = "withdrawn: the job could not be recorded";
                        if let Err(e) = self.withdraw(alloc.id, reason).await {
                            tracing::warn!(alloc = %alloc.id, error = %Report(&e), "could not withdraw an allocation; the next leader will");
                        }
                    }
                    Err(e.into())
                }
            };
            if first {
                out.push(result);
            } else if let Err(e) = result {
                tracing::warn!(error = %Report(&e), "a copy of a replicated job could not be recorded");
            }
        }
        out
    }

    /// Decides where a new job goes (each copy of a replicated one to a
    /// node of its own) and, where it fits, commits the allocation to the
    /// view at once, so the next job of the batch sees it.
    fn plan(&mut self, new: NewJob) -> Vec<Planned> {
        let NewJob { spec, id, cron } = new;
        let now = now_ms();
        let copies = spec.copies();
        let job = JobRecord {
            id,
            spec,
            state: JobState::Pending {
                reason: "waiting to be placed".into(),
            },
            alloc: None,
            node: None,
            submitted_at_ms: now,
            started_at_ms: None,
            finished_at_ms: None,
            stop_requested: false,
            output_lines: None,
            usage: None,
            lost_on: Vec::new(),
            result: None,
            replica: None,
            verification: None,
            cron,
        };
        let jobs = match copies {
            1 => vec![job],
            n => crate::plan::replication::copies(job, n),
        };
        let mut planned = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            let group = job.replica.map(|r| r.group);
            let alloc = match self.choose(&job.spec, &Default::default(), group) {
                Ok(placement) => {
                    let alloc = crate::drive::dispatch::new_allocation(&job, placement, now);
                    job.state = JobState::Assigned;
                    job.alloc = Some(alloc.id);
                    job.node = Some(alloc.node);
                    self.cluster.commit(alloc.clone());
                    self.note_copy(&job, alloc.node);
                    Some(alloc)
                }
                Err(nofit) => {
                    job.state = JobState::Pending {
                        reason: nofit.reason,
                    };
                    None
                }
            };
            planned.push(Planned { job, alloc });
        }
        planned
    }

    /// Bookkeeping for a job whose records are in KV: remember the
    /// revisions, then publish its assignment or queue it.
    async fn accepted(
        &mut self,
        job: &JobRecord,
        alloc: Option<&Allocation>,
        alloc_revision: Option<u64>,
        job_revision: u64,
    ) {
        match (alloc, alloc_revision) {
            (Some(alloc), Some(revision)) => {
                self.cluster.note_alloc_revision(alloc.id, revision);
                self.cluster.cache_job(job.clone(), job_revision);
                if let Err(e) = self.publish_run(alloc, &job.spec).await {
                    tracing::warn!(alloc = %alloc.id, error = %Report(&e), "assignment not published yet; will retry");
                    self.unsent.insert(alloc.id);
                }
            }
            _ => {
                if let JobState::Pending { reason } = &job.state {
                    self.cluster.wait(
                        job.id,
                        Pending {
                            spec: job.spec.clone(),
                            reason: reason.clone(),
                            avoid: Default::default(),
                            group: job.replica.map(|r| r.group),
                        },
                    );
                }
            }
        }
    }
}

/// Writes one new job: its allocation first (if placed), then its record.
async fn write(
    store: &store::Store,
    job: &JobRecord,
    alloc: Option<&Allocation>,
) -> Result<(Option<u64>, u64), CoordinatorError> {
    let alloc_revision = match alloc {
        Some(alloc) => Some(
            store
                .allocs
                .create_new(&alloc.id.to_string(), alloc)
                .await?,
        ),
        None => None,
    };
    let job_revision = store.jobs.create_new(&job.id.to_string(), job).await?;
    Ok((alloc_revision, job_revision))
}
