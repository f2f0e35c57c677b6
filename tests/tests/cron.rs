//! Periodic jobs end to end: real nats-server, coordinators, agents and
//! CLI; each tick runs once across a leader's death, an overlapping tick
//! is skipped or queued and says so, a failed run shows like a failed job,
//! and bad input is refused with nothing added.

use reef_proto::api::{ApiErrorKind, ApiRequest};
use reef_proto::cron::{CronSpec, Overlap};
use reef_proto::job::JobSpec;
use reef_tests::{api, eventually, leader, Cli, CliOutput, NatsServer, ReefProcess, TestCluster};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

fn history(out: &CliOutput) -> Vec<serde_json::Value> {
    out.json().as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_runs_exactly_once_while_the_leader_is_killed() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinators: HashMap<String, ReefProcess> = ["c1", "c2"]
        .into_iter()
        .map(|name| {
            let process = ReefProcess::coordinator(&nats.url, dir.path(), &["--name", name]);
            (name.to_string(), process)
        })
        .collect();
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &[]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let client = nats.url.connect().await;
    let first = leader::wait(&client).await;

    // Each run appends its tick to a file: a tick run twice shows twice.
    let ticks = reef_tests::reef::shared_file(dir.path(), "ticks");
    let script = format!("echo $REEF_CRON_TICK $REEF_CRON >> {}", ticks.display());
    cli.ok(&[
        "cron",
        "add",
        "every-second",
        "--schedule",
        "* * * * * *",
        "--overlap",
        "allow",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .await;
    let read = || {
        std::fs::read_to_string(&ticks)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    eventually("three runs", Duration::from_secs(20), || async {
        (read().len() >= 3).then_some(())
    })
    .await;

    coordinators
        .get_mut(&first.name)
        .expect("the leader is one of ours")
        .kill();
    eventually("another leader", Duration::from_secs(15), || async {
        leader::current(&client)
            .await
            .filter(|lease| lease.coordinator != first.coordinator)
    })
    .await;
    let after_kill = read().len();
    eventually(
        "runs under the new leader",
        Duration::from_secs(20),
        || async { (read().len() >= after_kill + 4).then_some(()) },
    )
    .await;
    cli.ok(&["cron", "rm", "every-second"]).await;
    // Runs under way end; nothing starts after the removal.
    let settled = eventually("the runs to settle", Duration::from_secs(20), || async {
        let before = read();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        (read() == before).then_some(before)
    })
    .await;

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in &settled {
        let tick = line
            .strip_suffix(" every-second")
            .unwrap_or_else(|| panic!("a run knows its tick and name: {line:?}"));
        *seen.entry(tick.to_string()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let logs = || {
        coordinators
            .values()
            .map(ReefProcess::log_text)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert!(
        twice.is_empty(),
        "ticks run more than once: {twice:?}\n{}",
        logs()
    );
    // And none was left out: every second from the first to the last, the
    // seconds without a leader run late.
    let seconds: Vec<i64> = seen
        .keys()
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .expect("an RFC 3339 tick")
                .as_second()
        })
        .collect();
    let gaps: Vec<_> = seconds.windows(2).filter(|w| w[1] - w[0] != 1).collect();
    assert!(
        gaps.is_empty(),
        "ticks left out: {gaps:?} in {settled:?}\n{}",
        logs()
    );
    assert!(seconds.len() >= 7, "{settled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_tick_is_skipped_or_queued_and_a_failed_run_shows() {
    let cluster = TestCluster::start(1).await;
    let cli = &cluster.cli;
    // Each run takes 2.5 s of a tick every second: most ticks overlap.
    cli.ok(&[
        "cron",
        "add",
        "slow",
        "--schedule",
        "* * * * * *",
        "--",
        "sleep",
        "2.5",
    ])
    .await;
    cli.ok(&[
        "cron",
        "add",
        "queued",
        "--schedule",
        "* * * * * *",
        "--overlap",
        "queue",
        "--",
        "sleep",
        "1.5",
    ])
    .await;
    cli.ok(&[
        "cron",
        "add",
        "fails",
        "--schedule",
        "* * * * * *",
        "--",
        "sh",
        "-c",
        "exit 3",
    ])
    .await;
    let runs = eventually("skipped ticks", Duration::from_secs(30), || async {
        let slow = history(&cli.ok(&["cron", "history", "slow", "--json"]).await);
        let ended = slow
            .iter()
            .filter(|r| r["outcome"] == "started" && r["state"] == "exited")
            .count();
        let skipped = slow.iter().filter(|r| r["outcome"] == "skipped").count();
        (ended >= 2 && skipped >= 3).then_some(slow)
    })
    .await;
    let skipped = runs
        .iter()
        .find(|r| r["outcome"] == "skipped")
        .expect("a skipped run");
    assert_eq!(
        skipped["reason"], "the previous run had not ended",
        "{skipped}"
    );
    assert!(skipped["job"].is_null(), "{skipped}");
    // The runs that started never overlapped.
    let mut spans = Vec::new();
    for run in runs.iter().filter(|r| r["outcome"] == "started") {
        let job = cli.job(run["job"].as_str().expect("job")).await;
        if let (Some(start), Some(end)) = (
            job["started_at_ms"].as_u64(),
            job["finished_at_ms"].as_u64(),
        ) {
            spans.push((start, end));
        }
    }
    spans.sort();
    assert!(spans.len() >= 2, "{runs:?}");
    assert!(
        spans.windows(2).all(|w| w[1].0 >= w[0].1),
        "runs overlapped: {spans:?}"
    );

    // Queued: a tick waits for the run before it, then runs with the job
    // it was given; the ticks meanwhile are skipped.
    let queued = eventually(
        "a queued run that started",
        Duration::from_secs(30),
        || async {
            let runs = history(&cli.ok(&["cron", "history", "queued", "--json"]).await);
            let started = runs.iter().filter(|r| r["outcome"] == "started").count();
            let skipped = runs.iter().any(|r| {
                r["outcome"] == "skipped"
                    && r["reason"] == "the previous run had not ended and another waited for it"
            });
            (started >= 3 && skipped).then_some(runs)
        },
    )
    .await;
    let late = queued
        .iter()
        .filter(|r| r["outcome"] == "started")
        .filter(|r| r["at_ms"].as_u64().unwrap_or(0) >= r["tick_ms"].as_u64().unwrap_or(0) + 1000)
        .count();
    assert!(late >= 1, "a queued run starts after its tick: {queued:?}");

    // A failed run is a failed job, there and in the history.
    let failed = eventually("a failed run", Duration::from_secs(20), || async {
        let runs = history(&cli.ok(&["cron", "history", "fails", "--json"]).await);
        runs.into_iter().find(|r| r["state"] == "exited")
    })
    .await;
    assert_eq!(failed["exit_code"], 3, "{failed}");
    let job = cli.job(failed["job"].as_str().expect("job")).await;
    assert_eq!(job["exit_code"], 3, "{job}");
    let table = cli.ok(&["cron", "history", "fails"]).await.stdout;
    assert!(table.contains("exited(3)"), "{table}");

    let list = cli.ok(&["cron", "list", "--json"]).await.json();
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["fails", "queued", "slow"]);
    for cron in list.as_array().expect("list") {
        assert!(cron["next_ms"].as_u64().is_some(), "{cron}");
        assert_eq!(cron["owner"], "admin", "{cron}");
    }
    for name in ["fails", "queued", "slow"] {
        cli.ok(&["cron", "rm", name]).await;
    }
    assert_eq!(
        cli.ok(&["cron", "list", "--json"]).await.json(),
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_periodic_jobs_are_refused_naming_what_is_wrong() {
    let cluster = TestCluster::start(1).await;
    let cli = &cluster.cli;
    cli.ok(&[
        "cron",
        "add",
        "nightly",
        "--schedule",
        "0 3 * * *",
        "--",
        "true",
    ])
    .await;
    let cases: [(&[&str], &str); 7] = [
        (
            &["cron", "add", "x", "--schedule", "61 * * * *", "--", "true"],
            "minute field \"61\"",
        ),
        (
            &["cron", "add", "x", "--schedule", "* * *", "--", "true"],
            "has 3 fields",
        ),
        (
            &["cron", "add", "x", "--schedule", "0 0 30 2 *", "--", "true"],
            "never fires",
        ),
        (
            &[
                "cron",
                "add",
                "x",
                "--schedule",
                "@daily",
                "--tz",
                "Mars/Olympus",
                "--",
                "true",
            ],
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            &[
                "cron",
                "add",
                "Bad_Name",
                "--schedule",
                "@daily",
                "--",
                "true",
            ],
            "not a valid name",
        ),
        (
            &[
                "cron",
                "add",
                "x",
                "--schedule",
                "@daily",
                "--catch-up",
                "2d",
                "--",
                "true",
            ],
            "catch-up: at most 24h, not 48h0m",
        ),
        (
            &[
                "cron",
                "add",
                "nightly",
                "--schedule",
                "@daily",
                "--",
                "true",
            ],
            "a periodic job named nightly exists",
        ),
    ];
    for (args, expected) in cases {
        let out = cli.run(args).await;
        assert_ne!(out.code, Some(0), "reef {args:?}: {out:?}");
        assert!(out.stderr.contains(expected), "reef {args:?}: {out:?}");
    }
    // The coordinator says the same to a client that skips the CLI's checks.
    let client = cluster.nats.url.connect().await;
    let mut spec = CronSpec {
        name: "raw".into(),
        schedule: "* * * 13 *".into(),
        time_zone: "UTC".into(),
        overlap: Overlap::Skip,
        catch_up_ms: 0,
        job: JobSpec::new(vec!["true".into()]),
    };
    let result = api::call(&client, ApiRequest::AddCron(spec.clone()))
        .await
        .0;
    let err = result.expect_err("a month of 13 is refused");
    assert_eq!(err.kind, ApiErrorKind::Invalid);
    assert!(err.message.contains("month field \"13\""), "{err:?}");
    spec.schedule = "@hourly".into();
    spec.time_zone = "Europe/Atlantis".into();
    let result = api::call(&client, ApiRequest::AddCron(spec)).await.0;
    assert!(result
        .expect_err("unknown zone")
        .message
        .contains("Europe/Atlantis"));
    let out = cli.run(&["cron", "history", "nope"]).await;
    assert!(out.stderr.contains("no periodic job nope"), "{out:?}");
    let out = cli.run(&["cron", "rm", "nope"]).await;
    assert!(out.stderr.contains("no periodic job nope"), "{out:?}");

    // Nothing was added but the first.
    let list = cli.ok(&["cron", "list", "--json"]).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], "nightly");
    assert_eq!(list[0]["schedule"], "0 3 * * *");
}

/// `[[cron]]` lines for the test app's manifest: `report` appends what it
/// sees (a file of the release, an `[env]` value, a secret) to `out`.
fn cron_manifest(out: &str, schedule: &str, tz: &str) -> String {
    format!(
        "\n[env]\nGREETING = \"hi\"\nTOKEN = \"${{secret:TOKEN}}\"\n\n[[cron]]\nname = \"report\"\nschedule = {schedule:?}\ntz = {tz:?}\ncommand = \"test -f server.py && echo release $GREETING $TOKEN $REEF_CRON >> {out}\"\n"
    )
}

async fn app_crons(cluster: &TestCluster) -> Vec<serde_json::Value> {
    let out = cluster.cli.ok(&["cron", "list", "--json"]).await;
    out.json().as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_tables_run_with_the_apps_release_and_environment_and_follow_its_deploys() {
    use reef_tests::app::write_app;
    let cluster = TestCluster::start(1).await;
    let out = cluster.shared_file("report");
    let secret = "s3cret-42";
    let set = cluster
        .cli
        .run_with_stdin(
            &["secrets", "set", "hello", "TOKEN", "--create"],
            secret.as_bytes(),
        )
        .await;
    assert_eq!(set.code, Some(0), "{set:?}");
    let app = cluster.dir.path().join("app");
    let cli = &cluster.cli;
    let deploy = |manifest: String| {
        let app = app.clone();
        async move {
            write_app(&app, "v1", 200, &manifest);
            cli.run_with_timeout(
                &["deploy", app.to_str().expect("path")],
                Duration::from_secs(60),
            )
            .await
        }
    };

    // Bad input: an invalid schedule or time zone is named, nothing deployed.
    for (schedule, tz, field) in [
        ("61 * * * *", "UTC", "cron[0].schedule"),
        ("* * * * * *", "Mars/Olympus", "cron[0].tz"),
    ] {
        let refused = deploy(cron_manifest(&out, schedule, tz)).await;
        assert_ne!(refused.code, Some(0), "{refused:?}");
        assert!(refused.stderr.contains(field), "{field}: {refused:?}");
    }
    assert_ne!(cluster.cli.run(&["status", "hello"]).await.code, Some(0));
    assert!(app_crons(&cluster).await.is_empty());

    // Deployed: the job is listed with its app and runs in the release.
    let done = deploy(cron_manifest(&out, "* * * * * *", "Europe/Berlin")).await;
    assert_eq!(done.code, Some(0), "{done:?}\n{}", cluster.logs());
    let crons = app_crons(&cluster).await;
    assert_eq!(crons.len(), 1, "{crons:?}");
    assert_eq!(crons[0]["name"], "hello-report");
    assert_eq!(crons[0]["app"], "hello");
    assert_eq!(crons[0]["time_zone"], "Europe/Berlin");
    let table = cluster.cli.ok(&["cron", "list"]).await.stdout;
    assert!(
        table.contains("hello-report") && table.contains(" hello "),
        "{table}"
    );
    let line = format!("release hi {secret} hello-report");
    eventually(
        "a run that saw the release, [env] and the secret",
        Duration::from_secs(30),
        || async {
            std::fs::read_to_string(&out)
                .ok()
                .filter(|text| text.lines().any(|l| l == line))
        },
    )
    .await;

    // A changed table changes the job; a removed one removes it.
    let changed = deploy(cron_manifest(&out, "*/2 * * * * *", "UTC")).await;
    assert_eq!(changed.code, Some(0), "{changed:?}");
    let crons = app_crons(&cluster).await;
    assert_eq!(crons.len(), 1, "{crons:?}");
    assert_eq!(crons[0]["schedule"], "*/2 * * * * *");
    let plain = deploy("\n[env]\nTOKEN = \"${secret:TOKEN}\"\n".into()).await;
    assert_eq!(plain.code, Some(0), "{plain:?}");
    assert!(app_crons(&cluster).await.is_empty());
    // A rollback brings back the tables of the release it goes back to.
    let back = cluster
        .cli
        .run_with_timeout(&["rollback", "hello"], Duration::from_secs(60))
        .await;
    assert_eq!(back.code, Some(0), "{back:?}");
    let crons = app_crons(&cluster).await;
    assert_eq!(crons.len(), 1, "{crons:?}");
    assert_eq!(crons[0]["schedule"], "*/2 * * * * *");

    // Destroying the app removes its jobs.
    let again = deploy(cron_manifest(&out, "* * * * * *", "UTC")).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(app_crons(&cluster).await.len(), 1);
    let destroyed = cluster
        .cli
        .run_with_timeout(&["destroy", "hello", "--yes"], Duration::from_secs(30))
        .await;
    assert_eq!(destroyed.code, Some(0), "{destroyed:?}");
    assert!(app_crons(&cluster).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_apps_own_cron_tables_run_in_its_release() {
    let cluster = TestCluster::start(1).await;
    let client = cluster.nats.url.connect().await;
    let mut job = api::shell("true");
    job.app = Some("hello".into());
    let reply = api::call(&client, ApiRequest::SubmitJob(job.clone())).await;
    let err = reply.0.expect_err("a job in an app's release is refused");
    assert_eq!(err.kind, ApiErrorKind::Invalid, "{err:?}");
    assert!(err.message.contains("[[cron]]"), "{err:?}");
    let spec = CronSpec {
        name: "sneaky".into(),
        schedule: "* * * * *".into(),
        time_zone: "UTC".into(),
        overlap: Overlap::Skip,
        catch_up_ms: 0,
        job,
    };
    let reply = api::call(&client, ApiRequest::AddCron(spec)).await;
    let err = reply
        .0
        .expect_err("a periodic job in an app's release is refused");
    assert_eq!(err.kind, ApiErrorKind::Invalid, "{err:?}");
    assert!(app_crons(&cluster).await.is_empty());
}
