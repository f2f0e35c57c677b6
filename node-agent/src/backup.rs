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
use reef_proto::services::ServiceKind;
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
        let (app, object) = {
            let (app, object) = request.target();
            (app.to_string(), object.to_string())
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
            BackupRequest::MakeDatabase {
                app,
                database,
                version,
                port,
                object,
                recipient,
            } => {
                let postgres = Postgres::here(self, &app, &database, version, port);
                match postgres {
                    Ok(postgres) => self.dump(&postgres, &object, &recipient).await,
                    Err(e) => Err(e),
                }
            }
            BackupRequest::RestoreDatabase {
                app,
                database,
                version,
                port,
                object,
                sha256,
                key,
            } => {
                let postgres = Postgres::here(self, &app, &database, version, port);
                match postgres {
                    Ok(postgres) => self.restore_dump(&postgres, &object, &sha256, &key).await,
                    Err(e) => Err(e),
                }
            }
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
        {
            let packed = packed.clone();
            tokio::task::spawn_blocking(move || pack(&data, &packed))
                .await
                .map_err(|e| format!("packing stopped: {e}"))??;
        }
        let (plain_size, sha256, size) = seal(&packed, &sealed, recipient, object).await?;
        self.store_part(object, &sealed).await?;
        Ok(BackupAnswer::Made {
            sha256,
            size,
            plain_size,
            hook,
        })
    }

    /// Stores the sealed part at `sealed` as `object`.
    async fn store_part(&self, object: &str, sealed: &Path) -> Result<(), String> {
        let store = self
            .js
            .get_object_store(subjects::BACKUPS_STORE)
            .await
            .map_err(|e| format!("opening the backups store: {e}"))?;
        let mut file = tokio::fs::File::open(sealed)
            .await
            .map_err(|e| format!("reading {}: {e}", sealed.display()))?;
        store
            .put(object, &mut file)
            .await
            .map_err(|e| format!("storing {object}: {e}"))?;
        Ok(())
    }

    /// Fetches `object` into `into`, checking it hashes to `sha256`, then
    /// decrypts it into `plain` with the content key sealed to this node.
    async fn fetch_part(
        &self,
        object: &str,
        sha256: &str,
        key: &[u8],
        into: &Path,
        plain: &Path,
    ) -> Result<(), String> {
        if !reef_artifact::is_valid_digest(sha256) {
            return Err(format!("{sha256:?} is not a sha256 digest"));
        }
        let store = self
            .js
            .get_object_store(subjects::BACKUPS_STORE)
            .await
            .map_err(|e| format!("opening the backups store: {e}"))?;
        let mut stored = store
            .get(object)
            .await
            .map_err(|e| format!("fetching {object}: {e}"))?;
        let mut file = tokio::fs::File::create(into)
            .await
            .map_err(|e| format!("creating {}: {e}", into.display()))?;
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
                .map_err(|e| format!("writing {}: {e}", into.display()))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("writing {}: {e}", into.display()))?;
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
        let (into, plain) = (into.to_path_buf(), plain.to_path_buf());
        let context = part_context(object);
        tokio::task::spawn_blocking(move || open(&into, &plain, &content_key, &context))
            .await
            .map_err(|e| format!("decrypting stopped: {e}"))?
    }

    async fn restore_part(
        &self,
        app: &str,
        object: &str,
        sha256: &str,
        key: &[u8],
    ) -> Result<BackupAnswer, String> {
        let fetched = self.scratch("part")?;
        let packed = self.scratch("tar.gz")?;
        let staging = self
            .app_data(app)
            .with_file_name(format!("data.restoring-{}", uuid::Uuid::now_v7()));
        let mut scratch = Scratch(vec![fetched.clone(), packed.clone(), staging.clone()]);
        self.fetch_part(object, sha256, key, &fetched, &packed)
            .await?;
        let unpacked = {
            let (packed, staging) = (packed.clone(), staging.clone());
            tokio::task::spawn_blocking(move || unpack(&packed, &staging))
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

/// An app's managed Postgres on this node, as a backup reaches it: its
/// binaries, and its unix socket as the superuser.
struct Postgres {
    app: String,
    database: String,
    bin: PathBuf,
    socket: PathBuf,
    superuser: &'static str,
    port: u16,
}

impl Postgres {
    /// Checks what the leader asked for against what is on this node.
    fn here(
        agent: &Agent,
        app: &str,
        database: &str,
        version: u32,
        port: u16,
    ) -> Result<Self, String> {
        reef_proto::services::validate_database_name(database)?;
        if !ServiceKind::Postgres.versions().contains(&version) || port == 0 {
            return Err(format!(
                "PostgreSQL {version} on port {port} is not one reef runs"
            ));
        }
        let (socket, superuser) = crate::services::postgres_socket(&agent.config.data_dir, app);
        if !socket.is_dir() {
            return Err(format!(
                "app {app} has no Postgres on this node ({} is missing)",
                socket.display()
            ));
        }
        Ok(Self {
            app: app.to_string(),
            database: database.to_string(),
            bin: PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")),
            socket,
            superuser,
            port,
        })
    }

    /// `program` with the connection arguments (over the socket, as the
    /// superuser, to the database).
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.bin.join(program));
        command
            .arg("--host")
            .arg(&self.socket)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--username")
            .arg(self.superuser)
            .arg("--no-password")
            .arg("--dbname")
            .arg(&self.database)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// Runs `command` to its end; its standard error, cut short, says why it failed.
async fn run(mut command: tokio::process::Command, what: &str) -> Result<(), String> {
    let out = command
        .output()
        .await
        .map_err(|e| format!("{what} could not start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr.chars().take(2000).collect();
    Err(format!("{what} failed ({}): {}", out.status, tail.trim()))
}

impl Agent {
    /// Dumps one database (`pg_dump -Fc`, consistent as one snapshot) and
    /// stores it encrypted as `object`.
    async fn dump(
        &self,
        postgres: &Postgres,
        object: &str,
        recipient: &[u8; 32],
    ) -> Result<BackupAnswer, String> {
        let dumped = self.scratch("dump")?;
        let sealed = self.scratch("part")?;
        let _scratch = Scratch(vec![dumped.clone(), sealed.clone()]);
        let mut command = postgres.command("pg_dump");
        command.arg("--format=custom").arg("--file").arg(&dumped);
        run(command, "pg_dump").await?;
        let (plain_size, sha256, size) = seal(&dumped, &sealed, recipient, object).await?;
        self.store_part(object, &sealed).await?;
        tracing::info!(app = %postgres.app, database = %postgres.database, size, "database dumped");
        Ok(BackupAnswer::Made {
            sha256,
            size,
            plain_size,
            hook: None,
        })
    }

    /// Puts a database back from its dump in one transaction: its objects
    /// are dropped and made again, all or nothing.
    async fn restore_dump(
        &self,
        postgres: &Postgres,
        object: &str,
        sha256: &str,
        key: &[u8],
    ) -> Result<BackupAnswer, String> {
        let fetched = self.scratch("part")?;
        let dumped = self.scratch("dump")?;
        let _scratch = Scratch(vec![fetched.clone(), dumped.clone()]);
        self.fetch_part(object, sha256, key, &fetched, &dumped)
            .await?;
        let mut command = postgres.command("pg_restore");
        command
            .arg("--clean")
            .arg("--if-exists")
            .arg("--single-transaction")
            .arg("--exit-on-error")
            .arg(&dumped);
        run(command, "pg_restore").await?;
        tracing::info!(app = %postgres.app, database = %postgres.database, "database restored");
        Ok(BackupAnswer::RestoredDatabase {
            database: postgres.database.clone(),
        })
    }
}

/// Packs `data` into `packed` with the release archive rules.
fn pack(data: &Path, packed: &Path) -> Result<(), String> {
    let out =
        std::fs::File::create(packed).map_err(|e| format!("creating {}: {e}", packed.display()))?;
    let mut out = BufWriter::new(out);
    reef_artifact::pack_dir(data, &mut out)
        .map_err(|e| format!("packing {}: {e}", data.display()))?;
    out.into_inner()
        .map_err(|e| format!("writing {}: {e}", packed.display()))?
        .sync_all()
        .map_err(|e| format!("writing {}: {e}", packed.display()))
}

/// Encrypts `plain` into `sealed` as part `object` for `recipient`; returns
/// the plain size, and the sealed part's sha256 and size.
async fn seal(
    plain: &Path,
    sealed: &Path,
    recipient: &[u8; 32],
    object: &str,
) -> Result<(u64, String, u64), String> {
    let (plain, sealed) = (plain.to_path_buf(), sealed.to_path_buf());
    let (recipient, context) = (*recipient, part_context(object));
    tokio::task::spawn_blocking(move || seal_file(&plain, &sealed, &recipient, &context))
        .await
        .map_err(|e| format!("encrypting stopped: {e}"))?
}

fn seal_file(
    plain: &Path,
    sealed: &Path,
    recipient: &[u8; 32],
    context: &str,
) -> Result<(u64, String, u64), String> {
    let input =
        std::fs::File::open(plain).map_err(|e| format!("reading {}: {e}", plain.display()))?;
    let out =
        std::fs::File::create(sealed).map_err(|e| format!("creating {}: {e}", sealed.display()))?;
    let mut hashing = Hashing {
        inner: BufWriter::new(out),
        hasher: Sha256::new(),
        written: 0,
    };
    let read =
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
    Ok((read, hex(&hasher.finalize()), written))
}

/// Decrypts the part at `fetched` into `plain`, every frame checked.
fn open(fetched: &Path, plain: &Path, key: &[u8; 32], context: &str) -> Result<(), String> {
    let mut input = BufReader::new(
        std::fs::File::open(fetched).map_err(|e| format!("reading {}: {e}", fetched.display()))?,
    );
    reef_secrets::backup::read_header(&mut input).map_err(|e| format!("the part: {e}"))?;
    let out =
        std::fs::File::create(plain).map_err(|e| format!("creating {}: {e}", plain.display()))?;
    let mut out = BufWriter::new(out);
    reef_secrets::backup::decrypt(key, context, input, &mut out)
        .map_err(|e| format!("the part: {e}"))?;
    out.into_inner()
        .map_err(|e| format!("writing {}: {e}", plain.display()))?;
    Ok(())
}

/// Unpacks `packed` into `staging` (made by the unpacking), with the
/// archive rules for untrusted input. Returns the files written.
fn unpack(packed: &Path, staging: &Path) -> Result<u64, String> {
    let input =
        std::fs::File::open(packed).map_err(|e| format!("reading {}: {e}", packed.display()))?;
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
