//! GPU detection and placement against a fake 2-GPU rig: a `nvidia-smi` on
//! the agent's PATH that reports two RTX 4090s.

use reef_tests::gpu::fake_rig_path;
use reef_tests::{eventually, Cli, NatsServer, ReefProcess};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_jobs_get_distinct_gpus_and_wait_for_a_free_one() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake_rig_path(dir.path());

    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _plain = ReefProcess::agent(&nats.url, dir.path(), "plain", &[]);
    let _rig = ReefProcess::agent_with_env(&nats.url, dir.path(), "rig", &[], &[("PATH", &path)]);
    let cli = Cli::new(&nats.url);
    let nodes = cli.wait_for_nodes(2).await;
    let rig = nodes
        .iter()
        .find(|n| n["name"] == "rig")
        .expect("rig listed");
    let gpus = rig["gpus"].as_array().expect("gpus");
    assert_eq!(gpus.len(), 2, "{rig}");
    assert_eq!(gpus[1]["index"], 1);
    assert_eq!(gpus[0]["model"], "NVIDIA GeForce RTX 4090");
    assert_eq!(gpus[0]["vram_bytes"], 24564u64 << 20);
    let table = cli.ok(&["nodes"]).await.stdout;
    assert!(
        table.contains("2x NVIDIA GeForce RTX 4090 (24G)"),
        "{table}"
    );

    // Where the jobs write what they were given: the agents' shared directory.
    let work = reef_tests::reef::shared_dir(dir.path());
    let go = work.join("go");
    let script = format!(
        "echo \"$CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES\" > {}/gpu-$REEF_JOB_ID; while [ ! -e {} ]; do sleep 0.05; done",
        work.display(),
        go.display()
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = cli
            .ok(&[
                "run",
                "--detach",
                "--gpus",
                "1",
                "--gpu-model",
                "4090",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .await;
        ids.push(out.stdout.trim().to_string());
    }
    let seen = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .filter_map(|id| std::fs::read_to_string(work.join(format!("gpu-{id}"))).ok())
            .map(|s| s.trim().to_string())
            .collect()
    };
    let running = eventually("two GPU jobs to run", Duration::from_secs(20), || async {
        let seen = seen(&ids);
        (seen.len() == 2).then_some(seen)
    })
    .await;
    let indices: BTreeSet<&str> = running
        .iter()
        .map(|s| s.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        indices,
        BTreeSet::from(["0", "1"]),
        "distinct GPUs: {running:?}"
    );
    for line in &running {
        let (cuda, nvidia) = line.split_once(' ').expect("two values");
        assert_eq!(cuda, nvidia, "both variables name the same GPU");
    }
    let waiting = ids
        .iter()
        .find(|id| !work.join(format!("gpu-{id}")).exists())
        .expect("one job waits")
        .clone();
    let job = cli.job(&waiting).await;
    assert_eq!(job["state"], "pending", "{job}");
    assert!(
        job["reason"].as_str().unwrap_or("").contains("free GPU"),
        "{job}"
    );

    std::fs::write(&go, "").expect("release the jobs");
    for id in &ids {
        let job = cli.wait_for_end(id, Duration::from_secs(30)).await;
        assert_eq!(job["state"], "exited", "{job}");
        assert_eq!(job["exit_code"], 0);
        assert_eq!(job["node_name"], "rig");
    }
    assert_eq!(
        seen(&ids).len(),
        3,
        "the third job got a GPU once one was free"
    );

    // A job without GPUs sees none.
    let out = cli
        .ok(&["run", "--", "sh", "-c", "echo \"[$CUDA_VISIBLE_DEVICES]\""])
        .await;
    assert_eq!(out.stdout, "[]\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_replicas_that_need_a_gpu_get_one_each() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake_rig_path(dir.path());
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _plain = ReefProcess::agent(&nats.url, dir.path(), "plain", &[]);
    let rig = ReefProcess::agent_with_env(&nats.url, dir.path(), "rig", &[], &[("PATH", &path)]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(2).await;
    let app = dir.path().join("app");
    reef_tests::app::write_app(
        &app,
        "v1",
        200,
        "replicas = 2\n\n[resources]\ngpus = 1\ngpu_model = \"4090\"\n",
    );
    cli.ok(&["deploy", app.to_str().expect("path")]).await;
    let status = cli.ok(&["status", "hello", "--json"]).await.json();
    let nodes: Vec<&str> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["node_name"].as_str())
        .collect();
    assert_eq!(nodes, vec!["rig", "rig"], "only the rig has GPUs: {status}");

    // Each replica sees its own GPU (the proxy takes turns between them).
    let port = rig.http_port.expect("proxy");
    let seen = eventually("both GPUs seen", Duration::from_secs(20), || async {
        let mut seen = BTreeSet::new();
        for _ in 0..10 {
            let r = reef_tests::http::get(port, "hello.test", "/env/CUDA_VISIBLE_DEVICES")
                .await
                .ok()?;
            seen.insert(r.body);
        }
        (seen.len() == 2).then_some(seen)
    })
    .await;
    assert_eq!(seen, BTreeSet::from(["0".to_string(), "1".to_string()]));

    // A third replica finds no free GPU, and says so.
    let out = cli.run(&["scale", "hello", "3"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("free GPU"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_offers_only_some_gpus_and_some_disk() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake_rig_path(dir.path());
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _rig = ReefProcess::agent_with_env(
        &nats.url,
        dir.path(),
        "rig",
        &["--gpus", "1", "--disk", "10G"],
        &[("PATH", &path)],
    );
    let cli = Cli::new(&nats.url);
    let nodes = cli.wait_for_nodes(1).await;
    let gpus = nodes[0]["gpus"].as_array().expect("gpus");
    assert_eq!(gpus.len(), 1, "{nodes:?}");
    assert_eq!(gpus[0]["index"], 1);
    assert_eq!(nodes[0]["resources"]["disk_bytes"], 10u64 << 30);
    // A job needing two GPUs waits: only one is offered.
    let id = cli
        .ok(&["run", "--detach", "--gpus", "2", "--", "true"])
        .await
        .stdout
        .trim()
        .to_string();
    assert_eq!(cli.job(&id).await["state"], "pending");
    let out = cli.run(&["agent", "--name", "x", "--gpus", "zero"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("invalid GPUs"), "{out:?}");
}
