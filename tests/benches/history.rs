//! A cluster with a long history against an empty one, end to end with
//! real processes (release builds): 100,000 finished jobs (each with its
//! allocation) and 10,000 finished instances of a past release in KV, and
//! the same measurements taken on the same cluster before they were put
//! there:
//!
//! - coordinator start-up: from starting `reef coordinator` (the previous
//!   one stopped cleanly) until it answers a `job.submit`;
//! - leader failover: from `kill -9` of the leader (a follower beside it)
//!   until a `job.submit` sent at the kill is answered;
//! - `reef jobs --limit 50`: the API call, and the whole CLI run, with as
//!   much recent activity (60 jobs) on top in both cases;
//! - retention: with `--retain-jobs 20s`, how long until the buckets hold
//!   only live records again, and their sizes before and after.
//!
//! The history is put straight into KV, as it would stand after a week:
//! submitted and ended a day ago, ids included.
//!
//! The ratio of each to the empty cluster's is printed; within 1.5x is the
//! goal. Run with `cargo build --release --bin reef && cargo bench -p
//! reef-tests --bench history`. `REEF_BENCH_ROUNDS` sets the rounds of each
//! (default 5); `REEF_BENCH_JOBS` and `REEF_BENCH_INSTANCES` the history.

use reef_proto::alloc::{AllocState, Allocation};
use reef_proto::api::{ApiReply, ApiRequest, ApiResponse, JobQuery};
use reef_proto::app::{Instance, InstanceState};
use reef_proto::job::{JobRecord, JobSpec, JobState};
use reef_proto::{encode, now_ms, subjects, AllocId, InstanceId, JobId, NodeId};
use reef_tests::{api, leader, Cli, NatsServer, ReefProcess};
use std::path::Path;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(10);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends a `job.submit` and waits for its answer; whether it was accepted.
async fn submitted(client: &async_nats::Client) -> bool {
    let payload = encode(&ApiRequest::SubmitJob(api::shell("true"))).expect("encode");
    let subject = api::admin_subject(subjects::verbs::JOB_SUBMIT);
    let Ok(Ok(reply)) =
        tokio::time::timeout(Duration::from_secs(5), client.request(subject, payload)).await
    else {
        return false;
    };
    matches!(
        reef_proto::decode::<ApiReply>(&reply.payload),
        Ok(ApiReply(Ok(ApiResponse::Job(_))))
    )
}

/// Time from `since` until a submission is answered.
async fn until_submitted(client: &async_nats::Client, since: Instant) -> Duration {
    loop {
        if submitted(client).await {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(120), "no answer");
        tokio::time::sleep(POLL).await;
    }
}

/// Stops the running coordinator cleanly and starts a new one: how long
/// the new one takes to answer.
async fn start_up(
    nats: &NatsServer,
    dir: &Path,
    coordinator: &mut ReefProcess,
    extra: &[&str],
) -> Duration {
    coordinator.terminate().await;
    let client = nats.url.connect().await;
    let started = Instant::now();
    *coordinator = ReefProcess::coordinator(&nats.url, dir, extra);
    until_submitted(&client, started).await
}

/// Kills the leader with a follower beside it: how long until a
/// submission sent at the kill is answered. The follower is the leader
/// afterwards.
async fn failover(
    nats: &NatsServer,
    dir: &Path,
    leader_process: &mut ReefProcess,
    n: usize,
) -> Duration {
    let client = nats.url.connect().await;
    let first = leader::wait(&client).await;
    let name = format!("f{n}");
    let mut follower = ReefProcess::coordinator(&nats.url, dir, &["--name", &name]);
    // The follower is up once it follows the leader: wait for its log to say so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !follower.log_text().contains("following") {
        assert!(Instant::now() < deadline, "the follower never followed");
        tokio::time::sleep(POLL).await;
    }
    assert_ne!(first.name, name);
    leader_process.kill();
    let killed = Instant::now();
    let took = until_submitted(&client, killed).await;
    std::mem::swap(leader_process, &mut follower);
    took
}

