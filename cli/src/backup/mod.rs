//! `reef backup run|list|restore APP` are an app's data backups
//! ([`apps`]). `reef backup create FILE` and `reef backup restore --file FILE`: the control
//! plane's state in one file, encrypted with the cluster key
//! ([`format`]): every bucket's entries and every artifact. Both run where
//! the cluster's key is (a server's data dir, `--data-dir`), as the admin.
//!
//! A restore reads the file twice: once to check all of it (it opens, it
//! is whole, every entry it would write decodes, no app it holds exists
//! already), then to write. Nothing is written unless the first reading
//! passed. What comes back is decided by [`plan`]: the apps, their releases
//! and artifacts, secrets and certificates; the leader then starts the
//! apps' instances on the cluster's own machines.

mod apps;
mod format;
mod plan;

use crate::client::{self, connect};
use crate::views::counted;
use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream;
use clap::Subcommand;
use format::{FormatError, Header, Reader, Record, Writer};
use plan::Disposition;
use reef_proto::app::{AppRecord, Release};
use reef_proto::certs::{key_context, CertRecord};
use reef_proto::cron::CronRecord;
use reef_proto::{decode, encode, subjects};
use reef_secrets::ClusterKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt as _;

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Back up an app's data now (its `${data_dir}` on each node that runs
    /// it, after its `pre_backup`), and wait for the outcome.
    Run {
        app: String,
        /// Return once the backup has started.
        #[arg(long)]
        no_wait: bool,
    },
    /// An app's backups, newest first, with their restores.
    List {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Restore an app's data from one of its backups (ID; the newest
    /// finished one when left out): every part is checked whole first, then
    /// the app's instances on each node step aside while their data is put
    /// back, and start again. With --file: the cluster's state from a file
    /// of `reef backup create` instead.
    Restore {
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        app: Option<String>,
        #[arg(conflicts_with = "file")]
        id: Option<u64>,
        /// Return once the restore has started.
        #[arg(long, conflicts_with = "file")]
        no_wait: bool,
        /// A file of `reef backup create`: bring its apps back into this
        /// cluster (a new one, or this one after its state was lost): apps,
        /// releases, artifacts, secrets and certificates. Refuses, writing
        /// nothing, if an app of the backup exists here.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// With --file: the server data dir of the cluster restored into
        /// (its key encrypts the restored secrets).
        #[arg(long, default_value = "/var/lib/reef")]
        data_dir: PathBuf,
        /// With --file: the key of the cluster the backup was made of (its
        /// cluster.key) [default: the data dir's, for the same cluster].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Write the cluster's state (every bucket's entries and every
    /// artifact) to FILE, encrypted with the cluster key.
    Create {
        file: PathBuf,
        /// The server data dir that holds the cluster's key and identity.
        #[arg(long, default_value = "/var/lib/reef")]
        data_dir: PathBuf,
    },
}

pub async fn backup(nats: &client::Nats, command: BackupCommand) -> Result<std::process::ExitCode> {
    let ok = |()| std::process::ExitCode::SUCCESS;
    match command {
        BackupCommand::Create { file, data_dir } => create(nats, &file, &data_dir).await.map(ok),
        BackupCommand::Run { app, no_wait } => apps::run(nats, &app, !no_wait).await,
        BackupCommand::List { app, json } => apps::list(nats, &app, json).await.map(ok),
        BackupCommand::Restore {
            file: Some(file),
            data_dir,
            key,
            ..
        } => restore(nats, &file, &data_dir, key.as_deref())
            .await
            .map(ok),
        BackupCommand::Restore {
            app: Some(app),
            id,
            no_wait,
            ..
        } => {
            if reef_proto::manifest::validate_app_name(&app).is_err() && Path::new(&app).is_file() {
                bail!("{app} is a file: `reef backup restore --file {app}` restores the cluster's state from it");
            }
            apps::restore(nats, &app, id, !no_wait).await
        }
        BackupCommand::Restore { .. } => bail!("name an app, or a state file with --file"),
    }
}

fn load_key(path: &Path) -> Result<ClusterKey> {
    ClusterKey::load(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// A piece of an artifact in one record.
const PIECE: usize = 512 * 1024;

async fn create(nats: &client::Nats, file: &Path, data_dir: &Path) -> Result<()> {
    let cluster = reef_trust::ClusterDir::open(data_dir)?;
    let key = load_key(&data_dir.join(reef_trust::bundle::CLUSTER_KEY))?;
    let conn = connect(nats).await?;
    let js = jetstream::new(conn.client.clone());
    let header = Header {
        format: 1,
        cluster: cluster.info.name.clone(),
        operator: cluster.info.operator.clone(),
        created_at_ms: reef_proto::now_ms(),
        reef: env!("CARGO_PKG_VERSION").into(),
    };
    let partial = file.with_extension("partial");
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_private()
        .open(&partial)
        .with_context(|| format!("could not create {}", partial.display()))?;
    let written = async {
        let mut writer = Writer::new(std::io::BufWriter::new(out), &key, &header)?;
        let (entries, buckets) = write_buckets(&js, &mut writer).await?;
        let (objects, bytes) = write_artifacts(&js, &mut writer).await?;
        let out = writer.finish()?;
        out.into_inner()
            .map_err(|e| anyhow!("{}: {e}", partial.display()))?
            .sync_all()?;
        Ok::<_, anyhow::Error>((entries, buckets, objects, bytes))
    }
    .await;
    let (entries, buckets, objects, bytes) = match written {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, file)
        .with_context(|| format!("could not write {}", file.display()))?;
    println!(
        "backup of cluster {}: {entries} entries of {buckets} buckets, {objects} artifacts ({}) in {}",
        cluster.info.name,
        reef_proto::units::format_size(bytes),
        file.display()
    );
    println!("it opens only with this cluster's key ({}): keep a copy of that file apart from the backup", data_dir.join(reef_trust::bundle::CLUSTER_KEY).display());
    Ok(())
}

/// `0600` for a new file.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Every KV bucket of the account, by name.
async fn buckets(js: &jetstream::Context) -> Result<Vec<String>> {
    use futures::TryStreamExt as _;
    let names: Vec<String> = js
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| anyhow!("could not list the streams: {e}"))?;
    let mut buckets: Vec<String> = names
        .iter()
        .filter_map(|name| name.strip_prefix("KV_").map(str::to_string))
        .collect();
    buckets.sort();
    Ok(buckets)
}

async fn write_buckets<W: std::io::Write>(
    js: &jetstream::Context,
    writer: &mut Writer<'_, W>,
) -> Result<(u64, usize)> {
    use futures::TryStreamExt as _;
    let buckets = buckets(js).await?;
    let mut entries = 0;
    for bucket in &buckets {
        let kv = js
            .get_key_value(bucket)
            .await
            .map_err(|e| anyhow!("bucket {bucket}: {e}"))?;
        let keys: Vec<String> = kv
            .keys()
            .await
            .map_err(|e| anyhow!("bucket {bucket}: {e}"))?
            .try_collect()
            .await
            .map_err(|e| anyhow!("bucket {bucket}: {e}"))?;
        for key in keys {
            let Some(value) = kv
                .get(&key)
                .await
                .map_err(|e| anyhow!("bucket {bucket}, key {key}: {e}"))?
            else {
                continue;
            };
            writer.record(&Record::Entry {
                bucket: bucket.clone(),
                key,
                value: value.to_vec(),
            })?;
            entries += 1;
        }
    }
    Ok((entries, buckets.len()))
}

async fn write_artifacts<W: std::io::Write>(
    js: &jetstream::Context,
    writer: &mut Writer<'_, W>,
) -> Result<(u64, u64)> {
    use futures::TryStreamExt as _;
    let Ok(store) = js.get_object_store(subjects::ARTIFACTS_STORE).await else {
        return Ok((0, 0));
    };
    let infos: Vec<_> = store
        .list()
        .await
        .map_err(|e| anyhow!("the artifact store: {e}"))?
        .try_collect()
        .await
        .map_err(|e| anyhow!("the artifact store: {e}"))?;
    let (mut objects, mut bytes) = (0, 0);
    for info in infos.into_iter().filter(|info| !info.deleted) {
        let mut object = store
            .get(&info.name)
            .await
            .map_err(|e| anyhow!("artifact {}: {e}", info.name))?;
        writer.record(&Record::Object {
            name: info.name.clone(),
            size: info.size as u64,
        })?;
        let mut seen = 0u64;
        let mut piece = vec![0u8; PIECE];
        loop {
            let n = object
                .read(&mut piece)
                .await
                .map_err(|e| anyhow!("artifact {}: {e}", info.name))?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            writer.record(&Record::Data(piece[..n].to_vec()))?;
        }
        if seen != info.size as u64 {
            bail!("artifact {}: read {seen} bytes of {}", info.name, info.size);
        }
        objects += 1;
        bytes += seen;
    }
    Ok((objects, bytes))
}

/// What a backup holds that a restore writes, once checked.
#[derive(Default)]
struct Contents {
    /// bucket → key → value, as the target will store them.
    writes: BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>,
    apps: Vec<String>,
    /// The periodic jobs, by name.
    crons: Vec<String>,
    /// Artifact name → size.
    artifacts: BTreeMap<String, u64>,
    skipped: BTreeMap<&'static str, u64>,
}

/// Reads the whole backup, checking it and preparing every write; with
/// `artifacts`, each artifact's bytes go into a file there.
fn read_backup(
    file: &Path,
    from: &ClusterKey,
    to: &ClusterKey,
    artifacts: Option<&Path>,
) -> Result<(Header, Contents)> {
    let input = std::fs::File::open(file).with_context(|| format!("{}", file.display()))?;
    let mut reader = Reader::new(std::io::BufReader::new(input), from)?;
    let header = reader.header().clone();
    let mut contents = Contents::default();
    let mut object: Option<(String, u64, u64, Option<std::fs::File>)> = None;
    let finish_object = |object: &mut Option<(String, u64, u64, Option<std::fs::File>)>,
                         contents: &mut Contents|
     -> Result<()> {
        if let Some((name, size, seen, _)) = object.take() {
            if seen != size {
                return Err(FormatError::Damaged(format!(
                    "artifact {name} holds {seen} bytes, not {size}"
                ))
                .into());
            }
            contents.artifacts.insert(name, size);
        }
        Ok(())
    };
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Data(bytes) => {
                let Some((_, _, seen, out)) = object.as_mut() else {
                    return Err(FormatError::Damaged("data outside an artifact".into()).into());
                };
                *seen += bytes.len() as u64;
                if let Some(out) = out {
                    std::io::Write::write_all(out, &bytes)?;
                }
            }
            Record::Object { name, size } => {
                finish_object(&mut object, &mut contents)?;
                if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(FormatError::Damaged(format!(
                        "an artifact named {name:?}, not a sha256"
                    ))
                    .into());
                }
                let out = match artifacts {
                    Some(dir) => Some(std::fs::File::create(dir.join(&name))?),
                    None => None,
                };
                object = Some((name, size, 0, out));
            }
            Record::Entry { bucket, key, value } => {
                finish_object(&mut object, &mut contents)?;
                entry(&mut contents, &bucket, key, value, from, to)?;
            }
            Record::End { .. } => finish_object(&mut object, &mut contents)?,
        }
    }
    Ok((header, contents))
}

