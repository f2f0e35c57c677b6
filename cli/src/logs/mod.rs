//! Reading job output from the logs stream: the backlog (optionally only its
//! last N lines), then, when following, live output until the job has ended
//! and every line it produced has been printed. Output comes back as it was
//! written, stdout and stderr in the order the agent read them, long lines
//! whole and a last line without a newline without one.

mod app;
mod reader;

use crate::client;
use anyhow::{anyhow, Context as _, Result};
use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures::StreamExt;
use reader::{Joiners, Printer, Sequencer};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::job::{JobRecord, JobState};
use reef_proto::log_batch::JoinedLine;
use reef_proto::subjects;
use reef_proto::{decode, JobId};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Args)]
pub struct LogsArgs {
    /// Job id (or a unique prefix of one), or an app name.
    pub job: String,
    /// Keep printing new output until the job ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines of what is already there.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// For an app: every instance's output, of every release, not only
    /// the current release's.
    #[arg(long)]
    pub all: bool,
}

/// After a job ends, how long to wait for lines still in flight.
const LATE_LINES: Duration = Duration::from_secs(3);
/// How often a submitter, who may not watch the jobs bucket, asks about its job.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for one backlog message before giving up.
const BACKLOG_WAIT: Duration = Duration::from_secs(10);

pub async fn logs(nats: &client::Nats, args: LogsArgs) -> Result<()> {
    let client = client::connect(nats).await?;
    if args.job.parse::<JobId>().is_err() {
        if let Ok(ApiResponse::App(app)) =
            client::call(&client, ApiRequest::AppStatus(args.job.clone())).await
        {
            return app::app_logs(&client, &app, args.tail, args.follow, args.all).await;
        }
    }
    let job = crate::jobs::resolve(&client, &args.job).await?;
    let js = jetstream::new(client.client.clone());
    let mut output = JobOutput::open(&js, &job, args.tail).await?;
    if args.follow {
        output.follow(&client, job.id, say_pending()).await?;
    } else {
        output.print_backlog().await?;
        if let JobState::Pending { reason } = &job.state {
            eprintln!(
                "reef: job {} is pending, so it has no output yet: {reason}",
                job.id
            );
        }
    }
    Ok(())
}

/// A follower's note, on stderr, each time its job waits for a new reason
/// (`reef run`, `reef logs -f`): a job that waits says why.
pub fn say_pending() -> impl FnMut(&JobRecord) {
    let mut last_reason = String::new();
    move |record| {
        if let JobState::Pending { reason } = &record.state {
            if *reason != last_reason {
                eprintln!("reef: job {} is waiting: {reason}", record.id);
                last_reason = reason.clone();
            }
        }
    }
}

/// One job's output, read in order from the logs stream.
pub struct JobOutput {
    messages: consumer::pull::Ordered,
    /// Messages that were in the stream when it was opened.
    backlog: u64,
    read: u64,
    tail: Option<VecDeque<JoinedLine>>,
    tail_len: usize,
    sequencer: Sequencer,
    joiners: Joiners,
    printer: Printer,
    /// Lines printed (stdout, stderr).
    pub printed: (u64, u64),
    closed: bool,
}

impl JobOutput {
    pub async fn open(
        js: &jetstream::Context,
        job: &JobRecord,
        tail: Option<usize>,
    ) -> Result<Self> {
        let filter = subjects::job_logs(&job.spec.owner, job.id);
        let (backlog, messages) = ordered(js, filter).await?;
        Ok(Self {
            messages,
            backlog,
            read: 0,
            tail: tail.map(|n| VecDeque::with_capacity(n.min(10_000))),
            tail_len: tail.unwrap_or(0),
            sequencer: Sequencer::default(),
            joiners: Joiners::default(),
            printer: Printer::default(),
            printed: (0, 0),
            closed: false,
        })
    }

    /// Prints what was in the stream when it was opened.
    pub async fn print_backlog(&mut self) -> Result<()> {
        while self.read < self.backlog && !self.closed {
            let msg = tokio::time::timeout(BACKLOG_WAIT, self.messages.next())
                .await
                .map_err(|_| anyhow!("timed out reading logs"))?;
            match msg {
                Some(Ok(msg)) => self.take(&msg.subject, &msg.payload),
                Some(Err(e)) => return Err(anyhow!("reading logs failed: {e}")),
                None => break,
            }
        }
        self.flush_tail();
        Ok(())
    }