/// Median latency of `job.list` pages of 50 (the API call), and of a whole
/// `reef jobs --limit 50` run, over four times the rounds each.
async fn listing(nats: &NatsServer, rounds: usize) -> (Duration, Duration) {
    let client = nats.url.connect().await;
    let mut api_times = Vec::new();
    for _ in 0..rounds * 4 {
        let started = Instant::now();
        match api::call(&client, ApiRequest::QueryJobs(JobQuery::newest(50)))
            .await
            .0
        {
            Ok(ApiResponse::Jobs { .. }) => api_times.push(started.elapsed()),
            other => panic!("job.list: {other:?}"),
        }
    }
    let cli = Cli::new(&nats.url);
    let mut cli_times = Vec::new();
    for _ in 0..rounds * 4 {
        let started = Instant::now();
        cli.ok(&["jobs", "--limit", "50", "--json"]).await;
        cli_times.push(started.elapsed());
    }
    (median(api_times), median(cli_times))
}

/// Messages in a bucket's stream.
async fn messages(client: &async_nats::Client, bucket: &str) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(format!("KV_{bucket}")).await.expect("stream");
    stream.info().await.expect("info").state.messages
}

/// A uuid v7 for `ms` (milliseconds since the epoch).
fn uuid_at(ms: u64) -> uuid::Uuid {
    let ts =
        uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
    uuid::Uuid::new_v7(ts)
}

