//! Backups on this node, asked for by the leader on `reef.backup.<node>`
//! (only coordinators and admins may publish there; only dedicated nodes
//! listen, as only they run apps).
//!
//! Making a part: the app's `pre_backup` runs beside a healthy local
//! instance, with its environment; then `${data_dir}` is packed, encrypted
//! to the cluster's backup key ([`reef_secrets::backup`]) and stored in the
//! backups store. The node never holds anything that opens it again.
//!
//! Restoring a part: the object is fetched and must hash to what the
//! leader recorded; it is decrypted with the content key the leader sealed
//! to this node and unpacked beside the data directory, all of it checked
//! before anything is touched. Only then do the app's local instances step
//! aside (drained and stopped, as in a sequential deploy), the directories
//! are swapped, and the instances start again on the restored data.

use crate::Agent;
use reef_proto::backup::{part_context, BackupAnswer, BackupRequest};
use reef_proto::{decode, encode, subjects};
use sha2::{Digest as _, Sha256};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The files a request works in, removed when it ends however it ends.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

impl Agent {
    /// Answers the leader's backup requests until shutdown; each runs on a
    /// task of its own, one per app at a time.
    pub(crate) async fn answer_backups(self: Arc<Self>) {
        let Some(mut requests) = self.listen(subjects::backup(self.node), "backup").await else {
            return;
        };
        while let Some(message) = self.next_request(&mut requests).await {
            let Some(reply) = message.reply else { continue };
            let answer = match decode::<BackupRequest>(&message.payload) {
                Ok(request) => request,
                Err(e) => {
                    self.malformed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, "dropping a malformed backup request");
                    continue;
                }
            };
            let agent = self.clone();
            self.tasks.spawn(async move {
                let answer = agent.backup(answer).await;
                match encode(&answer) {
                    Ok(bytes) => {
                        if let Err(e) = agent.client.publish(reply, bytes).await {
                            tracing::warn!(error = %e, "a backup answer was not sent");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a backup answer could not be encoded"),
                }
            });
        }
    }

    async fn backup(&self, request: BackupRequest) -> BackupAnswer {
        let (app, object) = match &request {
            BackupRequest::Make { app, object, .. }
            | BackupRequest::Restore { app, object, .. } => (app.clone(), object.clone()),
        };
        if let Err(e) = reef_proto::manifest::validate_app_name(&app) {
            return BackupAnswer::Failed { reason: e };
        }
        if !object.starts_with(&format!("{app}/")) || object.contains("..") {
            return BackupAnswer::Failed {
                reason: format!("object {object:?} is not one of app {app}'s"),
            };
        }
        // One backup or restore of an app at a time on a node.
        let _held = self.services.preparing.lock(&format!("backup:{app}")).await;
        let outcome = match request {
            BackupRequest::Make {
                app,
                object,
                recipient,
                pre_backup,
            } => self.make_part(&app, &object, &recipient, pre_backup).await,
            BackupRequest::Restore {
                app,
                object,
                sha256,
                key,
            } => self.restore_part(&app, &object, &sha256, &key).await,
        };
        match outcome {
            Ok(answer) => answer,
            Err(reason) => {
                tracing::warn!(%app, %object, %reason, "backup request failed");
                BackupAnswer::Failed { reason }
            }
        }
    }

    fn app_data(&self, app: &str) -> PathBuf {
        self.config.data_dir.join("apps").join(app).join("data")
    }

    fn scratch(&self, what: &str) -> Result<PathBuf, String> {
        let dir = self.config.data_dir.join("backups");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(dir.join(format!("{}.{what}", uuid::Uuid::now_v7())))
    }

    async fn make_part(
        &self,
        app: &str,
        object: &str,
        recipient: &[u8; 32],
        pre_backup: Option<String>,
    ) -> Result<BackupAnswer, String> {
        let hook = match pre_backup {
            None => None,
            Some(command) => match self.pre_backup(app, &command).await {
                Some(Ok(())) => Some("pre_backup succeeded".to_string()),
                Some(Err(e)) => return Err(format!("pre_backup failed: {e}")),
                None => Some("pre_backup not run: no healthy instance of the app here".into()),
            },
        };
        let data = self.app_data(app);
        if !data.is_dir() {
            return Err(format!(
                "app {app} has no data directory on this node ({})",
                data.display()
            ));
        }
        let packed = self.scratch("tar.gz")?;
        let sealed = self.scratch("part")?;
        let _scratch = Scratch(vec![packed.clone(), sealed.clone()]);
        let (plain_size, sha256, size) = {
            let (packed, sealed) = (packed.clone(), sealed.clone());
            let recipient = *recipient;
            let context = part_context(object);
            tokio::task::spawn_blocking(move || {
                seal_data(&data, &packed, &sealed, &recipient, &context)
            })
            .await
            .map_err(|e| format!("packing stopped: {e}"))??
        };
        let store = self
            .js
            .get_object_store(subjects::BACKUPS_STORE)
            .await
            .map_err(|e| format!("opening the backups store: {e}"))?;
        let mut file = tokio::fs::File::open(&sealed)
            .await
            .map_err(|e| format!("reading {}: {e}", sealed.display()))?;
        store
            .put(object, &mut file)
            .await
            .map_err(|e| format!("storing {object}: {e}"))?;
        Ok(BackupAnswer::Made {
            sha256,
            size,
            plain_size,
            hook,
        })
    }

    async fn restore_part(
        &self,
        app: &str,
        object: &str,
        sha256: &str,
        key: &[u8],
    ) -> Result<BackupAnswer, String> {
        if !reef_artifact::is_valid_digest(sha256) {
            return Err(format!("{sha256:?} is not a sha256 digest"));
        }
        let fetched = self.scratch("part")?;
        let staging = self
            .app_data(app)
            .with_file_name(format!("data.restoring-{}", uuid::Uuid::now_v7()));
        let mut scratch = Scratch(vec![fetched.clone(), staging.clone()]);
        let store = self
            .js
            .get_object_store(subjects::BACKUPS_STORE)
            .await
            .map_err(|e| format!("opening the backups store: {e}"))?;
        let mut stored = store
            .get(object)
            .await
            .map_err(|e| format!("fetching {object}: {e}"))?;
        let mut file = tokio::fs::File::create(&fetched)
            .await
            .map_err(|e| format!("creating {}: {e}", fetched.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stored
                .read(&mut buf)
                .await
                .map_err(|e| format!("fetching {object}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .await
                .map_err(|e| format!("writing {}: {e}", fetched.display()))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("writing {}: {e}", fetched.display()))?;
        drop(file);
        let found = hex(&hasher.finalize());
        if found != sha256 {
            return Err(format!(
                "{object} is corrupted in the store: its sha256 is {found}, the backup recorded {sha256}"
            ));
        }
        let content_key =
            reef_secrets::backup::open_for_node(&self.node_key, &part_context(object), key)
                .map_err(|e| format!("the key for {object}: {e}"))?;
        let unpacked = {
            let (fetched, staging) = (fetched.clone(), staging.clone());
            let context = part_context(object);
            tokio::task::spawn_blocking(move || {
                open_data(&fetched, &staging, &content_key, &context)
            })
            .await
            .map_err(|e| format!("unpacking stopped: {e}"))??
        };
        // Checked whole: now the instances step aside and the data is swapped.
        let mut resumes = Vec::new();
        for instance in self.local_instances(app) {
            if let Some(resume) = self.yield_instance(instance).await {
                resumes.push(resume);
            }
        }
        let swapped = swap_in(&self.app_data(app), &staging);
        let instances = resumes.len() as u32;
        for resume in resumes {
            let _ = resume.send(true);
        }
        swapped?;
        scratch.0.retain(|p| p != &staging);
        Ok(BackupAnswer::Restored {
            files: unpacked,
            instances,
        })
    }
}

/// Packs `data` into `packed`, then encrypts that into `sealed`; returns
/// the packed size, and the sealed part's sha256 and size.
fn seal_data(
    data: &Path,
    packed: &Path,
    sealed: &Path,
    recipient: &[u8; 32],
    context: &str,
) -> Result<(u64, String, u64), String> {
    let out =
        std::fs::File::create(packed).map_err(|e| format!("creating {}: {e}", packed.display()))?;
    let mut out = BufWriter::new(out);
    reef_artifact::pack_dir(data, &mut out)
        .map_err(|e| format!("packing {}: {e}", data.display()))?;
    out.into_inner()
        .map_err(|e| format!("writing {}: {e}", packed.display()))?
        .sync_all()
        .map_err(|e| format!("writing {}: {e}", packed.display()))?;
    let input =
        std::fs::File::open(packed).map_err(|e| format!("reading {}: {e}", packed.display()))?;
    let out =
        std::fs::File::create(sealed).map_err(|e| format!("creating {}: {e}", sealed.display()))?;
    let mut hashing = Hashing {
        inner: BufWriter::new(out),
        hasher: Sha256::new(),
        written: 0,
    };
    let plain =
        reef_secrets::backup::encrypt(recipient, context, BufReader::new(input), &mut hashing)
            .map_err(|e| format!("encrypting: {e}"))?;
    let Hashing {
        inner,
        hasher,
        written,
    } = hashing;
    inner
        .into_inner()
        .map_err(|e| format!("writing {}: {e}", sealed.display()))?;
    Ok((plain, hex(&hasher.finalize()), written))
}

/// Decrypts the part at `fetched` and unpacks it into `staging` (made by the unpacking),
/// with the archive rules for untrusted input. Returns the files written.
fn open_data(fetched: &Path, staging: &Path, key: &[u8; 32], context: &str) -> Result<u64, String> {
    let packed = fetched.with_extension("tar.gz");
    let _scratch = Scratch(vec![packed.clone()]);
    {
        let mut input = BufReader::new(
            std::fs::File::open(fetched)
                .map_err(|e| format!("reading {}: {e}", fetched.display()))?,
        );
        reef_secrets::backup::read_header(&mut input).map_err(|e| format!("the part: {e}"))?;
        let out = std::fs::File::create(&packed)
            .map_err(|e| format!("creating {}: {e}", packed.display()))?;
        let mut out = BufWriter::new(out);
        reef_secrets::backup::decrypt(key, context, input, &mut out)
            .map_err(|e| format!("the part: {e}"))?;
        out.into_inner()
            .map_err(|e| format!("writing {}: {e}", packed.display()))?;
    }
    let input =
        std::fs::File::open(&packed).map_err(|e| format!("reading {}: {e}", packed.display()))?;
    let unpacked = reef_artifact::unpack(
        BufReader::new(input),
        staging,
        &reef_artifact::Limits::default(),
    )
    .map_err(|e| format!("unpacking: {e}"))?;
    Ok(unpacked.files)
}

/// Puts `staging` where `data` is, keeping the old directory until the new
/// one is in place (and putting it back if that fails).
fn swap_in(data: &Path, staging: &Path) -> Result<(), String> {
    let old = data.with_file_name(format!("data.replaced-{}", uuid::Uuid::now_v7()));
    let had_data = data.exists();
    if had_data {
        std::fs::rename(data, &old).map_err(|e| format!("moving {} aside: {e}", data.display()))?;
    }
    if let Err(e) = std::fs::rename(staging, data) {
        if had_data {
            let _ = std::fs::rename(&old, data);
        }
        return Err(format!("putting the restored data in place: {e}"));
    }
    if had_data {
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(path = %old.display(), error = %e, "the replaced data directory was not removed");
        }
    }
    Ok(())
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
