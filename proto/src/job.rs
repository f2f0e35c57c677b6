//! Jobs: what a user asks to run ([`JobSpec`]), how that request is checked,
//! and the record the coordinator keeps of it ([`JobRecord`]).

use crate::envelope::{Message, MessageKind};
use crate::ids::{AllocId, JobId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits on a job specification; a spec outside them is refused at submit.
pub mod limits {
    pub const MAX_ARGS: usize = 4096;
    pub const MAX_ARG_BYTES: usize = 64 * 1024;
    pub const MAX_ENV: usize = 1024;
    pub const MAX_LABELS: usize = 64;
    pub const MAX_LABEL_BYTES: usize = 253;
    pub const MAX_CPU_MILLIS: u32 = 1_024_000;
    pub const MAX_TIMEOUT_MS: u64 = 30 * 24 * 3_600_000;
    pub const MAX_RETRIES: u32 = 100;
    pub const MAX_REPLICATE: u32 = 16;
    pub const MAX_OUTPUTS: usize = 64;
    pub const MAX_OUTPUT_PATH_BYTES: usize = 1024;
    /// The most a job's standard input may hold (`reef run --stdin`).
    pub const MAX_STDIN_BYTES: usize = 256 * 1024;
}

/// Default CPU request: a tenth of a core, enough for most short jobs.
pub const DEFAULT_CPU_MILLIS: u32 = 100;
/// Default memory request.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// What a piece of work needs from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Thousandths of a CPU core.
    pub cpu_millis: u32,
    pub memory_bytes: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_millis: DEFAULT_CPU_MILLIS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// GPUs a job needs: how many, and optionally which model and how much memory each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuRequest {
    pub count: u32,
    /// Only GPUs whose model name contains this (case-insensitive), e.g. `A100`.
    pub model: Option<String>,
    pub min_vram_bytes: Option<u64>,
}

/// A compute job as submitted by `reef run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Program and arguments; the program is looked up on the node's PATH.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Working directory on the node; by default a fresh directory per allocation.
    pub workdir: Option<String>,
    pub resources: Resources,
    /// Node labels the job requires (every pair must match).
    pub constraints: BTreeMap<String, String>,
    /// Kill the job after this long.
    pub timeout_ms: Option<u64>,
    pub gpus: GpuRequest,
    /// Only nodes of this trust class (None: any node).
    pub trust: Option<crate::node::TrustClass>,
    /// How many times to run the job again elsewhere when its node is lost
    /// (0: report it `lost` and never run it again).
    pub retries: u32,
    /// Who submitted it: the caller's name, which the coordinator takes from
    /// the subject the NATS server let only that caller publish on; what a
    /// client sends here is replaced. Its logs are published under it
    /// ([`crate::subjects::logs`]), so a submitter can read only its own.
    #[serde(default)]
    pub owner: String,
    /// Whether it may use the network (`reef run --network`); without it a
    /// job has only a loopback of its own. Contributed nodes run such a job
    /// only when their owner allows it.
    #[serde(default)]
    pub network: bool,
    /// Run it on this many distinct nodes and compare what they produce
    /// (`reef run --replicate N`); 0 and 1: once.
    #[serde(default)]
    pub replicate: u32,
    /// Files, relative to the working directory, whose digests are part of
    /// the job's result beside its stdout (`reef run --output FILE`).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// What the job reads on its standard input (`reef run --stdin`); None:
    /// it reads end of file at once.
    #[serde(default)]
    pub stdin: Option<Vec<u8>>,
    /// Run in this app's release and environment, beside one of its
    /// healthy instances: set by the coordinator alone, for the app's
    /// `[[cron]]` tables; refused from a client.
    #[serde(default)]
    pub app: Option<String>,
}

/// Why a job specification was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("command is empty: give a program to run")]
    EmptyCommand,
    #[error("command: {0}")]
    Command(String),
    #[error("env: {0}")]
    Env(String),
    #[error("workdir: {0}")]
    Workdir(String),
    #[error("resources: {0}")]
    Resources(String),
    #[error("retries: {0}")]
    Retries(String),
    #[error("label {0}")]
    Label(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("replicate: {0}")]
    Replicate(String),
    #[error("output: {0}")]
    Output(String),
    #[error("stdin: {0}")]
    Stdin(String),
}

