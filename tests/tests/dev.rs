//! `reef dev`: one command brings up nats-server, a coordinator and agents,
//! and SIGTERM takes all of it down cleanly.

use reef_tests::dev::ReefDev;
use reef_tests::reef::reef_bin;
use reef_tests::wait::free_port;
use reef_tests::{eventually, Cli};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_runs_a_whole_cluster_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let dev = ReefDev::start(&["--nodes", "3", "--port", &port.to_string()], dir.path());
    let cli = Cli::for_dev(&format!("tls://127.0.0.1:{port}"), dir.path());
    let nodes = cli.wait_for_nodes(3).await;
    assert_eq!(nodes.len(), 3);
    let out = cli.run(&["run", "--", "sh", "-c", "echo from dev"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "from dev\n");

    dev.terminate().await;
    // Its nats-server went with it.
    eventually(
        "the dev nats-server to stop listening",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_refuses_a_port_in_use_and_never_joins_what_listens_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(reef_bin())
            .args([
                "dev",
                "--nodes",
                "1",
                "--port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(dir.path())
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("refused at once, without waiting for a server")
    .expect("run reef dev");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is taken")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("nats").exists(),
        "nothing was started: {:?}",
        std::fs::read_dir(dir.path()).map(|d| d.count())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_on_port_0_picks_a_free_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = ReefDev::start(&["--nodes", "1", "--port", "0"], dir.path());
    let exports = dev.printed("export REEF_NATS_URL=").await;
    let url = exports
        .split_whitespace()
        .next()
        .expect("a NATS URL")
        .to_string();
    assert!(!url.ends_with(":0"), "{url}");
    assert!(url.starts_with("tls://"), "{url}");
    let cli = Cli::for_dev(&url, dir.path());
    assert_eq!(cli.wait_for_nodes(1).await.len(), 1);
    dev.terminate().await;
}

/// The README's example session, command by command as it is written
/// there: the commands in its first `sh` block after `reef dev`, then its
/// app. `target/debug/reef` is the binary under test.
fn readme_session() -> (Vec<String>, String) {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let (_, after) = readme
        .split_once("with the `export` line it\nprints, for example:")
        .expect("the README's example session");
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("its sh block");
    let commands: Vec<String> = block
        .lines()
        .filter(|line| line.starts_with("target/debug/reef "))
        .map(|line| line.split(" #").next().unwrap_or(line).trim().to_string())
        .collect();
    let deploy = after
        .split_once("To put an app on it: `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(command, _)| command.to_string())
        .expect("the README's deploy command");
    (commands, deploy)
}

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What would worry a newcomer on a console: a warning or error from a log,
/// a failure, a panic, a wording left unfinished.
fn alarming(line: &str) -> bool {
    const WORDS: [&str; 11] = [
        "WARN",
        "ERROR",
        "error:",
        "Error",
        "panic",
        "failed",
        "denied",
        "violation",
        "retrying",
        "(s)",
        "timed out",
    ];
    WORDS.iter().any(|word| line.contains(word))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_session_from_a_clean_data_dir_prints_nothing_alarming() {
    let (commands, deploy) = readme_session();
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert_eq!(deploy, "target/debug/reef deploy examples/hello");

    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let stderr = root.path().join("dev.stderr");
    // As ./scripts/dev.sh starts it (as root, with the sandbox), on a port
    // of its own choosing so that other tests may run beside it.
    let mut dev = ReefDev::start_with_stderr(
        &["--demo", "--port", "0"],
        &data,
        std::fs::File::create(&stderr).expect("stderr file").into(),
    );
    let exports = dev.printed("export ").await;
    let proxy = dev.printed("node-1 proxy: http://").await;
    let proxy: std::net::SocketAddr = proxy
        .split('/')
        .next()
        .and_then(|addr| addr.parse().ok())
        .expect("node-1's proxy address");
    // The demo ends with its job in the list.
    dev.printed("demo: $ reef jobs").await;
    dev.printed("ID").await;
    let demo_job = dev.printed("").await;
    assert!(demo_job.contains("exited(3)"), "{demo_job}");

    let mut printed = Vec::new();
    let bin = reef_bin();
    let run = |command: &str| {
        let command = command.replacen("target/debug/reef", &bin.display().to_string(), 1);
        let mut sh = tokio::process::Command::new("sh");
        sh.arg("-c")
            .arg(&command)
            .current_dir(repo_root())
            .env_remove("REEF_NATS_URL")
            .env_remove("REEF_CREDS")
            .env_remove("REEF_NATS_CA")
            .env("NO_COLOR", "1");
        for pair in exports.split_whitespace() {
            let (key, value) = pair.split_once('=').expect("KEY=VALUE");
            sh.env(key, value);
        }
        async move { sh.output().await.expect("sh") }
    };
    for command in &commands {
        let out = run(command).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        if command.contains("exit 3") {
            // "prints hello, exits 3"
            assert_eq!(out.status.code(), Some(3), "{command}: {stdout}{stderr}");
            assert_eq!(stdout, "hello\n", "{command}: {stderr}");
        } else {
            assert!(out.status.success(), "{command}: {stdout}{stderr}");
        }
        printed.extend(stdout.lines().chain(stderr.lines()).map(str::to_string));
    }
    let out = run(&deploy).await;
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{deploy}: {said}");
    assert!(said.contains("serving http://hello.localhost/"), "{said}");
    printed.extend(said.lines().map(str::to_string));
    // What the README's curl does, through node-1's proxy, whichever node
    // runs the app.
    let page = reef_tests::http::get_at(proxy, "hello.localhost", "/")
        .await
        .expect("the app through node-1's proxy");
    assert_eq!(
        page.status,
        200,
        "{page:?}\n\nreef-dev.log:\n{}",
        std::fs::read_to_string(data.join("reef-dev.log")).unwrap_or_default()
    );
    assert!(page.body.contains("hello from reef"), "{page:?}");

    let mut lines = dev.finish().await;
    lines.extend(printed);
    lines.extend(
        std::fs::read_to_string(&stderr)
            .expect("reef dev's stderr")
            .lines()
            .map(str::to_string),
    );
    let worrying: Vec<&String> = lines.iter().filter(|line| alarming(line)).collect();
    assert!(
        worrying.is_empty(),
        "{worrying:#?}\n\nall of it:\n{}",
        lines.join("\n")
    );
    // And its log names nothing worse than the console showed.
    let log = std::fs::read_to_string(data.join("reef-dev.log")).expect("reef-dev.log");
    let logged: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    assert!(logged.is_empty(), "{logged:#?}");
}
