//! Replicated jobs end to end (`reef run --replicate N`): copies on distinct
//! nodes, their results compared, a node that lies named and placed last.
//! One dedicated node and two contributed ones, the sandbox on; a node is
//! "made to lie" by a job whose output depends on the node it runs on.

use reef_tests::{Cli, NatsServer, ReefProcess};
use std::collections::BTreeSet;
use std::time::Duration;

/// A job that prints 42, or 41 on node `liar` (its `REEF_NODE_ID`).
fn lying_on(liar: &str) -> String {
    format!("if [ \"$REEF_NODE_ID\" = {liar} ]; then echo 41; else echo 42; fi")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_compared_and_a_node_that_lies_is_named_and_placed_last() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _own = ReefProcess::agent(&nats.url, dir.path(), "own", &["--label", "pool=a"]);
    let _lent1 = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "lent-1",
        &["--trust", "contributed", "--label", "pool=b"],
    );
    let _lent2 = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "lent-2",
        &["--trust", "contributed", "--label", "pool=a"],
    );
    let cli = Cli::new(&nats.url);
    let nodes = cli.wait_for_nodes(3).await;
    let id_of = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str())
            .expect("node id")
            .to_string()
    };
    let (own, lent1, lent2) = (id_of("own"), id_of("lent-1"), id_of("lent-2"));

    // Three honest copies, a file declared: every copy agrees, on three nodes.
    let out = cli
        .run(&[
            "run",
            "--replicate",
            "3",
            "--output",
            "out.txt",
            "--",
            "sh",
            "-c",
            "echo 42; echo 42 > out.txt",
        ])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "42\n", "the first copy's output is shown");
    assert!(out.stderr.contains("all copies agree"), "{}", out.stderr);
    let first = latest(&cli).await;
    let verdict = &first["verification"]["verdict"];
    assert_eq!(verdict["outcome"], "agreed", "{first}");
    let used: BTreeSet<&str> = verdict["answers"]
        .as_array()
        .expect("answers")
        .iter()
        .map(|a| a["node"].as_str().expect("node"))
        .collect();
    assert_eq!(used.len(), 3, "each copy on a node of its own: {verdict}");
    assert_eq!(
        first["result"]["outputs"][0]["path"], "out.txt",
        "the file's digest is part of the result: {first}"
    );

    // lent-2 lies on stdout; the other two outvote it.
    let lie = lying_on(&lent2);
    let out = cli
        .run(&["run", "--replicate", "3", "--", "sh", "-c", &lie])
        .await;
    assert_eq!(
        out.code,
        Some(0),
        "the accepted result exited 0: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("copies disagree: lent-2 produced a different result"),
        "{}",
        out.stderr
    );
    let first = latest(&cli).await;
    let verdict = &first["verification"]["verdict"];
    assert_eq!(verdict["outcome"], "disagreed");
    assert_eq!(verdict["dissenters"], serde_json::json!(["lent-2"]));
    assert_eq!(verdict["decided_by_dedicated_nodes"], false);
    let status = cli
        .ok(&["job", "status", first["id"].as_str().expect("id")])
        .await
        .stdout;
    assert!(
        status.contains("verdict:   disagreed: lent-2 differ"),
        "{status}"
    );
    assert!(
        status.contains("(differs)") && status.contains("(accepted)"),
        "{status}"
    );

    // Two copies on the pool=a nodes (own, lent-2); lent-2 lies in a file
    // it writes: no majority, and the dedicated node's result is accepted.
    let file_lie = format!(
        "echo same; if [ \"$REEF_NODE_ID\" = {lent2} ]; then echo 41 > out; else echo 42 > out; fi"
    );
    let out = cli
        .run(&[
            "run",
            "--replicate",
            "2",
            "--label",
            "pool=a",
            "--output",
            "out",
            "--",
            "sh",
            "-c",
            &file_lie,
        ])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("lent-2 produced a different result than the dedicated nodes' result"),
        "{}",
        out.stderr
    );
    let first = latest(&cli).await;
    let verdict = &first["verification"]["verdict"];
    assert_eq!(
        verdict["dissenters"],
        serde_json::json!(["lent-2"]),
        "{verdict}"
    );
    assert_eq!(verdict["decided_by_dedicated_nodes"], true);

    // Two contributed copies that disagree: nothing to decide by.
    let out = cli
        .run(&[
            "run",
            "--replicate",
            "2",
            "--trust",
            "contributed",
            "--",
            "sh",
            "-c",
            &lie,
        ])
        .await;
    assert_eq!(out.code, Some(124), "{}", out.stderr);
    assert!(out.stderr.contains("no result accepted"), "{}", out.stderr);

    // lent-2 disagreed twice of three counted results, and says so (the
    // node list follows the leader's view within a tick).
    reef_tests::eventually(
        "lent-2's verdicts in the node list",
        std::time::Duration::from_secs(10),
        || async {
            cli.nodes().await.into_iter().find(|n| {
                n["name"] == "lent-2"
                    && n["verdicts"] == serde_json::json!({"agreed": 1, "disagreed": 2})
            })
        },
    )
    .await;
    let table = cli.ok(&["nodes"]).await.stdout;
    assert!(table.contains("(2 of 3 results disagreed)"), "{table}");

    // Placement: with lent-2 the fuller node (which bin-packing prefers),
    // contributed work still goes to lent-1, whose results never differed.
    let busy = cli
        .ok(&[
            "run",
            "--detach",
            "--label",
            "pool=a",
            "--trust",
            "contributed",
            "--cpu",
            "0.5",
            "--",
            "sleep",
            "300",
        ])
        .await
        .stdout
        .trim()
        .to_string();
    let busy_job =
        reef_tests::eventually("the busy job to run", Duration::from_secs(20), || async {
            let job = cli.job(&busy).await;
            (job["state"] == "running").then_some(job)
        })
        .await;
    assert_eq!(busy_job["node"].as_str(), Some(lent2.as_str()));
    let out = cli
        .ok(&[
            "run",
            "--trust",
            "contributed",
            "--",
            "sh",
            "-c",
            "echo $REEF_NODE_ID",
        ])
        .await;
    assert_eq!(
        out.stdout.trim(),
        lent1,
        "placed away from the node that lied"
    );
    assert_ne!(own, lent1);

    // Stopping one copy stops them all; with no results, nothing is decided.
    let waiting = cli
        .ok(&["run", "--detach", "--replicate", "2", "--", "sleep", "300"])
        .await
        .stdout
        .trim()
        .to_string();
    cli.ok(&["job", "stop", &waiting]).await;
    let first = reef_tests::eventually(
        "a verdict on the stopped job",
        Duration::from_secs(30),
        || async {
            let job = cli.job(&waiting).await;
            (!job["verification"]["verdict"].is_null()).then_some(job)
        },
    )
    .await;
    let verdict = &first["verification"]["verdict"];
    assert_eq!(verdict["outcome"], "undecided", "{verdict}");
    assert_eq!(verdict["reason"], "only 0 of 2 copies produced a result");
    for copy in first["verification"]["replicas"]
        .as_array()
        .expect("replicas")
    {
        let job = cli.job(copy.as_str().expect("id")).await;
        assert_eq!(job["state"], "stopped", "{job}");
    }
    cli.ok(&["job", "stop", &busy]).await;
}

/// The newest first copy of a replicated job.
async fn latest(cli: &Cli) -> serde_json::Value {
    let jobs = cli.ok(&["jobs", "--json"]).await.json();
    jobs.as_array()
        .expect("jobs")
        .iter()
        .find(|j| !j["verification"].is_null())
        .cloned()
        .expect("a replicated job")
}