impl JobSpec {
    /// A spec with default resources running `command`.
    pub fn new(command: Vec<String>) -> Self {
        Self {
            command,
            env: BTreeMap::new(),
            workdir: None,
            resources: Resources::default(),
            constraints: BTreeMap::new(),
            timeout_ms: None,
            gpus: GpuRequest::default(),
            trust: None,
            retries: 0,
            owner: String::new(),
            network: false,
            replicate: 0,
            outputs: Vec::new(),
            stdin: None,
            app: None,
        }
    }

    /// How many nodes run it: 1, or `replicate`.
    pub fn copies(&self) -> u32 {
        self.replicate.max(1)
    }

    /// Checks every field; the coordinator calls this before accepting a job and
    /// the agent again before running one.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(SpecError::EmptyCommand);
        }
        if self.command.len() > limits::MAX_ARGS {
            return Err(SpecError::Command(format!(
                "{} arguments, at most {} allowed",
                self.command.len(),
                limits::MAX_ARGS
            )));
        }
        for (i, arg) in self.command.iter().enumerate() {
            if arg.len() > limits::MAX_ARG_BYTES {
                return Err(SpecError::Command(format!(
                    "argument {i} is {} bytes, at most {} allowed",
                    arg.len(),
                    limits::MAX_ARG_BYTES
                )));
            }
            if arg.contains('\0') {
                return Err(SpecError::Command(format!(
                    "argument {i} contains a NUL byte"
                )));
            }
        }
        if self.env.len() > limits::MAX_ENV {
            return Err(SpecError::Env(format!(
                "{} variables, at most {} allowed",
                self.env.len(),
                limits::MAX_ENV
            )));
        }
        for (key, value) in &self.env {
            validate_env_key(key).map_err(SpecError::Env)?;
            if value.contains('\0') || value.len() > limits::MAX_ARG_BYTES {
                return Err(SpecError::Env(format!(
                    "value of {key} contains a NUL byte or is longer than {} bytes",
                    limits::MAX_ARG_BYTES
                )));
            }
        }
        if let Some(input) = &self.stdin {
            if input.len() > limits::MAX_STDIN_BYTES {
                return Err(SpecError::Stdin(format!(
                    "{} bytes, at most {} allowed: give larger input as a file the job reads",
                    input.len(),
                    limits::MAX_STDIN_BYTES
                )));
            }
        }
        if let Some(dir) = &self.workdir {
            if !dir.starts_with('/') || dir.contains('\0') || dir.len() > 4096 {
                return Err(SpecError::Workdir(format!(
                    "{dir:?} must be an absolute path without NUL bytes"
                )));
            }
        }
        let r = &self.resources;
        if r.cpu_millis == 0 || r.cpu_millis > limits::MAX_CPU_MILLIS {
            return Err(SpecError::Resources(format!(
                "cpu must be between 0.001 and {} cores",
                limits::MAX_CPU_MILLIS / 1000
            )));
        }
        if r.memory_bytes == 0 {
            return Err(SpecError::Resources("memory must be more than 0".into()));
        }
        validate_labels(&self.constraints).map_err(SpecError::Label)?;
        if self.gpus.count > 64 {
            return Err(SpecError::Resources("at most 64 GPUs per job".into()));
        }
        if let Some(model) = &self.gpus.model {
            if model.is_empty() || model.len() > 128 || model.contains('\0') {
                return Err(SpecError::Resources(
                    "gpu model must be 1 to 128 characters".into(),
                ));
            }
        }
        if let Some(t) = self.timeout_ms {
            if t == 0 || t > limits::MAX_TIMEOUT_MS {
                return Err(SpecError::Timeout(format!(
                    "must be between 1ms and 30 days, got {t}ms"
                )));
            }
        }
        if self.retries > limits::MAX_RETRIES {
            return Err(SpecError::Retries(format!(
                "at most {} retries, got {}",
                limits::MAX_RETRIES,
                self.retries
            )));
        }
        if self.replicate > limits::MAX_REPLICATE {
            return Err(SpecError::Replicate(format!(
                "at most {} nodes, got {}",
                limits::MAX_REPLICATE,
                self.replicate
            )));
        }
        if self.outputs.len() > limits::MAX_OUTPUTS {
            return Err(SpecError::Output(format!(
                "{} files, at most {} allowed",
                self.outputs.len(),
                limits::MAX_OUTPUTS
            )));
        }
        for path in &self.outputs {
            validate_output_path(path).map_err(SpecError::Output)?;
        }
        Ok(())
    }
}

