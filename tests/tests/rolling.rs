//! Rolling updates across replicas: `max_parallel` at a time, each batch
//! healthy for `min_healthy_time` before the next, and an automatic revert
//! when the new release fails.

use reef_tests::app::write_app;
use reef_tests::{eventually, TestCluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLLING: &str = "replicas = 3\nmax_parallel = 1\nmin_healthy_time = \"1s\"\n";

/// Watches `hello` until stopped: the fewest healthy replicas seen, and the
/// most replicas of `release` seen starting at once.
struct Watch {
    running: Arc<AtomicBool>,
    fewest_healthy: Arc<AtomicU64>,
    most_starting: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(cluster: &TestCluster, release: u64) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let fewest_healthy = Arc::new(AtomicU64::new(u64::MAX));
        let most_starting = Arc::new(AtomicU64::new(0));
        let cli = reef_tests::Cli::new(&cluster.nats.url);
        let task = {
            let (running, fewest, most) = (
                running.clone(),
                fewest_healthy.clone(),
                most_starting.clone(),
            );
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    let status = cli.ok(&["status", "hello", "--json"]).await.json();
                    let instances = status["instances"].as_array().cloned().unwrap_or_default();
                    let healthy = instances.iter().filter(|i| i["state"] == "healthy").count();
                    let starting = instances
                        .iter()
                        .filter(|i| i["release"] == release && i["state"] != "healthy")
                        .count();
                    fewest.fetch_min(healthy as u64, Ordering::Relaxed);
                    most.fetch_max(starting as u64, Ordering::Relaxed);
                }
            })
        };
        Self {
            running,
            fewest_healthy,
            most_starting,
            task,
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.expect("watcher");
        (
            self.fewest_healthy.load(Ordering::Relaxed),
            self.most_starting.load(Ordering::Relaxed),
        )
    }
}

async fn releases_running(cluster: &TestCluster) -> Vec<(u64, String)> {
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let mut out: Vec<(u64, String)> = status["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            (
                i["release"].as_u64().unwrap_or(0),
                i["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_goes_one_at_a_time_and_a_failed_release_reverts() {
    let cluster = TestCluster::start(3).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, ROLLING);
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    let healthy = |release: u64| vec![(release, "healthy".to_string()); 3];
    eventually(
        "release 1 on 3 replicas",
        Duration::from_secs(30),
        || async { (releases_running(&cluster).await == healthy(1)).then_some(()) },
    )
    .await;

    // Release 2 rolls one replica at a time, each healthy for 1 s first.
    write_app(&app, "v2", 200, ROLLING);
    let watch = Watch::start(&cluster, 2);
    let started = Instant::now();
    let out = cluster
        .cli
        .run_with_timeout(
            &["deploy", app.to_str().expect("path")],
            Duration::from_secs(90),
        )
        .await;
    let took = started.elapsed();
    let (fewest_healthy, most_starting) = watch.stop().await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert!(
        out.stderr.contains("every replica runs release 2"),
        "{}",
        out.stderr
    );
    assert_eq!(releases_running(&cluster).await, healthy(2));
    assert!(
        fewest_healthy >= 3,
        "capacity kept: {fewest_healthy} healthy at the lowest"
    );
    assert!(
        most_starting <= 1,
        "one at a time: {most_starting} starting at once"
    );
    assert!(
        took >= Duration::from_secs(2),
        "two batches waited their min_healthy_time: {took:?}"
    );

    // Release 3 fails its health check: the rollout stops at its first
    // replica and the app goes back to release 2 everywhere.
    write_app(&app, "v3", 500, ROLLING);
    let out = cluster
        .cli
        .run_with_timeout(
            &["deploy", app.to_str().expect("path")],
            Duration::from_secs(90),
        )
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    let status = eventually(
        "the revert to release 2",
        Duration::from_secs(60),
        || async {
            let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
            let settled = releases_running(&cluster).await == healthy(2);
            (settled && status["release"] == 2).then_some(status)
        },
    )
    .await;
    let failure = status["rollout_failure"].as_str().expect("failure shown");
    assert!(failure.contains("release 3 failed"), "{failure}");
    assert!(failure.contains("reverted to release 2"), "{failure}");
}