/// Submits `n` jobs and waits for them to end: the recent activity a
/// cluster shows on top of its history.
async fn recent_jobs(client: &async_nats::Client, n: usize) {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(api::submit(client, api::shell("true")).await.id);
    }
    let started = Instant::now();
    loop {
        let jobs = api::jobs(client).await;
        let ended = jobs
            .iter()
            .filter(|j| ids.contains(&j.id) && j.state.is_terminal())
            .count();
        if ended == n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the recent jobs did not end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `jobs` finished jobs with their allocations, and `instances`
/// finished instances of a past release, straight into KV: submitted and
/// ended a day ago (their ids say so too).
async fn put_history(client: &async_nats::Client, node: NodeId, jobs: usize, instances: usize) {
    let js = async_nats::jetstream::new(client.clone());
    let day_ago = now_ms() - 24 * 3_600_000;
    let mut acks = Vec::with_capacity(512);
    let flush = |acks: &mut Vec<async_nats::jetstream::context::PublishAckFuture>| {
        let pending = std::mem::take(acks);
        async move {
            for ack in pending {
                ack.await.expect("stored");
            }
        }
    };
    for i in 0..jobs {
        let at = day_ago + i as u64;
        let job = JobId(uuid_at(at));
        let alloc = Allocation {
            id: AllocId(uuid_at(at)),
            job,
            node,
            resources: Default::default(),
            gpus: Vec::new(),
            state: AllocState::Exited { code: 0 },
            event_seq: 5,
            created_at_ms: day_ago,
            updated_at_ms: day_ago,
        };
        let mut spec = JobSpec::new(vec!["true".into()]);
        spec.owner = "admin".into();
        let record = JobRecord {
            id: job,
            spec,
            state: JobState::Exited { code: 0 },
            alloc: Some(alloc.id),
            node: Some(node),
            submitted_at_ms: day_ago,
            started_at_ms: Some(day_ago),
            finished_at_ms: Some(day_ago),
            stop_requested: false,
            output_lines: Some((1, 0)),
            usage: None,
            lost_on: Vec::new(),
            result: None,
            replica: None,
            verification: None,
            cron: None,
        };
        let subject = format!("$KV.{}.{}", subjects::ALLOCS_BUCKET, alloc.id);
        acks.push(
            js.publish(subject, encode(&alloc).expect("encode"))
                .await
                .expect("publish"),
        );
        let subject = format!("$KV.{}.{job}", subjects::JOBS_BUCKET);
        acks.push(
            js.publish(subject, encode(&record).expect("encode"))
                .await
                .expect("publish"),
        );
        if acks.len() >= 256 {
            flush(&mut acks).await;
        }
        if i % 20_000 == 0 {
            println!("  {i} jobs put");
        }
    }
    for _ in 0..instances {
        let instance = Instance {
            id: InstanceId(uuid_at(day_ago)),
            app: "legacy".into(),
            version: 1,
            node,
            state: InstanceState::Stopped,
            port: Some(9000),
            replaces: None,
            relieves: None,
            gpus: Vec::new(),
            restarts: 0,
            message: None,
            event_seq: 4,
            created_at_ms: day_ago,
            updated_at_ms: day_ago,
        };
        let subject = format!("$KV.{}.{}", subjects::INSTANCES_BUCKET, instance.id);
        acks.push(
            js.publish(subject, encode(&instance).expect("encode"))
                .await
                .expect("publish"),
        );
        if acks.len() >= 256 {
            flush(&mut acks).await;
        }
    }
    flush(&mut acks).await;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The measurements of one cluster state.
struct Taken {
    start_up: Duration,
    failover: Duration,
    list_api: Duration,
    list_cli: Duration,
}

async fn measure(
    nats: &NatsServer,
    dir: &Path,
    coordinator: &mut ReefProcess,
    rounds: usize,
    label: &str,
) -> Taken {
    let mut starts = Vec::new();
    for _ in 0..rounds {
        starts.push(start_up(nats, dir, coordinator, &["--name", "c1"]).await);
    }
    let mut failovers = Vec::new();
    for round in 0..rounds {
        failovers.push(failover(nats, dir, coordinator, round).await);
    }
    let (list_api, list_cli) = listing(nats, rounds).await;
    let taken = Taken {
        start_up: median(starts),
        failover: median(failovers),
        list_api,
        list_cli,
    };
    println!(
        "{label}: start-up {}, failover {}, job.list of 50 {}, reef jobs --limit 50 {}",
        ms(taken.start_up),
        ms(taken.failover),
        ms(taken.list_api),
        ms(taken.list_cli)
    );
    taken
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = env_or("REEF_BENCH_ROUNDS", 5);
    let jobs = env_or("REEF_BENCH_JOBS", 100_000);
    let instances = env_or("REEF_BENCH_INSTANCES", 10_000);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &["--name", "c1"]);
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &[]);
    let cli = Cli::new(&nats.url);
    let node: NodeId = cli.wait_for_nodes(1).await[0]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("node id");
    let client = nats.url.connect().await;

    recent_jobs(&client, 60).await;
    let empty = measure(&nats, dir.path(), &mut coordinator, rounds, "empty").await;

    println!("putting {jobs} finished jobs and {instances} finished instances in KV");
    let started = Instant::now();
    put_history(&client, node, jobs, instances).await;
    println!("  put in {:.1} s", started.elapsed().as_secs_f64());
    // The leader writes its checkpoint every 10 s: let it see the history;
    // then as much recent activity on top of it as before.
    tokio::time::sleep(Duration::from_secs(12)).await;
    recent_jobs(&client, 60).await;

    let aged = measure(&nats, dir.path(), &mut coordinator, rounds, "aged").await;

    let before = (
        messages(&client, subjects::JOBS_BUCKET).await,
        messages(&client, subjects::ALLOCS_BUCKET).await,
        messages(&client, subjects::INSTANCES_BUCKET).await,
    );
    coordinator.terminate().await;
    let retained = Instant::now();
    coordinator = ReefProcess::coordinator(
        &nats.url,
        dir.path(),
        &["--name", "c1", "--retain-jobs", "20s"],
    );
    let after = loop {
        let now = (
            messages(&client, subjects::JOBS_BUCKET).await,
            messages(&client, subjects::ALLOCS_BUCKET).await,
            messages(&client, subjects::INSTANCES_BUCKET).await,
        );
        // Nothing runs: every job ended, and every one goes.
        if now == (0, 0, 0) {
            break now;
        }
        assert!(
            retained.elapsed() < Duration::from_secs(600),
            "the buckets did not shrink: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let shrunk = retained.elapsed();
    drop(coordinator);

    println!();
    println!(
        "median over {rounds} rounds; {jobs} finished jobs and {instances} finished instances against none"
    );
    for (what, e, a) in [
        ("coordinator start-up", empty.start_up, aged.start_up),
        ("leader failover (kill -9)", empty.failover, aged.failover),
        ("job.list, a page of 50", empty.list_api, aged.list_api),
        ("reef jobs --limit 50", empty.list_cli, aged.list_cli),
    ] {
        println!(
            "{what:<28} empty {:>10}  aged {:>10}  {:.2}x",
            ms(e),
            ms(a),
            a.as_secs_f64() / e.as_secs_f64()
        );
    }
    println!(
        "retention (--retain-jobs 20s): jobs/allocs/instances {before:?} -> {after:?} messages, {:.1} s after the restart",
        shrunk.as_secs_f64()
    );
}
