//! `reef deploy`, `reef apps`, `reef status` and `reef releases`.
//!
//! A deploy packs the directory (or a single binary) into a deterministic
//! tarball, uploads it to the artifact store only if its sha256 is not there
//! yet, asks a coordinator to record the release and roll it out, and then
//! follows every new instance until all are healthy, or one fails (then it
//! says what the check saw and prints the instance's last log lines).

use crate::client::{self, call, connect};
use crate::views;
use crate::views::counted;
use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream;
use clap::Args;
use futures::StreamExt;
use reef_proto::api::{ApiRequest, ApiResponse, AppQuery, AppStatus, DEFAULT_PAGE};
use reef_proto::app::{ArtifactRef, Instance, InstanceState};
use reef_proto::subjects;
use reef_proto::units::{format_duration, format_size};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct DeployArgs {
    /// The app's directory, or a single binary [default: .].
    pub path: Option<PathBuf>,
    /// The manifest [default: Reef.toml in the directory].
    #[arg(short = 'f', long = "file")]
    pub manifest: Option<PathBuf>,
    /// Record the release and return without waiting for it to be healthy.
    #[arg(long, short = 'd')]
    pub detach: bool,
}

/// The program a release starts, when it is a path in the release (a
/// `binary`, a command with a `/`, a BEAM release's `bin/NAME`): it must be
/// in `dir` and executable, found before anything is packed or uploaded.
fn check_program(dir: &std::path::Path, spec: &reef_proto::manifest::AppSpec) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let argv = spec.run.argv();
    let Some(program) = argv.first().filter(|p| p.contains('/')) else {
        return Ok(());
    };
    let file = dir.join(program);
    match std::fs::metadata(&file) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(meta) if meta.is_file() => bail!(
            "{} is not executable (chmod +x {}): the app could not start",
            file.display(),
            file.display()
        ),
        _ => bail!(
            "{} does not exist: {} starts {program}, which must be in the release",
            file.display(),
            spec.name
        ),
    }
}

/// Longest a deploy is followed before the CLI gives up waiting (the rollout goes on).
const FOLLOW_LIMIT: Duration = Duration::from_secs(900);

pub async fn deploy(nats: &client::Nats, args: DeployArgs) -> Result<ExitCode> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let manifest_path = match (&args.manifest, path.is_dir()) {
        (Some(file), _) => file.clone(),
        (None, true) => path.join("Reef.toml"),
        (None, false) => bail!(
            "{} is a file: give its manifest with -f Reef.toml",
            path.display()
        ),
    };
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("could not read {}", manifest_path.display()))?;
    let spec = reef_proto::manifest::parse(&text)
        .map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    if path.is_dir() {
        check_program(&path, &spec)?;
    }

    let tarball = tempfile::NamedTempFile::new()?;
    let entries = if path.is_dir() {
        reef_artifact::pack_dir(&path, std::io::BufWriter::new(tarball.reopen()?))?
    } else {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{} has no usable file name", path.display()))?;
        reef_artifact::pack_file(&path, name, std::io::BufWriter::new(tarball.reopen()?))?
    };
    let size = std::fs::metadata(tarball.path())?.len();
    let digest = reef_artifact::sha256_hex(std::fs::File::open(tarball.path())?)?;

    let client = connect(nats).await?;
    let js = jetstream::new(client.client.clone());
    upload(&js, tarball.path(), &digest, size, entries).await?;

    let reply = call(
        &client,
        ApiRequest::DeployApp {
            spec: Box::new(spec.clone()),
            artifact: ArtifactRef { digest, size },
        },
    )
    .await?;
    let ApiResponse::Deploying { release, instances } = reply else {
        bail!("unexpected reply from the coordinator");
    };
    eprintln!(
        "release {} of {}: rolling out to {}",
        release.version,
        release.app,
        counted(instances.len(), "instance", "instances")
    );
    if args.detach {
        println!("{}", release.version);
        return Ok(ExitCode::SUCCESS);
    }
    let names = crate::jobs::node_names(&client).await;
    let hook = release.spec.post_deploy.is_some();
    let rolling = (instances.len() as u32) < release.spec.replicas;
    let first = follow(
        &client,
        &js,
        &release.app,
        &instances,
        &names,
        hook && !rolling,
    )
    .await?;
    let done = match !rolling || first != ExitCode::SUCCESS {
        true => first,
        false => finish_rollout(&client, &release, hook).await?,
    };
    if done == ExitCode::SUCCESS {
        print_where(&client, &release.spec.domains).await;
    }
    Ok(done)
}

