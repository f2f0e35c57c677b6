//! Reading job output from the logs stream: the backlog (optionally only its
//! last N lines), then, when following, live lines until the job has ended
//! and every line it produced has been printed.

use crate::client;
use anyhow::{anyhow, Context as _, Result};
use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures::StreamExt;
use reef_proto::api::{ApiRequest, ApiResponse, AppStatus};
use reef_proto::job::JobRecord;
use reef_proto::subjects::{self, Output};
use reef_proto::{decode, JobId};
use std::collections::VecDeque;
use std::io::Write;
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
            return app_logs(&client, &app, args.tail, args.follow).await;
        }
    }
    let job = crate::jobs::resolve(&client, &args.job).await?;
    let js = jetstream::new(client.client.clone());
    let mut output = JobOutput::open(&js, &job, args.tail).await?;
    if args.follow {
        output.follow(&client, job.id, |_| {}).await?;
    } else {
        output.print_backlog().await?;
    }
    Ok(())
}

/// One job's output, read in order from the logs stream.
pub struct JobOutput {
    messages: consumer::pull::Ordered,
    /// Messages that were in the stream when it was opened.
    backlog: u64,
    read: u64,
    tail: Option<VecDeque<(Output, Vec<u8>)>>,
    tail_len: usize,
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
                Some(Ok(msg)) => self.take(&msg.subject, msg.payload.to_vec()),
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
                    Some(Ok(msg)) => self.take(&msg.subject, msg.payload.to_vec()),
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

    fn take(&mut self, subject: &str, line: Vec<u8>) {
        let output = subjects::log_output(subject).unwrap_or(Output::Stdout);
        self.read += 1;
        match output {
            Output::Stdout => self.printed.0 += 1,
            Output::Stderr => self.printed.1 += 1,
        }
        if self.read <= self.backlog {
            if let Some(tail) = &mut self.tail {
                if self.tail_len == 0 {
                    return;
                }
                if tail.len() == self.tail_len {
                    tail.pop_front();
                }
                tail.push_back((output, line));
                if self.read == self.backlog {
                    self.flush_tail();
                }
                return;
            }
        }
        print_line(output, &line);
    }

    fn flush_tail(&mut self) {
        if let Some(tail) = self.tail.take() {
            for (output, line) in tail {
                print_line(output, &line);
            }
        }
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

fn print_line(output: Output, line: &[u8]) {
    let result = match output {
        Output::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(line).and_then(|()| out.write_all(b"\n"))
        }
        Output::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(line).and_then(|()| err.write_all(b"\n"))
        }
    };
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`reef logs X | head`): stop quietly.
            std::process::exit(0);
        }
    }
}

/// The last `n` lines stored under a log subject filter.
pub async fn last_lines(js: &jetstream::Context, filter: &str, n: usize) -> Result<Vec<Vec<u8>>> {
    let (backlog, mut messages) = ordered(js, filter.to_string()).await?;
    let mut lines = VecDeque::with_capacity(n);
    for _ in 0..backlog {
        let msg = tokio::time::timeout(BACKLOG_WAIT, messages.next())
            .await
            .map_err(|_| anyhow!("timed out reading logs"))?;
        let Some(Ok(msg)) = msg else { break };
        if lines.len() == n {
            lines.pop_front();
        }
        lines.push_back(msg.payload.to_vec());
    }
    Ok(lines.into())
}

/// Every replica's output of an app, oldest first, each line prefixed with
/// its node and instance; with `follow`, then live until interrupted.
async fn app_logs(
    client: &client::Conn,
    app: &AppStatus,
    tail: Option<usize>,
    follow: bool,
) -> Result<()> {
    let names = crate::jobs::node_names(client).await;
    let nodes: std::collections::HashMap<String, String> = app
        .instances
        .iter()
        .map(|i| {
            let node = names
                .get(&i.node.to_string())
                .cloned()
                .unwrap_or_else(|| i.node.to_string());
            (i.id.to_string(), node)
        })
        .collect();
    let prefix = |subject: &str| -> String {
        // reef.logs.app.<app>.<instance>.<out|err>
        let instance = subject.rsplit('.').nth(1).unwrap_or("?");
        let short = &instance[instance.len().saturating_sub(6)..];
        match nodes.get(instance) {
            Some(node) => format!("[{node}/{short}] "),
            None => format!("[{short}] "),
        }
    };
    let js = jetstream::new(client.client.clone());
    let (backlog, mut messages) = ordered(&js, subjects::app_logs(&app.record.name)).await?;
    let keep = tail.unwrap_or(usize::MAX);
    let mut lines: VecDeque<(Output, Vec<u8>)> = VecDeque::new();
    for _ in 0..backlog {
        let msg = tokio::time::timeout(BACKLOG_WAIT, messages.next())
            .await
            .map_err(|_| anyhow!("timed out reading logs"))?;
        let Some(Ok(msg)) = msg else { break };
        if keep == 0 {
            continue;
        }
        if lines.len() == keep {
            lines.pop_front();
        }
        let output = subjects::log_output(&msg.subject).unwrap_or(Output::Stdout);
        let mut line = prefix(&msg.subject).into_bytes();
        line.extend_from_slice(&msg.payload);
        lines.push_back((output, line));
    }
    for (output, line) in lines {
        print_line(output, &line);
    }
    if follow {
        while let Some(msg) = messages.next().await {
            let msg = msg.map_err(|e| anyhow!("reading logs failed: {e}"))?;
            let output = subjects::log_output(&msg.subject).unwrap_or(Output::Stdout);
            let mut line = prefix(&msg.subject).into_bytes();
            line.extend_from_slice(&msg.payload);
            print_line(output, &line);
        }
    }
    Ok(())
}

/// An ordered consumer over every stored log line matching `filter`, from
/// the oldest, with the number of lines stored when it was opened.
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