/// Checks one entry and prepares what the target stores for it.
fn entry(
    contents: &mut Contents,
    bucket: &str,
    key: String,
    value: Vec<u8>,
    from: &ClusterKey,
    to: &ClusterKey,
) -> Result<()> {
    let bad = |e: String| anyhow!("the backup's {bucket}/{key}: {e}");
    let (target, value) = match plan::disposition(bucket, &key) {
        Disposition::Skip(_) => {
            let known = plan::WRITTEN
                .iter()
                .chain(&SKIPPED)
                .find(|b| **b == bucket)
                .copied()
                .unwrap_or("other");
            *contents.skipped.entry(known).or_default() += 1;
            return Ok(());
        }
        Disposition::Write if bucket == subjects::APPS_BUCKET => {
            let app = decode::<AppRecord>(&value).map_err(|e| bad(e.to_string()))?;
            if app.name != key {
                return Err(bad(format!("it names app {}", app.name)));
            }
            contents.apps.push(key.clone());
            (subjects::APPS_BUCKET, value)
        }
        Disposition::Write if bucket == subjects::CRON_BUCKET => {
            let cron = decode::<CronRecord>(&value).map_err(|e| bad(e.to_string()))?;
            if cron.spec.name != key {
                return Err(bad(format!("it names periodic job {}", cron.spec.name)));
            }
            cron.spec.validate().map_err(|e| bad(e.to_string()))?;
            contents.crons.push(key.clone());
            (subjects::CRON_BUCKET, value)
        }
        Disposition::Write => {
            decode::<Release>(&value).map_err(|e| bad(e.to_string()))?;
            (subjects::RELEASES_BUCKET, value)
        }
        Disposition::Secret { app, key: name } => {
            let context = subjects::secret_context(&app, &name);
            let plain = from
                .decrypt(&context, &value)
                .map_err(|e| bad(e.to_string()))?;
            let sealed = to
                .encrypt(&context, &plain)
                .map_err(|e| bad(e.to_string()))?;
            (subjects::SECRETS_BUCKET, sealed)
        }
        Disposition::Certificate => {
            let mut cert = decode::<CertRecord>(&value).map_err(|e| bad(e.to_string()))?;
            let context = key_context(cert.primary());
            let plain = from
                .decrypt(&context, &cert.stored_key)
                .map_err(|e| bad(e.to_string()))?;
            cert.stored_key = to
                .encrypt(&context, &plain)
                .map_err(|e| bad(e.to_string()))?;
            cert.sealed_keys.clear();
            (
                subjects::CERTS_BUCKET,
                encode(&cert).map_err(|e| bad(e.to_string()))?.to_vec(),
            )
        }
    };
    contents
        .writes
        .entry(target)
        .or_default()
        .insert(key, value);
    Ok(())
}

