//! The audit log: every change through the API and every refused call is
//! recorded with the user its credential names, and only an admin reads it.

use reef_proto::subjects;
use reef_tests::confined::Confined;
use reef_tests::wait::eventually;
use reef_tests::{Cli, TestCluster};
use serde_json::Value;
use std::time::Duration;

/// `reef audit --json` with `args`, once it holds at least `at_least` entries.
async fn audit(admin: &Cli, args: &[&str], at_least: usize) -> Value {
    let mut argv = vec!["audit", "--json"];
    argv.extend_from_slice(args);
    eventually(
        &format!("{at_least} audit entries for {args:?}"),
        Duration::from_secs(15),
        || async {
            let out = admin.ok(&argv).await.json();
            let n = out["entries"].as_array().map_or(0, Vec::len);
            (n >= at_least).then_some(out)
        },
    )
    .await
}

/// The entry of `user`'s call of `verb`; panics naming what is there.
fn entry<'a>(entries: &'a [Value], user: &str, verb: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["user"] == user && e["verb"] == verb)
        .unwrap_or_else(|| panic!("no {verb} by {user} in {entries:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_and_every_refusal_is_recorded_with_its_user_and_only_an_admin_reads_it() {
    let cluster = TestCluster::start(1).await;
    let user = |role: &str, name: &str| Cli::user(&cluster.nats.url, role, name);
    let (dora, sam, vic) = (
        user("deployer", "dora"),
        user("submitter", "sam"),
        user("viewer", "vic"),
    );

    // Changes, each by its own user.
    let job = sam.submit(&["true"]).await;
    let app = cluster.dir.path().join("hello");
    reef_tests::app::write_app(&app, "v1", 200, "");
    let out = dora.run(&["deploy", app.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    dora.ok(&["scale", "hello", "2"]).await;
    let secret = "s3cr3t-value-never-logged";
    let out = dora
        .run_with_stdin(&["secrets", "set", "hello", "API_KEY"], secret.as_bytes())
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // A change that fails is recorded with why.
    let out = dora.run(&["scale", "nosuchapp", "2"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    // Reads are not recorded...
    vic.ok(&["apps"]).await;
    vic.ok(&["nodes"]).await;
    // ...refusals are, reads among them.
    for (who, args) in [
        (&vic, &["run", "--", "true"][..]),
        (&vic, &["node", "drain", "node-1"][..]),
        (&sam, &["scale", "hello", "3"][..]),
        (&dora, &["audit"][..]),
    ] {
        let out = who.run(args).await;
        assert_ne!(out.code, Some(0), "reef {args:?}: {out:?}");
    }

    let all = audit(&cluster.cli, &["--since", "0"], 9).await;
    let text = all.to_string();
    let entries = all["entries"].as_array().expect("entries");
    assert!(!text.contains(secret), "a secret's value in the audit log");

    let submitted = entry(entries, "sam", "job.submit");
    assert_eq!(submitted["role"], "submitter");
    assert_eq!(submitted["outcome"], "done");
    assert_eq!(submitted["target"], "true");
    assert_eq!(submitted["result"], format!("job {job}"));
    let deployed = entry(entries, "dora", "app.deploy");
    assert_eq!(
        (
            &deployed["outcome"],
            &deployed["target"],
            &deployed["result"]
        ),
        (&"done".into(), &"hello".into(), &"release 1".into()),
        "{deployed}"
    );
    let set = entry(entries, "dora", "secret.set");
    assert_eq!(set["target"], "hello API_KEY");
    let scaled: Vec<&Value> = entries
        .iter()
        .filter(|e| e["user"] == "dora" && e["verb"] == "app.scale")
        .collect();
    assert_eq!(scaled.len(), 2, "{scaled:#?}");
    assert_eq!(
        (&scaled[0]["target"], &scaled[0]["outcome"]),
        (&"hello to 2".into(), &"done".into())
    );
    assert_eq!(scaled[1]["outcome"], "failed", "{scaled:#?}");
    assert!(
        scaled[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nosuchapp")),
        "{scaled:#?}"
    );
    for (user, verb, why) in [
        ("vic", "job.submit", "needs the submitter role"),
        ("vic", "node.drain", "needs the admin role"),
        ("sam", "app.scale", "needs the deployer role"),
        ("dora", "audit.list", "needs the admin role"),
    ] {
        let refused = entry(entries, user, verb);
        assert_eq!(refused["outcome"], "refused", "{refused}");
        assert!(
            refused["error"].as_str().is_some_and(|e| e.contains(why)),
            "{refused}"
        );
        assert!(refused["result"].is_null(), "{refused}");
    }
    // The agent's registration is a change too, by the node itself.
    assert!(
        entries
            .iter()
            .any(|e| e["role"] == "node" && e["verb"] == "node.register"),
        "{entries:#?}"
    );
    for read in ["app.list", "node.list", "job.list", "audit.list"] {
        assert!(
            !entries
                .iter()
                .any(|e| e["verb"] == read && e["outcome"] == "done"),
            "a read recorded: {read}"
        );
    }
    // Oldest first.
    let times: Vec<u64> = entries
        .iter()
        .map(|e| e["at_ms"].as_u64().expect("at_ms"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Narrowed by user, verb and count.
    let doras = audit(&cluster.cli, &["--user", "dora"], 5).await;
    let doras = doras["entries"].as_array().expect("entries");
    assert!(doras.iter().all(|e| e["user"] == "dora"), "{doras:#?}");
    let scales = audit(&cluster.cli, &["--verb", "app.scale"], 3).await;
    let scales = scales["entries"].as_array().expect("entries");
    assert!(
        scales.iter().all(|e| e["verb"] == "app.scale"),
        "{scales:#?}"
    );
    assert_eq!(scales.len(), 3, "{scales:#?}");
    let newest = cluster
        .cli
        .ok(&["audit", "--json", "--verb", "app.scale", "--limit", "2"])
        .await
        .json();
    assert_eq!(newest["truncated"], true, "{newest}");
    let two = newest["entries"].as_array().expect("entries");
    assert_eq!(two.len(), 2);
    assert_eq!(two[1]["user"], "sam", "the newest last: {two:#?}");
    let table = cluster.cli.ok(&["audit", "--user", "vic"]).await.stdout;
    assert!(
        table.contains("refused: ") && table.contains("node.drain"),
        "{table}"
    );

    // Bad queries are refused naming the field, before anything is sent.
    for (args, why) in [
        (&["audit", "--verb", "app.>"][..], "verb: "),
        (&["audit", "--user", "a.b"][..], "user: "),
        (&["audit", "--limit", "0"][..], "--limit"),
        (&["audit", "--since", "yesterday"][..], "--since"),
    ] {
        let out = cluster.cli.run(args).await;
        assert_ne!(out.code, Some(0), "reef {args:?}");
        assert!(out.stderr.contains(why), "reef {args:?}: {out:?}");
    }

    // Only coordinators write the stream, and no role but admin reads it:
    // the NATS server refuses the rest.
    for role in ["deployer", "submitter", "viewer"] {
        let creds = cluster.nats.url.user_creds(role, &format!("{role}-x"));
        let confined = Confined::connect(&cluster.nats.url, &creds).await;
        let mut allowed = Vec::new();
        for subject in [
            subjects::audit(role, &format!("{role}-x"), subjects::verbs::APP_DEPLOY),
            subjects::audit("admin", "admin", subjects::verbs::USER_ADD),
            format!(
                "$JS.API.CONSUMER.CREATE.{}.c.reef.audit.>",
                subjects::AUDIT_STREAM
            ),
            format!("$JS.API.STREAM.INFO.{}", subjects::AUDIT_STREAM),
            format!("$JS.API.STREAM.PURGE.{}", subjects::AUDIT_STREAM),
            format!("$JS.API.STREAM.MSG.GET.{}", subjects::AUDIT_STREAM),
            format!("$JS.API.DIRECT.GET.{}", subjects::AUDIT_STREAM),
        ] {
            if !confined.publish_refused(&subject).await {
                allowed.push(subject);
            }
        }
        if !confined.subscribe_refused("reef.audit.>").await {
            allowed.push("subscribe reef.audit.>".into());
        }
        assert!(allowed.is_empty(), "a {role} may: {allowed:#?}");
    }
}
