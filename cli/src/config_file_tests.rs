use super::*;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

#[derive(Parser, Debug)]
struct Cli {
    #[arg(long, global = true, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand, Debug)]
enum Sub {
    Agent(Agent),
    Other {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct Agent {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, required = true)]
    name: Option<String>,
    #[arg(long, default_value = "5s", value_parser = reef_proto::units::parse_duration)]
    stop_grace: std::time::Duration,
    #[arg(long = "allow-workdir")]
    allow_workdir: Vec<PathBuf>,
    #[arg(long)]
    allow_network: bool,
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=100_000))]
    max_pids: u32,
    #[arg(long, env = "REEF_TEST_JOIN_TOKEN")]
    join: Option<String>,
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Parses `args` with the file `text` as the `--config` they name.
fn parse(args: &[&str], text: &str) -> Result<Agent, String> {
    let argv = expand(&Cli::command(), os(args), |_| Ok(text.to_string()))?;
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| e.to_string())?;
    match Cli::from_arg_matches(&matches)
        .map_err(|e| e.to_string())?
        .command
    {
        Sub::Agent(agent) => Ok(agent),
        Sub::Other { .. } => Err("other".into()),
    }
}

const FILE: &str = r#"
name = "edge-1"
stop_grace = "2s"
allow_workdir = ["/srv/a", "/srv/b"]
allow_network = true
max_pids = 512
"#;

#[test]
fn every_kind_of_field_sets_its_flag() {
    let agent = parse(&["reef", "agent", "--config", "/etc/reef/agent.toml"], FILE).unwrap();
    assert_eq!(agent.name.as_deref(), Some("edge-1"));
    assert_eq!(agent.stop_grace, std::time::Duration::from_secs(2));
    assert_eq!(
        agent.allow_workdir,
        vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
    );
    assert!(agent.allow_network);
    assert_eq!(agent.max_pids, 512);
}

#[test]
fn flags_on_the_command_line_win_over_the_file() {
    let agent = parse(
        &[
            "reef",
            "agent",
            "--config",
            "f.toml",
            "--name",
            "mine",
            "--allow-workdir",
            "/only",
        ],
        FILE,
    )
    .unwrap();
    assert_eq!(agent.name.as_deref(), Some("mine"));
    // A repeatable flag on the command line replaces the file's list.
    assert_eq!(agent.allow_workdir, vec![PathBuf::from("/only")]);
    assert_eq!(agent.max_pids, 512);
}

#[test]
fn the_environment_wins_over_the_file() {
    // Only this test sets the variable.
    std::env::set_var("REEF_TEST_JOIN_TOKEN", "from-env");
    let agent = parse(
        &["reef", "agent", "--config", "f.toml"],
        "name = \"a\"\njoin = \"from-file\"\n",
    )
    .unwrap();
    std::env::remove_var("REEF_TEST_JOIN_TOKEN");
    assert_eq!(agent.join.as_deref(), Some("from-env"));
}

#[test]
fn a_global_flag_may_be_in_the_file() {
    let argv = expand(
        &Cli::command(),
        os(&["reef", "agent", "--config", "f.toml"]),
        |_| Ok("name = \"a\"\nnats = \"tls://10.0.0.1:4222\"\n".into()),
    )
    .unwrap();
    let cli = Cli::try_parse_from(argv).unwrap();
    assert_eq!(cli.nats, "tls://10.0.0.1:4222");
}

#[test]
fn without_config_the_command_line_is_untouched() {
    let argv = os(&["reef", "agent", "--name", "x"]);
    let out = expand(&Cli::command(), argv.clone(), |_| panic!("no file to read")).unwrap();
    assert_eq!(out, argv);
    // Help and malformed lines are left to the real parse.
    let help = os(&["reef", "agent", "--help"]);
    assert_eq!(
        expand(&Cli::command(), help.clone(), |_| Ok(String::new())).unwrap(),
        help
    );
    // A command that takes no file is not read even with --config.
    let other = os(&["reef", "other", "--config", "x"]);
    assert_eq!(
        expand(&Cli::command(), other.clone(), |_| panic!("not read")).unwrap(),
        other
    );
}