/// The buckets left out, by name, for the report.
const SKIPPED: [&str; 9] = [
    subjects::JOBS_BUCKET,
    subjects::ALLOCS_BUCKET,
    subjects::INSTANCES_BUCKET,
    subjects::ROUTES_BUCKET,
    subjects::NODES_BUCKET,
    subjects::SERVERS_BUCKET,
    subjects::MEMBERS_BUCKET,
    subjects::TOKENS_BUCKET,
    subjects::LEADER_BUCKET,
];

async fn restore(
    nats: &client::Nats,
    file: &Path,
    data_dir: &Path,
    key: Option<&Path>,
) -> Result<()> {
    let to = load_key(&data_dir.join(reef_trust::bundle::CLUSTER_KEY))?;
    let from = match key {
        Some(path) => load_key(path)?,
        None => load_key(&data_dir.join(reef_trust::bundle::CLUSTER_KEY))?,
    };
    // First reading: all of it checked, nothing written.
    let (header, contents) = read_backup(file, &from, &to, None)?;
    let conn = connect(nats).await?;
    let js = jetstream::new(conn.client.clone());
    let apps = js
        .get_key_value(subjects::APPS_BUCKET)
        .await
        .map_err(|e| anyhow!("this cluster's apps (has a coordinator run?): {e}"))?;
    let existing = list_keys(&apps).await?;
    let conflicts = plan::conflicts(&contents.apps, &existing);
    if !conflicts.is_empty() {
        bail!(
            "this cluster already has {}: a restore does not overwrite apps (destroy them \
             first, or restore into a cluster without them); nothing was written",
            conflicts.join(", ")
        );
    }
    let crons = js
        .get_key_value(subjects::CRON_BUCKET)
        .await
        .map_err(|e| anyhow!("this cluster's periodic jobs: {e}"))?;
    let conflicts = plan::conflicts(&contents.crons, &list_keys(&crons).await?);
    if !conflicts.is_empty() {
        bail!(
            "this cluster already has the periodic jobs {}: a restore does not overwrite them \
             (reef cron rm them first); nothing was written",
            conflicts.join(", ")
        );
    }
    // Second reading: the artifacts into files, then everything written.
    let staging = tempfile::tempdir().context("a temporary directory for the artifacts")?;
    let (_, contents) = read_backup(file, &from, &to, Some(staging.path()))?;
    let store = js
        .get_object_store(subjects::ARTIFACTS_STORE)
        .await
        .map_err(|e| anyhow!("this cluster's artifact store: {e}"))?;
    for (name, size) in &contents.artifacts {
        if let Ok(info) = store.info(name).await {
            if !info.deleted && info.size as u64 == *size {
                continue;
            }
        }
        let mut staged = tokio::fs::File::open(staging.path().join(name)).await?;
        store
            .put(name.as_str(), &mut staged)
            .await
            .map_err(|e| anyhow!("artifact {name}: {e}"))?;
    }
    for bucket in plan::WRITTEN {
        let Some(entries) = contents.writes.get(bucket) else {
            continue;
        };
        let kv = js
            .get_key_value(bucket)
            .await
            .map_err(|e| anyhow!("bucket {bucket}: {e}"))?;
        for (key, value) in entries {
            kv.put(key, value.clone().into())
                .await
                .map_err(|e| anyhow!("bucket {bucket}, key {key}: {e}"))?;
        }
    }
    let count = |bucket: &str| contents.writes.get(bucket).map_or(0, BTreeMap::len);
    println!(
        "restored from the backup of cluster {} (made {} ago): {} ({}), {}, {}, {}, {}, {}",
        header.cluster,
        reef_proto::units::format_duration(std::time::Duration::from_millis(
            reef_proto::now_ms().saturating_sub(header.created_at_ms)
        )),
        counted(contents.apps.len(), "app", "apps"),
        contents.apps.join(", "),
        counted(count(subjects::RELEASES_BUCKET), "release", "releases"),
        counted(count(subjects::SECRETS_BUCKET), "secret", "secrets"),
        counted(count(subjects::CERTS_BUCKET), "certificate", "certificates"),
        counted(contents.crons.len(), "periodic job", "periodic jobs"),
        counted(contents.artifacts.len(), "artifact", "artifacts"),
    );
    let skipped: Vec<String> = contents
        .skipped
        .iter()
        .map(|(bucket, n)| format!("{bucket} ({n})"))
        .collect();
    if !skipped.is_empty() {
        println!(
            "left out, as they belong to the old cluster's machines and credentials: {}",
            skipped.join(", ")
        );
    }
    println!("the leader starts the apps' instances on this cluster's nodes: see `reef apps`");
    Ok(())
}

async fn list_keys(kv: &jetstream::kv::Store) -> Result<Vec<String>> {
    use futures::TryStreamExt as _;
    kv.keys()
        .await
        .map_err(|e| anyhow!("bucket {}: {e}", kv.name))?
        .try_collect()
        .await
        .map_err(|e| anyhow!("bucket {}: {e}", kv.name))
}
