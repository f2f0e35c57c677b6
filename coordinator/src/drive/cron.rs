//! Periodic jobs on the leader: when a tick is due, `plan::cron` decides
//! what becomes of it; each decision is claimed in the cron-ticks bucket
//! before it is carried out, so a tick is decided once even across a
//! change of leader: a leader that finds a claim carries out what it says
//! (the job it names is recorded under that id, which exists at most once).
//! The record in the cron bucket says up to which tick all is handled.

use crate::api::submit::NewJob;
use crate::drive::Coordinator;
use crate::error::{CoordinatorError, Report};
use crate::plan::app_crons;
use crate::plan::cron::{self as plan, Runs, Step};
use jiff::tz::TimeZone;
use reef_proto::cron::{tick_text, CronClaim, CronRecord, CronRun, CronTick, RunOutcome, Schedule};
use reef_proto::{now_ms, subjects, JobId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often the leader reads the bucket again for periodic jobs it did
/// not add itself (a restored backup).
const REFRESH: Duration = Duration::from_secs(5);
/// How often a run that waits for the previous one looks again.
const QUEUED_CHECK_MS: u64 = 500;

/// The periodic jobs this leader keeps, by name.
#[derive(Default)]
pub(crate) struct Crons {
    jobs: BTreeMap<String, Entry>,
    refreshed: Option<Instant>,
}

struct Entry {
    record: CronRecord,
    revision: u64,
    schedule: Schedule,
    tz: TimeZone,
    /// When it next needs the leader (None: never).
    next_ms: Option<u64>,
}

impl Entry {
    fn new(record: CronRecord, revision: u64) -> Result<Self, reef_proto::cron::CronError> {
        let (schedule, tz) = record.spec.parsed()?;
        Ok(Self {
            next_ms: Some(record.handled_ms),
            record,
            revision,
            schedule,
            tz,
        })
    }
}

impl Crons {
    /// When the leader's loop next has a tick to handle.
    pub(crate) fn wake(&self) -> tokio::time::Instant {
        let now = now_ms();
        let soonest = self.jobs.values().filter_map(|e| e.next_ms).min();
        let wait = soonest.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis(at.saturating_sub(now))
        });
        tokio::time::Instant::now() + wait
    }

    /// A job as `reef cron add` answers it.
    pub(crate) fn status(&self, name: &str) -> Option<reef_proto::cron::CronStatus> {
        let entry = self.jobs.get(name)?;
        Some(reef_proto::cron::CronStatus {
            record: entry.record.clone(),
            next_ms: next_tick(&entry.schedule, &entry.tz, entry.record.handled_ms),
        })
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.jobs.remove(name);
    }

    fn keep(&mut self, name: &str, record: CronRecord, revision: u64) {
        match Entry::new(record, revision) {
            Ok(entry) => {
                self.jobs.insert(name.to_string(), entry);
            }
            Err(e) => {
                tracing::warn!(cron = name, error = %e, "ignoring a periodic job whose record does not validate");
            }
        }
    }
}

/// The first tick after `after_ms`.
pub(crate) fn next_tick(schedule: &Schedule, tz: &TimeZone, after_ms: u64) -> Option<u64> {
    let after = jiff::Timestamp::from_millisecond(i64::try_from(after_ms).ok()?).ok()?;
    let next = schedule.next_after(after, tz)?;
    u64::try_from(next.as_millisecond()).ok()
}