fn error(text: &str) -> String {
    parse(&["reef", "agent", "--config", "/etc/reef/agent.toml"], text).unwrap_err()
}

#[test]
fn an_unknown_field_is_named_with_the_valid_ones() {
    let e = error("name = \"a\"\nstop_grase = \"1s\"\n");
    assert!(e.contains("/etc/reef/agent.toml"), "{e}");
    assert!(e.contains("unknown field `stop_grase`"), "{e}");
    assert!(e.contains("stop_grace"), "{e}");
    // Fields are spelled with underscores.
    let e = error("stop-grace = \"1s\"\n");
    assert!(e.contains("`stop_grace`"), "{e}");
    // Nor may a file name another file.
    assert!(error("config = \"x\"\n").contains("unknown field `config`"));
}

#[test]
fn wrong_types_and_refused_values_name_the_field() {
    let e = error("allow_network = \"yes\"\n");
    assert!(
        e.contains("field `allow_network`: expected true or false, found string"),
        "{e}"
    );
    let e = error("max_pids = 3\n");
    assert!(e.contains("field `max_pids`"), "{e}");
    assert!(e.contains("16..=100000") || e.contains("3"), "{e}");
    let e = error("stop_grace = \"soon\"\n");
    assert!(e.contains("field `stop_grace`"), "{e}");
    let e = error("allow_workdir = [1, [2]]\n");
    assert!(
        e.contains("field `allow_workdir`: expected an array"),
        "{e}"
    );
    let e = error("name = { first = \"a\" }\n");
    assert!(
        e.contains("field `name`: expected a string or a number, found table"),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_toml_or_cannot_be_read_is_an_error() {
    let e = error("name = \n");
    assert!(e.starts_with("/etc/reef/agent.toml"), "{e}");
    let e = expand(
        &Cli::command(),
        os(&["reef", "agent", "--config", "/nope.toml"]),
        |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    )
    .unwrap_err();
    assert!(e.contains("--config /nope.toml"), "{e}");
}

#[test]
fn a_rendered_file_reads_back_as_the_same_flags() {
    let args = [
        "reef",
        "agent",
        "--name",
        "n\"odd",
        "--allow-workdir",
        "/a",
        "--allow-workdir",
        "/b c",
        "--allow-network",
        "--max-pids",
        "99",
    ];
    let matches = Cli::command().try_get_matches_from(args).unwrap();
    let (_, sub) = matches.subcommand().unwrap();
    let mut cli = Cli::command();
    cli.build();
    let command = cli.find_subcommand("agent").unwrap();
    let text = render(
        sub,
        command,
        &[
            "name",
            "allow_workdir",
            "allow_network",
            "max_pids",
            "stop_grace",
        ],
    );
    // A flag left at its default is not written.
    assert!(!text.contains("stop_grace"), "{text}");
    let agent = parse(&["reef", "agent", "--config", "f"], &text).unwrap();
    assert_eq!(agent.name.as_deref(), Some("n\"odd"));
    assert_eq!(
        agent.allow_workdir,
        vec![PathBuf::from("/a"), PathBuf::from("/b c")]
    );
    assert!(agent.allow_network);
    assert_eq!(agent.max_pids, 99);
}

#[test]
fn the_real_commands_take_files() {
    let mut cli = crate::Cli::command();
    cli.build();
    for name in WITH_CONFIG {
        let command = cli.find_subcommand(name).unwrap();
        let fields = fields(command);
        assert!(fields.iter().any(|f| f == "nats"), "{name}: {fields:?}");
        assert!(!fields.iter().any(|f| f.contains('-')), "{fields:?}");
    }
}