/// Says where a deployed app is reached: its first domain, and how to reach
/// it through a node's proxy before its DNS points there.
async fn print_where(client: &client::Conn, domains: &[String]) {
    let Some(route) = domains
        .first()
        .map(|d| reef_proto::route_domain::RouteDomain::split(d))
    else {
        return;
    };
    // A wildcard is shown with a name it covers.
    let host = match route.host.strip_prefix("*.") {
        Some(parent) => format!("www.{parent}"),
        None => route.host,
    };
    let (domain, path) = (host, route.prefix);
    let through = match call(client, ApiRequest::ListNodes).await {
        Ok(ApiResponse::Nodes(nodes)) => nodes
            .iter()
            .filter(|n| n.state == reef_proto::api::NodeState::Ready)
            .find_map(|n| n.record.public_http),
        _ => None,
    };
    match through {
        Some(addr) => eprintln!(
            "serving http://{domain}{path}/ (through a node: curl -H 'Host: {domain}' http://{addr}{path}/)"
        ),
        None => eprintln!("serving http://{domain}{path}/ on every node's proxy"),
    }
}

/// Waits for a rolling update to replace every replica after its first batch:
/// success once every replica runs `release` and is healthy (and its
/// `post_deploy` hook, if any, succeeded); failure if the rollout was halted
/// or reverted.
async fn finish_rollout(
    client: &client::Conn,
    release: &reef_proto::app::Release,
    hook: bool,
) -> Result<ExitCode> {
    let app = &release.app;
    let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
    let mut shown = None;
    loop {
        let ApiResponse::App(status) = call(client, ApiRequest::AppStatus(app.clone())).await?
        else {
            bail!("unexpected reply from the coordinator");
        };
        if let Some(failure) = &status.record.rollout_failure {
            eprintln!("reef: {app}: {failure}");
            return Ok(ExitCode::FAILURE);
        }
        if status.record.version > release.version {
            eprintln!(
                "reef: release {} of {app} was superseded by release {}, deployed meanwhile",
                release.version, status.record.version
            );
            return Ok(ExitCode::from(SUPERSEDED));
        }
        if status.record.version != release.version {
            eprintln!(
                "reef: {app} now runs release {}, not {}",
                status.record.version, release.version
            );
            return Ok(ExitCode::FAILURE);
        }
        let on_release = status
            .instances
            .iter()
            .filter(|i| i.version == release.version && i.state == InstanceState::Healthy)
            .count();
        let others = status
            .instances
            .iter()
            .filter(|i| i.version != release.version)
            .count();
        if shown != Some(on_release) {
            eprintln!(
                "  {on_release}/{} replicas healthy on release {}",
                status.record.replicas, release.version
            );
            shown = Some(on_release);
        }
        if others == 0 && on_release as u32 >= status.record.replicas {
            let hook_result = status
                .instances
                .iter()
                .filter_map(|i| i.message.as_deref())
                .find(|m| m.starts_with("post_deploy"));
            match (hook, hook_result) {
                (false, _) | (true, Some("post_deploy succeeded")) => {
                    eprintln!("{app}: every replica runs release {}", release.version);
                    return Ok(ExitCode::SUCCESS);
                }
                (true, Some(failure)) => {
                    eprintln!("reef: {app} is deployed, but {failure}");
                    return Ok(ExitCode::FAILURE);
                }
                (true, None) => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "reef: still rolling out after {}; see `reef status {app}`",
                format_duration(FOLLOW_LIMIT)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn upload(
    js: &jetstream::Context,
    file: &Path,
    digest: &str,
    size: u64,
    entries: u64,
) -> Result<()> {
    let store = js
        .get_object_store(subjects::ARTIFACTS_STORE)
        .await
        .map_err(|e| anyhow!("could not open the artifact store (has a coordinator run?): {e}"))?;
    if let Ok(info) = store.info(digest).await {
        if !info.deleted && info.size as u64 == size {
            eprintln!(
                "artifact {} ({}) is already uploaded",
                &digest[..12],
                format_size(size)
            );
            return Ok(());
        }
    }
    eprintln!(
        "uploading artifact {} ({}, {})",
        &digest[..12],
        format_size(size),
        counted(entries as usize, "entry", "entries")
    );
    let mut reader = Progress::new(tokio::fs::File::open(file).await?, size);
    store
        .put(digest, &mut reader)
        .await
        .map_err(|e| anyhow!("upload failed: {e}"))?;
    Ok(())
}

/// Counts bytes read and prints progress for large uploads.
struct Progress<R> {
    inner: R,
    total: u64,
    done: u64,
    shown: u64,
}

impl<R> Progress<R> {
    fn new(inner: R, total: u64) -> Self {
        Self {
            inner,
            total,
            done: 0,
            shown: 0,
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Progress<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.done += read;
        // Every tenth of the way, for artifacts over 4 MiB.
        if self.total > 4 << 20 {
            let tenth = self.done * 10 / self.total.max(1);
            if tenth > self.shown {
                self.shown = tenth;
                eprintln!(
                    "  {}% ({} of {})",
                    tenth * 10,
                    format_size(self.done),
                    format_size(self.total)
                );
            }
        }
        poll
    }
}

/// Follows new instances until all are healthy or one fails; with
/// `post_deploy`, then until the hook has reported.
async fn follow(
    client: &client::Conn,
    js: &jetstream::Context,
    app: &str,
    instances: &[Instance],
    names: &HashMap<String, String>,
    post_deploy: bool,
) -> Result<ExitCode> {
    let bucket = js
        .get_key_value(subjects::INSTANCES_BUCKET)
        .await
        .map_err(|e| anyhow!("could not open the instances bucket: {e}"))?;
    // With history: an instance that changed before the watch began is seen too.
    let mut watch = bucket
        .watch_many_with_history(instances.iter().map(|i| i.id.to_string()))
        .await
        .context("could not watch instances")?;
    let mut states: BTreeMap<reef_proto::InstanceId, Instance> =
        instances.iter().map(|i| (i.id, i.clone())).collect();
    let node_name = |i: &Instance| {
        names
            .get(&i.node.to_string())
            .cloned()
            .unwrap_or_else(|| i.node.to_string())
    };
    let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
    loop {
        if states.values().all(|i| i.state == InstanceState::Healthy) {
            let hook = states
                .values()
                .filter_map(|i| i.message.as_deref())
                .find(|m| m.starts_with("post_deploy"));
            match (post_deploy, hook) {
                (false, _) => {
                    eprintln!("{app}: every instance is healthy");
                    return Ok(ExitCode::SUCCESS);
                }
                (true, Some("post_deploy succeeded")) => {
                    eprintln!("{app}: every instance is healthy; post_deploy succeeded");
                    return Ok(ExitCode::SUCCESS);
                }
                (true, Some(failure)) => {
                    eprintln!("reef: {app} is deployed, but {failure}");
                    return Ok(ExitCode::FAILURE);
                }
                (true, None) => {}
            }
        }
        if let Some(failed) = states.values().find(|i| i.state.is_terminal()) {
            if failed.state == InstanceState::Stopped {
                if let Some(newer) = superseded_by(client, app, failed.version).await {
                    eprintln!(
                        "reef: release {} of {app} was superseded by release {newer}, deployed \
                         meanwhile: its instances stopped for that one's (see `reef status {app}`)",
                        failed.version
                    );
                    return Ok(ExitCode::from(SUPERSEDED));
                }
            }
            let reason = match &failed.state {
                InstanceState::Failed { reason } | InstanceState::Lost { reason } => reason.clone(),
                other => other.name().to_string(),
            };
            eprintln!(
                "reef: deploy of {app} failed on {}: {reason}",
                node_name(failed)
            );
            print_last_lines(js, app, failed.id).await;
            if instances.iter().all(|i| i.replaces.is_none()) {
                eprintln!(
                    "no earlier release of {app} was running, so nothing serves it; \
                     `reef status {app}` keeps the failure until the next deploy"
                );
            } else {
                eprintln!("the previous release keeps serving where it ran");
            }
            return Ok(ExitCode::FAILURE);
        }
        let entry = tokio::select! {
            entry = watch.next() => entry,
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("reef: still rolling out after {}; see `reef status {app}`", format_duration(FOLLOW_LIMIT));
                return Ok(ExitCode::FAILURE);
            }
        };
        let Some(Ok(entry)) = entry else {
            bail!("the instance watch ended unexpectedly");
        };
        let Ok(instance) = reef_proto::decode::<Instance>(&entry.value) else {
            continue;
        };
        if let Some(known) = states.get_mut(&instance.id) {
            if known.state != instance.state {
                eprintln!(
                    "  {}: {}{}",
                    node_name(&instance),
                    instance.state.name(),
                    instance
                        .message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                );
            }
            *known = instance;
        }
    }
}

/// Exit code of a deploy, rollback, scale or start whose release another
/// deploy replaced before it was rolled out (docs/cli.md, *Exit codes*).
pub const SUPERSEDED: u8 = 3;

/// The release that replaced `release` of `app` as the one to run, if one did.
async fn superseded_by(client: &client::Conn, app: &str, release: u32) -> Option<u32> {
    match call(client, ApiRequest::AppStatus(app.to_string())).await {
        Ok(ApiResponse::App(status)) if status.record.version > release => {
            Some(status.record.version)
        }
        _ => None,
    }
}

/// Prints the last lines an instance logged, to explain a failure.
async fn print_last_lines(js: &jetstream::Context, app: &str, instance: reef_proto::InstanceId) {
    let filter = subjects::one_instance_logs(app, instance);
    let lines = match crate::logs::last_lines(js, &filter, 20).await {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("(its logs could not be read: {e:#})");
            return;
        }
    };
    if lines.is_empty() {
        eprintln!("(it logged nothing)");
        return;
    }
    eprintln!("its last {} log lines:", lines.len());
    for line in lines {
        eprintln!("  | {}", String::from_utf8_lossy(&line));
    }
}

/// `reef rollback`, `reef scale`, `reef start`: ask, then follow the new instances.
pub async fn change(nats: &client::Nats, request: ApiRequest, detach: bool) -> Result<ExitCode> {
    let rollback = matches!(request, ApiRequest::Rollback { .. });
    let client = connect(nats).await?;
    match call(&client, request).await? {
        ApiResponse::Deploying { release, instances } => {
            let what = match release.copied_from {
                Some(from) => format!(
                    "release {} of {} (a copy of release {from})",
                    release.version, release.app
                ),
                None => format!("release {} of {}", release.version, release.app),
            };
            if instances.is_empty() {
                eprintln!("{what}: nothing new to start (it runs its replicas; any beyond the count are stopped)");
            } else {
                eprintln!(
                    "{what}: starting {}",
                    counted(instances.len(), "instance", "instances")
                );
            }
            if detach || instances.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            let names = crate::jobs::node_names(&client).await;
            // A rollback is a new release, so its post_deploy runs; scaling
            // and starting keep the release, whose hook already ran.
            let hook = release.spec.post_deploy.is_some() && rollback;
            follow(
                &client,
                &jetstream::new(client.client.clone()),
                &release.app,
                &instances,
                &names,
                hook,
            )
            .await
        }
        _ => bail!("unexpected reply from the coordinator"),
    }
}

/// Asks on the terminal whether to destroy `app`; without a terminal to
/// ask on, says to pass --yes. True to go on.
pub fn confirm_destroy(app: &str, delete_data: bool) -> Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let data = match delete_data {
        true => ", and delete its services' data",
        false => "",
    };
    if !std::io::stdin().is_terminal() {
        bail!("reef destroy {app} stops the app and forgets it, its releases and its secrets{data}: pass --yes to do it without a terminal to ask on");
    }
    eprint!("destroy {app}: stop it and forget it, its releases and its secrets{data}? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let yes = matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes");
    if !yes {
        eprintln!("not destroyed");
    }
    Ok(yes)
}

/// `reef destroy APP [--delete-data]`: what becomes of the app's
/// services' data is said before and after.
pub async fn destroy(nats: &client::Nats, app: String, delete_data: bool) -> Result<ExitCode> {
    let services = {
        let client = connect(nats).await?;
        match status_of(&client, &app).await {
            Ok(status) => status.services,
            // Already destroyed: only its kept data may be left to delete.
            Err(_) if delete_data => Vec::new(),
            Err(e) => return Err(e),
        }
    };
    let request = match delete_data {
        true => ApiRequest::DestroyAppData {
            app: app.clone(),
            delete_data,
        },
        false => ApiRequest::DestroyApp(app.clone()),
    };
    let code = stop(nats, request).await?;
    for service in &services {
        let node = service
            .node_name
            .clone()
            .unwrap_or_else(|| service.node.to_string());
        match delete_data {
            true => eprintln!(
                "deleting the {} data of {app} on node {node}",
                service.kind.name()
            ),
            false => eprintln!(
                "kept: the {} data of {app} on node {node} (a new deploy of {app} takes it up \
                 again; `reef destroy {app} --delete-data --yes` deletes it)",
                service.kind.name()
            ),
        }
    }
    Ok(code)
}

/// `reef stop` and `reef destroy`: ask, then wait until the instances are gone.
pub async fn stop(nats: &client::Nats, request: ApiRequest) -> Result<ExitCode> {
    let client = connect(nats).await?;
    let ApiResponse::Stopping(instances) = call(&client, request).await? else {
        bail!("unexpected reply from the coordinator");
    };
    eprintln!(
        "stopping {}",
        counted(instances.len(), "instance", "instances")
    );
    let bucket = jetstream::new(client.client)
        .get_key_value(subjects::INSTANCES_BUCKET)
        .await
        .map_err(|e| anyhow!("could not open the instances bucket: {e}"))?;
    let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
    for instance in instances {
        let mut watch = bucket
            .watch_with_history(instance.id.to_string())
            .await
            .context("could not watch an instance")?;
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                _ = tokio::time::sleep_until(deadline) => bail!("instances are still stopping; see `reef status`"),
            };
            let Some(Ok(entry)) = entry else {
                bail!("the instance watch ended unexpectedly")
            };
            if let Ok(i) = reef_proto::decode::<Instance>(&entry.value) {
                if i.state.is_terminal() {
                    break;
                }
            }
        }
    }
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn status_of(client: &client::Conn, app: &str) -> Result<AppStatus> {
    match call(client, ApiRequest::AppStatus(app.to_string())).await? {
        ApiResponse::App(status) => Ok(*status),
        _ => bail!("unexpected reply from the coordinator"),
    }
}

/// `reef apps`: which apps, and how to print them.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Only apps in this state: running, stopped or halted.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = DEFAULT_PAGE, value_name = "N")]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn apps(nats: &client::Nats, args: ListArgs) -> Result<()> {
    let query = AppQuery {
        state: args.state,
        limit: args.limit,
    };
    query.validate().map_err(|e| anyhow::anyhow!(e))?;
    let client = connect(nats).await?;
    let ApiResponse::AppPage { apps, truncated } =
        call(&client, ApiRequest::QueryApps(query)).await?
    else {
        bail!("unexpected reply from the coordinator");
    };
    if truncated {
        eprintln!("(more apps than --limit {} are not listed)", args.limit);
    }
    if args.json {
        let names = crate::jobs::node_names(&client).await;
        return views::print_json(&serde_json::Value::Array(
            apps.iter().map(|a| views::app_json(a, &names)).collect(),
        ));
    }
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            let healthy = a
                .instances
                .iter()
                .filter(|i| i.state == InstanceState::Healthy && i.version == a.record.version)
                .count();
            vec![
                a.record.name.clone(),
                a.record.version.to_string(),
                match a.record.maintenance {
                    Some(_) => format!("{} (maintenance)", views::app_state(&a.record)),
                    None => views::app_state(&a.record).into(),
                },
                format!("{healthy}/{}", a.record.replicas),
                if a.release.spec.domains.is_empty() {
                    "-".into()
                } else {
                    a.release.spec.domains.join(",")
                },
            ]
        })
        .collect();
    views::print_table(&["NAME", "RELEASE", "STATE", "HEALTHY", "DOMAINS"], &rows);
    Ok(())
}

