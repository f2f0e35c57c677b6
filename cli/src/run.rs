//! `reef run`: submit a job, stream its output live, and exit with its exit
//! code. Ctrl-C stops the job (a second Ctrl-C detaches).

use crate::client::{self, call, connect};
use crate::daemons::{parse_cpu, parse_trust};
use crate::logs::JobOutput;
use crate::{parse_pairs, LabelArgs};
use anyhow::{bail, Context as _, Result};
use async_nats::jetstream;
use clap::Args;
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::job::{
    JobRecord, JobSpec, JobState, Outcome, Resources, DEFAULT_CPU_MILLIS, DEFAULT_MEMORY_BYTES,
};
use reef_proto::units::{parse_duration, parse_size};
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Print the job id and return at once.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Give the job this command's standard input (read to its end before
    /// the job is submitted, at most 256 KiB). Without it the job reads end
    /// of file at once.
    #[arg(long, short = 'i')]
    pub stdin: bool,
}

/// What a job is: its command and what it needs (`reef run`, `reef cron add`).
#[derive(Args)]
pub struct JobArgs {
    /// CPU cores the job needs (e.g. 0.5, 2).
    #[arg(long, value_parser = parse_cpu)]
    pub cpu: Option<u32>,
    /// Memory the job needs (e.g. 512M, 2G).
    #[arg(long, value_parser = parse_size)]
    pub mem: Option<u64>,
    /// Only run on nodes with this label, KEY=VALUE (repeatable).
    #[command(flatten)]
    pub labels: LabelArgs,
    /// An environment variable for the job, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory on the node (absolute) [default: a fresh directory per run].
    #[arg(long)]
    pub workdir: Option<String>,
    /// GPUs the job needs; it sees only those (CUDA_VISIBLE_DEVICES).
    #[arg(long, default_value_t = 0)]
    pub gpus: u32,
    /// Only GPUs whose model contains this, e.g. A100 or "RTX 4090".
    #[arg(long, requires = "gpus")]
    pub gpu_model: Option<String>,
    /// Only GPUs with at least this much memory, e.g. 24G.
    #[arg(long, value_parser = parse_size, requires = "gpus")]
    pub min_vram: Option<u64>,
    /// Only nodes of this trust class: dedicated or contributed [default: any].
    #[arg(long, value_parser = parse_trust)]
    pub trust: Option<reef_proto::node::TrustClass>,
    /// Run the job again on another node, up to N times, if its node is lost
    /// (default 0: a job on a lost node is reported lost, never run twice).
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Let the job use the network. Without it, it has only a loopback of
    /// its own; a contributed node runs it only if its owner allows it.
    #[arg(long)]
    pub network: bool,
    /// Run it on N distinct nodes and compare what they produce: the exit
    /// code, a digest of stdout and of each --output file. `reef run`
    /// waits for every copy and reports the verdict; a node whose result
    /// differs from the accepted one is named and placed last from then on.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub replicate: u32,
    /// A file the job writes in its working directory whose digest is part
    /// of its result (repeatable).
    #[arg(long = "output", value_name = "FILE")]
    pub outputs: Vec<String>,
    /// Kill the job after this long (e.g. 30s, 5m, 2h).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl JobArgs {
    pub fn spec(&self) -> Result<JobSpec> {
        let mut spec = JobSpec::new(self.command.clone());
        spec.resources = Resources {
            cpu_millis: self.cpu.unwrap_or(DEFAULT_CPU_MILLIS),
            memory_bytes: self.mem.unwrap_or(DEFAULT_MEMORY_BYTES),
        };
        spec.constraints = parse_pairs("label", &self.labels.labels)?;
        spec.env = parse_pairs("env", &self.env)?;
        spec.workdir = self.workdir.clone();
        spec.gpus = reef_proto::job::GpuRequest {
            count: self.gpus,
            model: self.gpu_model.clone(),
            min_vram_bytes: self.min_vram,
        };
        spec.trust = self.trust;
        spec.retries = self.retries;
        spec.network = self.network;
        spec.replicate = self.replicate;
        spec.outputs = self.outputs.clone();
        spec.timeout_ms = self
            .timeout
            .map(|t| t.as_millis().min(u64::MAX as u128) as u64);
        spec.validate()?;
        Ok(spec)
    }
}