/// Checks a declared output file: a relative path inside the working
/// directory, without `.` or `..` components.
pub fn validate_output_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= limits::MAX_OUTPUT_PATH_BYTES
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{path:?} must be a relative path inside the job's working directory, \
             without '.', '..' or empty parts"
        ))
    }
}

fn validate_env_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {key:?}: use letters, digits and '_', not starting with a digit"
        ))
    }
}

/// Checks label keys and values: `[A-Za-z0-9._/-]`, non-empty keys, bounded sizes.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > limits::MAX_LABELS {
        return Err(format!(
            "set has {} labels, at most {} allowed",
            labels.len(),
            limits::MAX_LABELS
        ));
    }
    let valid = |s: &str| {
        s.len() <= limits::MAX_LABEL_BYTES
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
    };
    for (key, value) in labels {
        if key.is_empty() || !valid(key) || !valid(value) {
            return Err(format!(
                "{key:?}={value:?} is invalid: use letters, digits, '.', '_', '/', '-' (at most {} bytes)",
                limits::MAX_LABEL_BYTES
            ));
        }
    }
    Ok(())
}

/// Where a job stands, as the coordinator records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Not placed yet; `reason` says why.
    Pending {
        reason: String,
    },
    /// Placed on a node; the agent has not started it yet.
    Assigned,
    Running,
    /// The process ended by itself with this exit code (128+N for signal N).
    Exited {
        code: i32,
    },
    /// Stopped on request (`reef job stop`).
    Stopped,
    /// Could not be run, or was killed by its timeout.
    Failed {
        reason: String,
    },
    /// The node lost track of it (for example, the agent restarted mid-run).
    Lost {
        reason: String,
    },
}

impl JobState {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Exited { .. }
                | JobState::Stopped
                | JobState::Failed { .. }
                | JobState::Lost { .. }
        )
    }

    /// A short lowercase name, as shown in tables (one of [`JOB_STATES`]).
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending { .. } => "pending",
            JobState::Assigned => "assigned",
            JobState::Running => "running",
            JobState::Exited { .. } => "exited",
            JobState::Stopped => "stopped",
            JobState::Failed { .. } => "failed",
            JobState::Lost { .. } => "lost",
        }
    }
}

/// Every job state's name, as [`JobState::name`] gives it.
pub const JOB_STATES: [&str; 7] = [
    "pending", "assigned", "running", "exited", "stopped", "failed", "lost",
];

/// The coordinator's record of one job, stored in the jobs bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// The current (latest) allocation, once placed.
    pub alloc: Option<AllocId>,
    pub node: Option<NodeId>,
    pub submitted_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// A stop was requested; the job ends as `stopped`.
    pub stop_requested: bool,
    /// Lines of output (stdout, stderr) the job produced, known once it ended.
    pub output_lines: Option<(u64, u64)>,
    /// What its last run used, known once it ended.
    #[serde(default)]
    pub usage: Option<crate::alloc::Usage>,
    /// Nodes on which earlier attempts were lost (retries avoid them).
    pub lost_on: Vec<NodeId>,
    /// What its last run produced, known once it exited.
    #[serde(default)]
    pub result: Option<JobResult>,
    /// Which copy of a replicated job this is.
    #[serde(default)]
    pub replica: Option<Replica>,
    /// On the first copy of a replicated job: every copy, and once they
    /// have all ended, whether they agree.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// The periodic job and tick that started it, if one did.
    #[serde(default)]
    pub cron: Option<crate::cron::CronTick>,
}

/// What a job produced, as its node reports it: digests of its stdout and
/// of its declared output files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// SHA-256 of everything it wrote to stdout, in hex.
    pub stdout_sha256: String,
    /// Each declared output file with its SHA-256 in hex (None: missing,
    /// or not a regular file).
    pub outputs: Vec<(String, Option<String>)>,
}