pub async fn status(nats: &client::Nats, app: &str, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let status = status_of(&client, app).await?;
    let names = crate::jobs::node_names(&client).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&views::app_json(&status, &names))?
        );
        return Ok(());
    }
    println!("app:      {}", status.record.name);
    println!(
        "release:  {} (artifact {})",
        status.record.version,
        &status.release.artifact.digest[..12]
    );
    println!("replicas: {}", status.record.replicas);
    if !status.release.spec.domains.is_empty() {
        println!("domains:  {}", status.release.spec.domains.join(", "));
    }
    if let Some(failure) = &status.record.rollout_failure {
        println!("rollout:  {failure}");
    }
    for service in &status.services {
        println!("service:  {}", views::service_line(service));
    }
    if let Some(maintenance) = &status.record.maintenance {
        let since = reef_proto::now_ms().saturating_sub(maintenance.since_ms);
        let page = match maintenance.custom_page {
            true => format!("a page of {}", format_size(maintenance.page_bytes)),
            false => "the default page".into(),
        };
        println!(
            "maintenance: on for {} (every node answers 503 with {page}; `reef maintenance off {}` ends it)",
            format_duration(Duration::from_millis(since)),
            status.record.name
        );
    }
    println!();
    views::print_table(
        views::INSTANCE_HEADER,
        &views::instance_rows(&status.instances, &names),
    );
    Ok(())
}