pub async fn run(nats: &client::Nats, args: RunArgs) -> Result<ExitCode> {
    let mut spec = args.job.spec()?;
    if args.stdin {
        spec.stdin = Some(read_stdin(reef_proto::job::limits::MAX_STDIN_BYTES)?);
    }
    let client = connect(nats).await?;
    let ApiResponse::Job(job) = call(&client, ApiRequest::SubmitJob(spec)).await? else {
        bail!("unexpected reply from the coordinator");
    };
    if args.detach {
        println!("{}", job.id);
        return Ok(ExitCode::SUCCESS);
    }
    let js = jetstream::new(client.client.clone());
    let mut output = JobOutput::open(&js, &job, None).await?;
    let follow = output.follow(&client, job.id, crate::logs::say_pending());
    tokio::pin!(follow);
    let mut interrupts = 0;
    // SIGTERM (a supervisor, a CI runner giving up) is taken like Ctrl-C.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let record = loop {
        let signal = tokio::select! {
            record = &mut follow => break record?,
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = terminate.recv() => "SIGTERM",
        };
        interrupts += 1;
        if interrupts > 1 {
            eprintln!(
                "reef: detached; the job keeps going (reef job status {})",
                job.id
            );
            return Ok(ExitCode::from(exit::STOPPED));
        }
        eprintln!("reef: stopping job {} ({signal} again to detach)", job.id);
        if let Err(e) = call(&client, ApiRequest::StopJob(job.id)).await {
            eprintln!("reef: could not stop the job: {e:#}");
        }
    };
    if record.verification.is_some() {
        return replicated(&client, &record).await;
    }
    Ok(match record.state {
        JobState::Exited { code } => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        JobState::Stopped => {
            eprintln!("reef: job {} was stopped", record.id);
            ExitCode::from(exit::STOPPED)
        }
        JobState::Failed { reason } => {
            eprintln!("reef: job {} failed: {reason}", record.id);
            ExitCode::from(exit::NO_EXIT_CODE)
        }
        JobState::Lost { reason } => {
            eprintln!("reef: job {} was lost: {reason}", record.id);
            ExitCode::from(exit::NO_EXIT_CODE)
        }
        other => bail!("job ended in an unexpected state {}", other.name()),
    })
}

/// `reef run`'s own exit codes, beside the job's: codes a command does not
/// use by convention (as with `docker run`), so that a script can tell
/// them from its command's (docs/cli.md, *Exit codes*).
pub mod exit {
    /// The job ended without an exit code of its command: it failed (timed
    /// out, out of memory, could not start), was lost with its node, or,
    /// replicated, no result was accepted.
    pub const NO_EXIT_CODE: u8 = 124;
    /// `reef run` itself failed: a usage error, the cluster unreachable or
    /// refusing the job.
    pub const REEF_ERROR: u8 = 125;
    /// The job was stopped (Ctrl-C, SIGTERM, `reef job stop`).
    pub const STOPPED: u8 = 130;
}

/// Exit code of `reef run --replicate` when the copies did not agree on a result.
pub const UNDECIDED: u8 = exit::NO_EXIT_CODE;

/// The end of a replicated job whose first copy was followed: waits for
/// the verdict, says it, and exits with the accepted result's exit code.
async fn replicated(client: &client::Conn, first: &JobRecord) -> Result<ExitCode> {
    let copies = first.verification.as_ref().map_or(1, |v| v.replicas.len());
    eprintln!("reef: waiting for all {copies} copies of job {}", first.id);
    let record = crate::logs::wait_for_record(client, first.id, |r| {
        r.verification.as_ref().is_some_and(|v| v.verdict.is_some())
    })
    .await?;
    let Some(verdict) = record.verification.and_then(|v| v.verdict) else {
        bail!("job {} has no verdict", record.id);
    };
    let names = crate::jobs::node_names(client).await;
    let name = |n: &reef_proto::NodeId| crate::views::node_name(&names, n);
    let accepted_code = |fingerprint: &str| {
        verdict
            .answers
            .iter()
            .find(|a| a.fingerprint.as_deref() == Some(fingerprint))
            .and_then(|a| a.exit_code)
            .unwrap_or(1)
    };
    let first_answer = verdict.answers.first().and_then(|a| a.fingerprint.clone());
    let code = match &verdict.outcome {
        Outcome::Agreed { fingerprint } => {
            eprintln!("reef: all copies agree (result {})", short(fingerprint));
            accepted_code(fingerprint)
        }
        Outcome::Disagreed {
            fingerprint,
            dissenters,
            by_dedicated,
        } => {
            let who: Vec<String> = dissenters.iter().map(name).collect();
            let basis = if *by_dedicated {
                "the dedicated nodes' result"
            } else {
                "the result most copies produced"
            };
            eprintln!(
                "reef: copies disagree: {} produced a different result than {basis} ({})",
                who.join(", "),
                short(fingerprint)
            );
            if first_answer.as_deref() != Some(fingerprint.as_str()) {
                eprintln!(
                    "reef: the output above is the first copy's, which was not accepted \
                     (reef job status {} lists every copy)",
                    record.id
                );
            }
            accepted_code(fingerprint)
        }
        Outcome::Undecided { reason } => {
            eprintln!("reef: no result accepted for job {}: {reason}", record.id);
            return Ok(ExitCode::from(UNDECIDED));
        }
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The first 12 digits of a result's fingerprint, as shown.
pub fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

/// All of this command's standard input, refused when longer than `max`
/// bytes (read no further than one byte past it).
fn read_stdin(max: usize) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(max as u64 + 1)
        .read_to_end(&mut input)
        .context("reading standard input for --stdin")?;
    if input.len() > max {
        bail!(
            "--stdin: standard input is longer than {} KiB; give larger input as a file the job reads (--workdir, or fetch it with --network)",
            max / 1024
        );
    }
    Ok(input)
}