impl Coordinator {
    /// Reads every periodic job (at the start of a term, and every
    /// [`REFRESH`] for those written by others).
    pub(crate) async fn load_crons(&mut self) -> Result<(), CoordinatorError> {
        let keys = self.store.crons.keys().await?;
        let known: Vec<String> = self.crons.jobs.keys().cloned().collect();
        for name in known.iter().filter(|name| !keys.contains(name)) {
            self.crons.remove(name);
        }
        let new: Vec<String> = keys
            .into_iter()
            .filter(|key| !self.crons.jobs.contains_key(key))
            .collect();
        for (name, record, revision) in self.store.crons.read_many(new).await? {
            self.crons.keep(&name, record, revision);
        }
        self.crons.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Adds a periodic job: recorded now, its first tick the first after now.
    pub(crate) async fn add_cron(
        &mut self,
        mut spec: reef_proto::cron::CronSpec,
        owner: &str,
    ) -> Result<reef_proto::cron::CronStatus, reef_proto::api::ApiError> {
        spec.validate()
            .map_err(|e| crate::api::invalid(e.to_string()))?;
        if spec.job.app.is_some() {
            return Err(crate::api::invalid(
                "a periodic job runs in an app's release only from the app's [[cron]] tables",
            ));
        }
        spec.job.owner = owner.to_string();
        let name = spec.name.clone();
        let now = now_ms();
        let record = CronRecord {
            spec,
            created_at_ms: now,
            handled_ms: now,
            recent: Vec::new(),
        };
        let Some(revision) = self.store.crons.create(&name, &record).await? else {
            return Err(crate::api::invalid(format!(
                "a periodic job named {name} exists; remove it first (reef cron rm {name})"
            )));
        };
        self.crons.keep(&name, record, revision);
        self.advance_cron(&name, now).await?;
        self.crons
            .status(&name)
            .ok_or_else(|| crate::api::invalid(format!("periodic job {name} vanished")))
    }

    /// Removes a periodic job; runs under way go on.
    pub(crate) async fn remove_cron(
        &mut self,
        name: &str,
        role: reef_proto::roles::Role,
        caller: &str,
    ) -> Result<(), reef_proto::api::ApiError> {
        let Some((record, _)) = self.store.crons.get(name).await? else {
            return Err(reef_proto::api::ApiError::new(
                reef_proto::api::ApiErrorKind::NotFound,
                format!("no periodic job {name}"),
            ));
        };
        crate::api::cron::may_see(role, caller, &record)?;
        self.store.crons.delete(name).await?;
        self.crons.remove(name);
        Ok(())
    }

    /// Checks the periodic jobs `wanted` for app `app` before its deploy
    /// writes anything: each valid, and no name another job holds.
    pub(crate) async fn check_app_crons(
        &self,
        app: &str,
        wanted: &[reef_proto::cron::CronSpec],
    ) -> Result<(), reef_proto::api::ApiError> {
        for spec in wanted {
            spec.validate()
                .map_err(|e| crate::api::invalid(format!("[[cron]] {}: {e}", spec.name)))?;
        }
        let existing = self.store.crons.all().await?;
        if let Some(name) = app_crons::taken(&existing, app, wanted) {
            return Err(crate::api::invalid(format!(
                "[[cron]]: a periodic job named {name} exists and is not {app}'s (reef cron rm {name}, or rename the table)"
            )));
        }
        Ok(())
    }

    /// Makes `app`'s periodic jobs those of its `[[cron]]` tables: new ones
    /// recorded (first tick after now), changed ones rewritten with their
    /// runs kept, those whose tables are gone removed.
    pub(crate) async fn sync_app_crons(
        &mut self,
        app: &str,
        wanted: &[reef_proto::cron::CronSpec],
    ) -> Result<(), CoordinatorError> {
        let existing = self.store.crons.all().await?;
        let plan = app_crons::sync(&existing, app, wanted);
        let now = now_ms();
        for spec in plan.create {
            let name = spec.name.clone();
            let record = CronRecord {
                spec,
                created_at_ms: now,
                handled_ms: now,
                recent: Vec::new(),
            };
            if let Some(revision) = self.store.crons.create(&name, &record).await? {
                tracing::info!(%app, cron = %name, "periodic job added");
                self.crons.keep(&name, record, revision);
            }
        }
        for spec in plan.update {
            let name = spec.name.clone();
            let Some((mut record, revision)) = self.store.crons.get(&name).await? else {
                continue;
            };
            record.spec = spec;
            if let Some(revision) = self.store.crons.put_if(&name, &record, revision).await? {
                tracing::info!(%app, cron = %name, "periodic job changed");
                self.crons.keep(&name, record, revision);
            }
        }
        for name in plan.remove {
            self.store.crons.delete(&name).await?;
            self.crons.remove(&name);
            tracing::info!(%app, cron = %name, "periodic job removed with its [[cron]] table");
        }
        Ok(())
    }

    /// Removes every periodic job `owner` added; their names.
    pub(crate) async fn remove_crons_of(
        &mut self,
        owner: &str,
    ) -> Result<Vec<String>, CoordinatorError> {
        let mut removed = Vec::new();
        for record in self.store.crons.all().await? {
            if record.spec.job.owner == owner {
                self.store.crons.delete(&record.spec.name).await?;
                self.crons.remove(&record.spec.name);
                removed.push(record.spec.name);
            }
        }
        Ok(removed)
    }

    /// Handles every periodic job whose time has come.
    pub(crate) async fn cron_tick(&mut self) {
        if self
            .crons
            .refreshed
            .is_none_or(|at| at.elapsed() >= REFRESH)
        {
            if let Err(e) = self.load_crons().await {
                tracing::warn!(error = %Report(&e), "could not read the periodic jobs");
            }
        }
        let now = now_ms();
        let due: Vec<String> = self
            .crons
            .jobs
            .iter()
            .filter(|(_, e)| e.next_ms.is_some_and(|at| at <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            if let Err(e) = self.advance_cron(&name, now).await {
                tracing::warn!(cron = %name, error = %Report(&e), "a periodic job's tick is not handled yet; trying again");
                if let Some(entry) = self.crons.jobs.get_mut(&name) {
                    entry.next_ms = Some(now + QUEUED_CHECK_MS);
                }
            }
        }
    }

    /// Decides and carries out `name`'s due ticks.
    async fn advance_cron(&mut self, name: &str, now: u64) -> Result<(), CoordinatorError> {
        let Some(entry) = self.crons.jobs.get(name) else {
            return Ok(());
        };
        let due = plan::due(
            &entry.schedule,
            &entry.tz,
            entry.record.handled_ms,
            now,
            entry.record.spec.catch_up_ms,
        );
        let queued = entry
            .record
            .queued()
            .and_then(|run| run.job().map(|job| (run.tick_ms, job)));
        let overlap = entry.record.spec.overlap;
        let asks_running = queued.is_some()
            || (!due.ticks.is_empty() && overlap != reef_proto::cron::Overlap::Allow);
        let last = entry.record.last_started();
        let mut record = entry.record.clone();
        let revision = entry.revision;
        let running = match (asks_running, last) {
            (true, Some(job)) => self.job_live(job).await?,
            _ => false,
        };
        let runs = Runs {
            overlap,
            running,
            queued,
        };
        let steps = plan::decide(&runs, &due, JobId::new);
        for step in &steps {
            let run = self.claim(name, step, &runs, now).await?;
            if let RunOutcome::Started { job } = run.outcome {
                self.start_run(&record, run.tick_ms, job).await?;
            }
            record.remember(run);
        }
        if let Some(handled) = due.handled_ms {
            record.handled_ms = record.handled_ms.max(handled);
        }
        let revision = if steps.is_empty() && due.handled_ms.is_none() {
            revision
        } else {
            match self.store.crons.put_if(name, &record, revision).await? {
                Some(revision) => revision,
                None => {
                    // Changed or removed by someone else: read it again;
                    // the claims keep what was decided.
                    self.crons.remove(name);
                    self.crons.refreshed = None;
                    return Ok(());
                }
            }
        };
        let next = match record.queued() {
            Some(_) => Some(
                due.next_ms
                    .map_or(now + QUEUED_CHECK_MS, |n| n.min(now + QUEUED_CHECK_MS)),
            ),
            None => due.next_ms,
        };
        if let Some(entry) = self.crons.jobs.get_mut(name) {
            entry.record = record;
            entry.revision = revision;
            entry.next_ms = next;
        }
        Ok(())
    }

    /// Claims `step`'s tick; the run that stands is returned: ours, or the
    /// one a leader before decided.
    async fn claim(
        &self,
        name: &str,
        step: &Step,
        runs: &Runs,
        now: u64,
    ) -> Result<CronRun, CoordinatorError> {
        let key = subjects::cron_tick_key(name, step.tick_ms);
        let run = CronRun {
            tick_ms: step.tick_ms,
            at_ms: now,
            outcome: step.outcome.clone(),
        };
        let claim = CronClaim { run: run.clone() };
        if step.starts_queued(runs) {
            // The tick was claimed when it was queued: move the claim on.
            if let Some((stored, revision)) = self.store.cron_ticks.get(&key).await? {
                if !matches!(stored.run.outcome, RunOutcome::Queued { .. }) {
                    return Ok(stored.run);
                }
                return match self.store.cron_ticks.put_if(&key, &claim, revision).await? {
                    Some(_) => Ok(run),
                    None => self.claimed(name, &key).await,
                };
            }
        }
        match self.store.cron_ticks.create(&key, &claim).await? {
            Some(_) => Ok(run),
            None => self.claimed(name, &key).await,
        }
    }

    /// The run a claim that exists already says.
    async fn claimed(&self, name: &str, key: &str) -> Result<CronRun, CoordinatorError> {
        match self.store.cron_ticks.get(key).await? {
            Some((claim, _)) => Ok(claim.run),
            None => Err(CoordinatorError::Cron {
                name: name.to_string(),
                reason: format!("the claim {key} vanished while it was read"),
            }),
        }
    }

    /// Records the job of a run that started, unless it is recorded already.
    async fn start_run(
        &mut self,
        record: &CronRecord,
        tick_ms: u64,
        job: JobId,
    ) -> Result<(), CoordinatorError> {
        if self.store.jobs.contains(&job.to_string()).await? {
            return Ok(());
        }
        let mut spec = record.spec.job.clone();
        spec.env
            .insert("REEF_CRON".into(), record.spec.name.clone());
        spec.env.insert("REEF_CRON_TICK".into(), tick_text(tick_ms));
        let new = NewJob {
            spec,
            id: job,
            cron: Some(CronTick {
                name: record.spec.name.clone(),
                tick_ms,
            }),
        };
        let result = self.record_jobs(vec![new]).await.pop();
        match result {
            Some(Ok(_)) => Ok(()),
            // Recorded meanwhile by someone else: it started, once.
            _ if self.store.jobs.contains(&job.to_string()).await? => Ok(()),
            Some(Err(e)) => Err(CoordinatorError::Cron {
                name: record.spec.name.clone(),
                reason: format!("its job could not be recorded: {}", e.message),
            }),
            None => Ok(()),
        }
    }

    /// Whether `job` is recorded and has not ended.
    async fn job_live(&self, job: JobId) -> Result<bool, CoordinatorError> {
        Ok(self
            .store
            .jobs
            .get(&job.to_string())
            .await?
            .is_some_and(|(record, _)| !record.state.is_terminal()))
    }
}