    /// Prints the backlog and then live output until the job has ended and
    /// every line it reported has been printed. `on_update` sees each new
    /// version of the job record. Returns the final record.
    pub async fn follow(
        &mut self,
        client: &client::Conn,
        job: JobId,
        mut on_update: impl FnMut(&JobRecord),
    ) -> Result<JobRecord> {
        let mut updates = JobUpdates::start(client, job).await?;
        let mut last: Option<JobRecord> = None;
        let mut ended_at: Option<tokio::time::Instant> = None;
        loop {
            if let Some(job) = &last {
                if job.state.is_terminal() {
                    let (out, err) = job.output_lines.unwrap_or((0, 0));
                    if self.printed.0 >= out && self.printed.1 >= err {
                        self.flush_tail();
                        return Ok(job.clone());
                    }
                }
            }
            let late = async {
                match ended_at {
                    Some(at) => tokio::time::sleep_until(at + LATE_LINES).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.messages.next(), if !self.closed => match msg {
                    Some(Ok(msg)) => self.take(&msg.subject, &msg.payload),
                    Some(Err(e)) => return Err(anyhow!("reading logs failed: {e}")),
                    None => self.closed = true,
                },
                record = updates.next(client, job), if ended_at.is_none() => {
                    let record = record?;
                    on_update(&record);
                    if record.state.is_terminal() {
                        ended_at = Some(tokio::time::Instant::now());
                    }
                    last = Some(record);
                }
                _ = late => {
                    // Some lines never arrived (dropped while NATS was away); do not wait forever.
                    self.flush_tail();
                    return last.ok_or_else(|| anyhow!("job vanished"));
                }
            }
        }
    }

    fn take(&mut self, subject: &str, payload: &[u8]) {
        self.read += 1;
        let in_backlog = self.read <= self.backlog;
        for piece in self.sequencer.accept(subject, payload) {
            if piece.ends_line() {
                match piece.output {
                    subjects::Output::Stdout => self.printed.0 += 1,
                    subjects::Output::Stderr => self.printed.1 += 1,
                }
            }
            match &mut self.tail {
                Some(tail) if in_backlog => {
                    let Some(line) = self.joiners.push(subject, &piece) else {
                        continue;
                    };
                    if self.tail_len == 0 {
                        continue;
                    }
                    if tail.len() == self.tail_len {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                _ => self.printer.piece(subject, b"", &piece),
            }
        }
        if in_backlog && self.read == self.backlog {
            self.flush_tail();
        }
        self.printer.flush();
    }

    fn flush_tail(&mut self) {
        if let Some(tail) = self.tail.take() {
            for line in tail {
                self.printer.line(b"", &line);
            }
        }
        self.printer.flush();
    }
}

/// Waits until job `job`'s record satisfies `done`, and returns it.
pub async fn wait_for_record(
    client: &client::Conn,
    job: JobId,
    done: impl Fn(&JobRecord) -> bool,
) -> Result<JobRecord> {
    let mut updates = JobUpdates::start(client, job).await?;
    loop {
        let record = updates.next(client, job).await?;
        if done(&record) {
            return Ok(record);
        }
    }
}

/// Where a followed job's new records come from.
enum JobUpdates {
    /// A watch of its key in the jobs bucket.
    Watch(Box<async_nats::jetstream::kv::Watch>),
    /// `job.get` every [`POLL`]: a submitter may not read the jobs bucket,
    /// which holds everyone's jobs.
    Poll(tokio::time::Interval),
}

impl JobUpdates {
    async fn start(client: &client::Conn, job: JobId) -> Result<Self> {
        if client.who.role == reef_proto::roles::Role::Submitter {
            return Ok(Self::Poll(tokio::time::interval(POLL)));
        }
        let jobs = jetstream::new(client.client.clone())
            .get_key_value(subjects::JOBS_BUCKET)
            .await
            .map_err(|e| anyhow!("could not open the jobs bucket: {e}"))?;
        let watch = jobs
            .watch_with_history(job.to_string())
            .await
            .context("could not watch the job")?;
        Ok(Self::Watch(Box::new(watch)))
    }

    /// The job's next record (for a poll, its record now).
    async fn next(&mut self, client: &client::Conn, job: JobId) -> Result<JobRecord> {
        match self {
            Self::Watch(watch) => loop {
                match watch.next().await {
                    Some(Ok(entry)) => {
                        if let Ok(record) = decode::<JobRecord>(&entry.value) {
                            return Ok(record);
                        }
                    }
                    Some(Err(e)) => return Err(anyhow!("watching the job failed: {e}")),
                    None => return Err(anyhow!("the job watch ended unexpectedly")),
                }
            },
            Self::Poll(interval) => {
                interval.tick().await;
                match client::call(client, ApiRequest::GetJob(job)).await? {
                    ApiResponse::Job(record) => Ok(*record),
                    _ => Err(anyhow!("unexpected reply from the coordinator")),
                }
            }
        }
    }
}

/// The last `n` whole lines stored under a log subject filter, stdout and
/// stderr together in the order they were written.
pub async fn last_lines(js: &jetstream::Context, filter: &str, n: usize) -> Result<Vec<Vec<u8>>> {
    let (backlog, mut messages) = ordered(js, filter.to_string()).await?;
    let (mut sequencer, mut joiners) = (Sequencer::default(), Joiners::default());
    let mut lines = VecDeque::with_capacity(n);
    for _ in 0..backlog {
        let msg = tokio::time::timeout(BACKLOG_WAIT, messages.next())
            .await
            .map_err(|_| anyhow!("timed out reading logs"))?;
        let Some(Ok(msg)) = msg else { break };
        for piece in sequencer.accept(&msg.subject, &msg.payload) {
            let Some(line) = joiners.push(&msg.subject, &piece) else {
                continue;
            };
            if lines.len() == n {
                lines.pop_front();
            }
            if n > 0 {
                lines.push_back(line.bytes);
            }
        }
    }
    Ok(lines.into())
}

/// An ordered consumer over every stored log batch matching `filter`, from
/// the oldest, with the number of batches stored when it was opened.
async fn ordered(
    js: &jetstream::Context,
    filter: String,
) -> Result<(u64, consumer::pull::Ordered)> {
    let stream = js.get_stream(subjects::LOGS_STREAM).await.map_err(|e| {
        anyhow!("could not open the logs stream (has a coordinator ever run?): {e}")
    })?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            // Named, so that the filter travels in the create subject
            // (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), where the
            // server's permissions can hold a role to the logs it may read.
            name: Some(format!("logs-{}", uuid::Uuid::now_v7())),
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("could not read the logs stream")?;
    let backlog = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .context("could not read the logs stream")?;
    Ok((backlog, messages))
}