pub async fn releases(nats: &client::Nats, app: &str, json: bool) -> Result<()> {
    let client = connect(nats).await?;
    let record = status_of(&client, app).await?.record;
    let ApiResponse::Releases(releases) =
        call(&client, ApiRequest::ListReleases(app.to_string())).await?
    else {
        bail!("unexpected reply from the coordinator");
    };
    if json {
        return views::print_json(&serde_json::Value::Array(
            releases
                .iter()
                .map(|r| views::release_json(r, &record))
                .collect(),
        ));
    }
    let now = reef_proto::now_ms();
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                r.version.to_string(),
                views::release_state(r, &record).to_string(),
                r.copied_from
                    .map(|from| format!("copy of {from}"))
                    .unwrap_or_else(|| "-".into()),
                r.artifact.digest[..12].to_string(),
                format_size(r.artifact.size),
                format!(
                    "{} ago",
                    format_duration(Duration::from_millis(now.saturating_sub(r.created_at_ms)))
                ),
            ]
        })
        .collect();
    views::print_table(
        &[
            "RELEASE", "STATE", "ROLLBACK", "ARTIFACT", "SIZE", "CREATED",
        ],
        &rows,
    );
    if let Some(failure) = &record.rollout_failure {
        eprintln!("last rollout: {failure}");
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum SecretsCommand {
    /// Set a secret; the value is read from standard input (one trailing newline is dropped).
    Set {
        app: String,
        key: String,
        /// Set it for an app that is not deployed yet.
        #[arg(long)]
        create: bool,
    },
    /// List an app's secret names (never values).
    List {
        app: String,
        /// Print a JSON list of names.
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    Rm { app: String, key: String },
}

pub async fn secrets(nats: &client::Nats, command: SecretsCommand) -> Result<()> {
    let done = match &command {
        SecretsCommand::Set { app, key, .. } => format!("secret {key} set for {app}"),
        SecretsCommand::Rm { app, key } => format!("secret {key} removed from {app}"),
        SecretsCommand::List { .. } => String::new(),
    };
    let json = matches!(command, SecretsCommand::List { json: true, .. });
    let request = match command {
        SecretsCommand::Set { app, key, create } => {
            use std::io::Read;
            let mut value = Vec::new();
            std::io::stdin()
                .read_to_end(&mut value)
                .context("could not read the secret from standard input")?;
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            if value.is_empty() {
                bail!("the secret is empty: pipe its value on standard input (echo -n VALUE | reef secrets set APP KEY)");
            }
            ApiRequest::SetSecret {
                app,
                key,
                value,
                create,
            }
        }
        SecretsCommand::List { app, .. } => ApiRequest::ListSecrets(app),
        SecretsCommand::Rm { app, key } => ApiRequest::RemoveSecret { app, key },
    };
    let client = connect(nats).await?;
    match call(&client, request).await? {
        ApiResponse::SecretNames(names) if json => {
            views::print_json(&serde_json::json!(names))?;
        }
        ApiResponse::SecretNames(names) => {
            for name in names {
                println!("{name}");
            }
        }
        ApiResponse::Done => println!("{done}"),
        _ => bail!("unexpected reply from the coordinator"),
    }
    Ok(())
}
