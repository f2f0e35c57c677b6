//! `reef`: the one binary. User commands (`run`, `jobs`, `job`, `logs`,
//! `nodes`) talk to the coordinators over NATS; `coordinator`, `agent` and
//! `dev` run the cluster's own processes.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod apps;
mod audit;
mod backup;
mod certs;
mod client;
mod cluster;
mod config_file;
mod cron;
mod daemons;
mod dev;
mod doctor;
mod events;
mod jobs;
mod join;
mod logging;
mod logs;
mod maintenance;
mod node;
mod notify;
mod run;
mod server;
mod servers;
mod tls_flags;
mod ui;
mod users;
mod views;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `reef --version`: the release and the wire protocol it speaks (only
/// processes of one protocol share a cluster).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (protocol 3)");

#[derive(Parser)]
#[command(
    name = "reef",
    version = VERSION,
    about = "Run apps and compute jobs on a cluster of your own machines, over NATS."
)]
struct Cli {
    /// NATS server URL(s), comma separated.
    #[arg(
        long,
        global = true,
        env = "REEF_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,
    /// The NATS credentials file (`.creds`) that says who you are: from
    /// `reef cluster init`, `reef user add` or a `reef dev` cluster.
    #[arg(long, global = true, env = "REEF_CREDS", value_name = "FILE")]
    creds: Option<PathBuf>,
    /// The cluster CA's certificate (PEM), trusted for NATS's TLS.
    #[arg(long, global = true, env = "REEF_NATS_CA", value_name = "FILE")]
    nats_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command as a job on the cluster, streaming its output; exits with its exit code.
    Run(run::RunArgs),
    /// List jobs, newest first, a page at a time.
    Jobs(jobs::ListArgs),
    /// Inspect or stop one job.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Print a job's output (stdout to stdout, stderr to stderr).
    Logs(logs::LogsArgs),
    /// Periodic jobs: add, list, history, rm.
    Cron {
        #[command(subcommand)]
        command: cron::CronCommand,
    },
    /// List the cluster's nodes.
    Nodes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the cluster's servers and the copies of its state.
    Servers {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drain a node, or change whether it takes new work.
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// Deploy an app: pack the directory, upload it, roll the release out.
    Deploy(apps::DeployArgs),
    /// List apps, most recently changed first.
    Apps(apps::ListArgs),
    /// Show an app's release and instances.
    Status {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// List an app's releases, newest first.
    Releases {
        app: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Roll an app back to an earlier release (as a new release that copies it).
    Rollback {
        app: String,
        /// The release to go back to [default: the one before the current].
        #[arg(long)]
        to: Option<u32>,
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Run N instances of an app's current release.
    Scale {
        app: String,
        replicas: u32,
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Drain and stop every instance of an app (its releases are kept).
    Stop { app: String },
    /// Answer an app's routes with 503 and a page on every node while its
    /// instances keep running (`on`), or serve it again (`off`).
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        app: String,
        /// The page to serve: a .html, .htm, .txt or .json file, UTF-8, at
        /// most 64 KiB [default: a short "down for maintenance" page].
        #[arg(long)]
        page: Option<std::path::PathBuf>,
    },
    /// Start a stopped app again at its current release.
    Start {
        app: String,
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Stop an app and forget it, its releases and its secrets. Asks first
    /// on a terminal; elsewhere it needs --yes.
    Destroy {
        app: String,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Also delete the data of the app's managed services (its Postgres)
        /// on their node; without it the data is kept for a later deploy.
        #[arg(long)]
        delete_data: bool,
    },
    /// Manage an app's secrets (`${secret:KEY}` in Reef.toml).
    Secrets {
        #[command(subcommand)]
        command: apps::SecretsCommand,
    },
    /// Manage TLS certificates: add one from files, list them, remove one.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Run a coordinator.
    Coordinator(daemons::CoordinatorArgs),
    /// Run a node agent on this machine.
    Agent(Box<daemons::AgentArgs>),
    /// Run a whole local cluster: nats-server, a coordinator and N agents.
    Dev(dev::DevArgs),
    /// Run a server of a production cluster: its nats-server, a
    /// coordinator and an agent; the first start creates the cluster.
    Server(Box<server::ServerArgs>),
    /// Join this machine to a cluster with a token from `reef token create`
    /// (or the one `reef server` prints), and start its agent.
    Join(Box<join::JoinArgs>),
    /// Check what breaks real installs (ports, DNS, clocks, NATS, certificates,
    /// disks, the sandbox, versions) across the cluster; exits 1 if any
    /// check fails.
    Doctor {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Who changed what and when, and which calls were refused (admins).
    Audit(audit::AuditArgs),
    /// What happened in the cluster: nodes, deploys, crashes, certificates,
    /// failed periodic runs (-f to follow).
    Events(events::EventsArgs),
    /// Webhooks that receive the cluster's events: add, list, rm (admins).
    Notify {
        #[command(subcommand)]
        command: notify::NotifyCommand,
    },
    /// Back up an app's data and restore it (run, list, restore), or the
    /// cluster's state to a file (create, restore --file).
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Create join tokens for new nodes.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Add, list and revoke users' credentials.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Create a cluster's keys, credentials and NATS configuration.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Print a one-time sign-in link to the web dashboard, as you.
    Ui(ui::UiArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a single-use, expiring token for `reef join`.
    Create(join::TokenArgs),
}

#[derive(Subcommand)]
enum JobCommand {
    /// Show a job's state, node, exit code and timings.
    Status {
        /// Job id (or a unique prefix of one).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a job: SIGTERM to its whole process group, then SIGKILL after a grace period.
    Stop {
        /// Job id (or a unique prefix of one).
        id: String,
    },
}

/// Flags shared by commands that take node labels.
#[derive(Args, Clone, Debug, Default)]
pub struct LabelArgs {
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

fn main() -> ExitCode {
    // The sandbox helper: started by the agent for every job and instance,
    // before anything else (no flags parsed, no logging, no runtime).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "sandbox-exec") {
        let code = reef_node_agent::sandbox::helper::main(&args[2..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(126));
    }
    // A daemon's --config file becomes flags before the command line's.
    let args =
        match config_file::expand(&Cli::command(), args, |path| std::fs::read_to_string(path)) {
            Ok(args) => args,
            Err(e) => {
                eprintln!("reef: {e}");
                return ExitCode::from(2);
            }
        };
    let running = runs_a_job(&args);
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        // `reef run`'s own usage errors must not look like a job's exit 2.
        Err(e) if running && e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(run::exit::REEF_ERROR);
        }
        Err(e) => e.exit(),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match &cli.command {
        Command::Dev(args) => logging::init_dev(args.verbose),
        Command::Coordinator(_) => logging::init(logging::DAEMON),
        Command::Agent(args) => logging::init_node(args.node.access_log),
        Command::Server(args) => logging::init_node(args.node.access_log),
        Command::Join(args) => logging::init_node(args.node.access_log),
        // The CLI reports NATS's errors itself, once, in its own words.
        _ => logging::init("warn,async_nats=off"),
    }
    // `reef dev` runs the coordinator and agents on the runtime's worker
    // threads; their futures are deep, and a debug build's would overflow
    // the default 2 MiB stack.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reef: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli, &matches)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reef: {e:#}");
            match running {
                true => ExitCode::from(run::exit::REEF_ERROR),
                false => ExitCode::FAILURE,
            }
        }
    }
}

/// Whether the command line is `reef [global flags] run ...`.
fn runs_a_job(args: &[std::ffi::OsString]) -> bool {
    let mut rest = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = rest.next() {
        match arg.as_ref() {
            "--nats" | "--creds" | "--nats-ca" => {
                rest.next();
            }
            flag if flag.starts_with('-') => {}
            command => return command == "run",
        }
    }
    false
}

async fn dispatch(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let nats = client::Nats {
        urls: cli.nats,
        creds: cli.creds,
        ca: cli.nats_ca,
    };
    match cli.command {
        Command::Run(args) => run::run(&nats, args).await,
        Command::Jobs(args) => jobs::list(&nats, args).await.map(|()| ExitCode::SUCCESS),
        Command::Job {
            command: JobCommand::Status { id, json },
        } => jobs::status(&nats, &id, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Job {
            command: JobCommand::Stop { id },
        } => jobs::stop(&nats, &id).await.map(|()| ExitCode::SUCCESS),
        Command::Logs(args) => logs::logs(&nats, args).await.map(|()| ExitCode::SUCCESS),
        Command::Cron { command } => cron::cron(&nats, command).await.map(|()| ExitCode::SUCCESS),
        Command::Nodes { json } => jobs::nodes(&nats, json).await.map(|()| ExitCode::SUCCESS),
        Command::Servers { json } => servers::servers(&nats, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Node { command } => node::node(&nats, command).await.map(|()| ExitCode::SUCCESS),
        Command::Deploy(args) => apps::deploy(&nats, args).await,
        Command::Apps(args) => apps::apps(&nats, args).await.map(|()| ExitCode::SUCCESS),
        Command::Status { app, json } => apps::status(&nats, &app, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Rollback { app, to, detach } => {
            apps::change(
                &nats,
                reef_proto::api::ApiRequest::Rollback { app, to },
                detach,
            )
            .await
        }
        Command::Scale {
            app,
            replicas,
            detach,
        } => {
            if replicas == 0 {
                anyhow::bail!(
                    "reef scale {app} 0: an app runs at least one replica; to run none, stop it (reef stop {app})"
                );
            }
            apps::change(
                &nats,
                reef_proto::api::ApiRequest::Scale { app, replicas },
                detach,
            )
            .await
        }
        Command::Start { app, detach } => {
            apps::change(&nats, reef_proto::api::ApiRequest::StartApp(app), detach).await
        }
        Command::Stop { app } => apps::stop(&nats, reef_proto::api::ApiRequest::StopApp(app)).await,
        Command::Maintenance { mode, app, page } => {
            maintenance::maintenance(&nats, mode == "on", app, page.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Destroy {
            app,
            yes,
            delete_data,
        } => {
            if !yes && !apps::confirm_destroy(&app, delete_data)? {
                return Ok(ExitCode::from(1));
            }
            apps::destroy(&nats, app, delete_data).await
        }
        Command::Secrets { command } => apps::secrets(&nats, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Certs { command } => certs::certs(&nats, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Releases { app, json } => apps::releases(&nats, &app, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Coordinator(args) => daemons::coordinator(&nats, args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Agent(args) => match args.owner.clone() {
            Some(command) => daemons::owner(command).map(|()| ExitCode::SUCCESS),
            None => daemons::agent(&nats, *args)
                .await
                .map(|()| ExitCode::SUCCESS),
        },
        Command::Dev(args) => dev::dev(args).await.map(|()| ExitCode::SUCCESS),
        Command::Server(args) => server::server(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Join(args) => {
            let given = matches
                .subcommand_matches("join")
                .ok_or_else(|| anyhow::anyhow!("no join arguments"))?;
            join::join(*args, given).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Doctor { json } => doctor::doctor(&nats, json).await,
        Command::Audit(args) => audit::audit(&nats, args).await.map(|()| ExitCode::SUCCESS),
        Command::Events(args) => events::events(&nats, args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Notify { command } => notify::notify(&nats, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Backup { command } => backup::backup(&nats, command).await,
        Command::Token {
            command: TokenCommand::Create(args),
        } => join::create(&nats, args).await.map(|()| ExitCode::SUCCESS),
        Command::User { command } => users::user(&nats, command)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Cluster { command } => cluster::cluster(command).map(|()| ExitCode::SUCCESS),
        Command::Ui(args) => ui::ui(&nats, args).await.map(|()| ExitCode::SUCCESS),
    }
}

/// Parses repeated `KEY=VALUE` flags.
pub fn parse_pairs(
    flag: &str,
    pairs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut map = std::collections::BTreeMap::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            anyhow::bail!("--{flag} {pair:?}: expected KEY=VALUE");
        };
        if map.insert(k.to_string(), v.to_string()).is_some() {
            anyhow::bail!("--{flag}: {k} is given twice");
        }
    }
    Ok(map)
}

/// SIGINT and SIGTERM, caught from the moment this is made: a signal that
/// arrives before anyone waits is kept for [`Signals::recv`].
pub struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Default for Signals {
    fn default() -> Signals {
        Signals::new()
    }
}

impl Signals {
    pub fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves at the next SIGINT or SIGTERM (never, if neither could be caught).
    pub async fn recv(&mut self) {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => {}
            _ = next(&mut self.int) => {}
        }
    }
}

/// Resolves once SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    Signals::new().recv().await
}

/// Default data directory for an agent named `name`.
pub fn default_data_dir(name: &str) -> PathBuf {
    PathBuf::from("/var/lib/reef").join(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_field_of_every_config_file_is_in_the_operations_guide() {
        let guide = include_str!("../../docs/operations.md");
        let mut cli = <super::Cli as clap::CommandFactory>::command();
        cli.build();
        let mut missing = Vec::new();
        for name in ["server", "agent", "coordinator"] {
            let command = cli.find_subcommand(name).expect("a command");
            for field in super::config_file::fields(command) {
                if !guide.contains(&format!("`{field}`")) {
                    missing.push(format!("{name}: {field}"));
                }
            }
        }
        assert!(missing.is_empty(), "not in docs/operations.md: {missing:?}");
    }

    #[test]
    fn reef_run_is_told_apart_from_other_commands() {
        let args = |line: &str| -> Vec<std::ffi::OsString> {
            line.split_whitespace().map(Into::into).collect()
        };
        assert!(super::runs_a_job(&args("reef run -- echo hi")));
        assert!(super::runs_a_job(&args(
            "reef --nats tls://x:1 --creds c run --bad"
        )));
        assert!(super::runs_a_job(&args("reef --nats=tls://x:1 run")));
        assert!(!super::runs_a_job(&args("reef jobs")));
        assert!(!super::runs_a_job(&args("reef --nats run jobs")));
        assert!(!super::runs_a_job(&args("reef")));
    }

    #[test]
    fn the_version_names_the_protocol_this_build_speaks() {
        assert_eq!(
            super::VERSION,
            format!(
                "{} (protocol {})",
                reef_proto::envelope::RELEASE,
                reef_proto::envelope::VERSION
            )
        );
    }
}