impl JobResult {
    /// Largest result a node may report: the declared files and digests.
    pub fn validate(&self, spec: &JobSpec) -> Result<(), String> {
        let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(&self.stdout_sha256) {
            return Err("stdout digest is not 64 hex digits".into());
        }
        let declared: Vec<&str> = spec.outputs.iter().map(String::as_str).collect();
        let reported: Vec<&str> = self.outputs.iter().map(|(p, _)| p.as_str()).collect();
        if declared != reported {
            return Err("the output files differ from those the job declared".into());
        }
        if self
            .outputs
            .iter()
            .any(|(_, d)| d.as_deref().is_some_and(|d| !hex(d)))
        {
            return Err("an output digest is not 64 hex digits".into());
        }
        Ok(())
    }
}

/// One copy of a replicated job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The first copy's id, which names the whole group.
    pub group: JobId,
    /// 0 for the first copy.
    pub index: u32,
}

/// The copies of a replicated job and their verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Every copy's job id, the first one first.
    pub replicas: Vec<JobId>,
    /// Set once every copy has ended.
    pub verdict: Option<Verdict>,
}

/// How the copies of a replicated job compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Every copy's answer, in order.
    pub answers: Vec<Answer>,
    pub decided_at_ms: u64,
}

/// What one copy produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub job: JobId,
    pub node: Option<NodeId>,
    /// A digest of its exit code, stdout and output files; None when it
    /// produced no result (it failed, was lost or stopped).
    pub fingerprint: Option<String>,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
}

/// The verdict over the answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Every copy that produced a result produced the same one.
    Agreed { fingerprint: String },
    /// Some copies differ from the accepted result (the result of most
    /// copies, or where there is no majority, of the cluster's own
    /// dedicated nodes); their nodes are named.
    Disagreed {
        fingerprint: String,
        dissenters: Vec<NodeId>,
        /// Decided by the dedicated nodes' answers, not by a majority.
        by_dedicated: bool,
    },
    /// No result could be accepted: too few results, or no majority and no
    /// dedicated node to decide.
    Undecided { reason: String },
}

impl Outcome {
    /// The accepted result's fingerprint, if any.
    pub fn accepted(&self) -> Option<&str> {
        match self {
            Outcome::Agreed { fingerprint } | Outcome::Disagreed { fingerprint, .. } => {
                Some(fingerprint)
            }
            Outcome::Undecided { .. } => None,
        }
    }
}

impl Message for JobRecord {
    const KIND: MessageKind = MessageKind::JobRecord;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec::new(vec!["echo".into(), "hi".into()])
    }

    #[test]
    fn a_plain_spec_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn standard_input_is_bounded() {
        let mut with_input = spec();
        with_input.stdin = Some(vec![b'x'; limits::MAX_STDIN_BYTES]);
        assert_eq!(with_input.validate(), Ok(()));
        with_input.stdin = Some(vec![b'x'; limits::MAX_STDIN_BYTES + 1]);
        assert!(matches!(with_input.validate(), Err(SpecError::Stdin(_))));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let mut s = spec();
        s.command.clear();
        assert_eq!(s.validate(), Err(SpecError::EmptyCommand));

        let mut s = spec();
        s.env.insert("1BAD".into(), "x".into());
        assert!(matches!(s.validate(), Err(SpecError::Env(_))));

        let mut s = spec();
        s.resources.cpu_millis = 0;
        assert!(matches!(s.validate(), Err(SpecError::Resources(_))));

        let mut s = spec();
        s.constraints.insert("a b".into(), "c".into());
        assert!(matches!(s.validate(), Err(SpecError::Label(_))));

        let mut s = spec();
        s.workdir = Some("relative".into());
        assert!(matches!(s.validate(), Err(SpecError::Workdir(_))));

        let mut s = spec();
        s.timeout_ms = Some(0);
        assert!(matches!(s.validate(), Err(SpecError::Timeout(_))));

        let mut s = spec();
        s.command.push("a\0b".into());
        assert!(matches!(s.validate(), Err(SpecError::Command(_))));
    }
}
