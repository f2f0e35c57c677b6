//! Getting a release ready on this node: the artifact is downloaded from the
//! object store into `<data-dir>/artifacts/<digest>.tar.gz` (through a
//! `.partial` file), its sha256 checked, and unpacked with the untrusted-archive
//! rules of `reef-artifact` into `<data-dir>/apps/<app>/releases/<version>-<digest>`.
//! Both steps are skipped when their result is already there. `pre_start`
//! runs here too.

use super::error::{HookError, PrepareError};
use crate::Agent;
use reef_proto::app::Release;
use reef_proto::subjects;
use reef_proto::InstanceId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Longest a hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a hook's output may take to drain after it exited.
const LOG_DRAIN: Duration = Duration::from_secs(10);
/// Releases of one app kept on disk.
const KEEP_RELEASES: usize = 5;
/// A download that brings no data for this long has stalled, and ends.
const DOWNLOAD_STALL: Duration = Duration::from_secs(30);

/// The unpacked release directory, ready to run.
pub(crate) async fn release_dir(agent: &Agent, release: &Release) -> Result<PathBuf, PrepareError> {
    // One unpacking per app at a time (they share its releases directory);
    // other apps' deploys go on beside it.
    let _app = agent
        .services
        .preparing
        .lock(&format!("app/{}", release.app))
        .await;
    let digest = &release.artifact.digest;
    let releases = agent
        .config
        .data_dir
        .join("apps")
        .join(&release.app)
        .join("releases");
    let dir = releases.join(format!(
        "{}-{}",
        release.version,
        &digest[..12.min(digest.len())]
    ));
    if dir.is_dir() {
        return Ok(dir);
    }
    let tarball = {
        // One download per artifact at a time (they share its cache file).
        let _artifact = agent
            .services
            .preparing
            .lock(&format!("artifact/{digest}"))
            .await;
        fetch(agent, release).await?
    };
    tokio::fs::create_dir_all(&releases)
        .await
        .map_err(|source| PrepareError::Io {
            action: "creating",
            path: releases.clone(),
            source,
        })?;
    let target = dir.clone();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&tarball).map_err(|source| PrepareError::Io {
            action: "opening",
            path: tarball.clone(),
            source,
        })?;
        reef_artifact::unpack(
            std::io::BufReader::new(file),
            &target,
            &reef_artifact::Limits::default(),
        )
        .map_err(PrepareError::Unpack)
    })
    .await
    .map_err(PrepareError::Task)??;
    prune_releases(&releases, &dir);
    Ok(dir)
}

/// Downloads the artifact (unless cached) and checks its digest.
async fn fetch(agent: &Agent, release: &Release) -> Result<PathBuf, PrepareError> {
    let digest = &release.artifact.digest;
    if !reef_artifact::is_valid_digest(digest) {
        return Err(PrepareError::BadDigest {
            digest: digest.clone(),
        });
    }
    let cache = agent.config.data_dir.join("artifacts");
    tokio::fs::create_dir_all(&cache)
        .await
        .map_err(|source| PrepareError::Io {
            action: "creating",
            path: cache.clone(),
            source,
        })?;
    let path = cache.join(format!("{digest}.tar.gz"));
    if path.is_file() {
        return Ok(path);
    }
    let partial = cache.join(format!("{digest}.tar.gz.partial"));
    let download = |source: Box<dyn std::error::Error + Send + Sync>| PrepareError::Download {
        digest: digest.clone(),
        source,
    };
    let store = agent
        .js
        .get_object_store(subjects::ARTIFACTS_STORE)
        .await
        .map_err(PrepareError::Store)?;
    let mut object = store.get(digest).await.map_err(|e| download(e.into()))?;
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|source| PrepareError::Io {
            action: "creating",
            path: partial.clone(),
            source,
        })?;
    let copied = match copy_until_stalled(&mut object, &mut file, DOWNLOAD_STALL).await {
        Ok(copied) => copied,
        Err(e) => {
            drop(file);
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(match e {
                Copy::Stalled => PrepareError::Stalled {
                    digest: digest.clone(),
                    stalled: DOWNLOAD_STALL,
                },
                Copy::Read(e) => download(e.into()),
                Copy::Write(source) => PrepareError::Io {
                    action: "writing",
                    path: partial.clone(),
                    source,
                },
            });
        }
    };
    file.flush().await.map_err(|source| PrepareError::Io {
        action: "writing",
        path: partial.clone(),
        source,
    })?;
    drop(file);
    let check = partial.clone();
    let actual = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&check).and_then(reef_artifact::sha256_hex)
    })
    .await
    .map_err(PrepareError::Task)?
    .map_err(|source| PrepareError::Io {
        action: "hashing",
        path: partial.clone(),
        source,
    })?;
    if actual != *digest || copied != release.artifact.size {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(PrepareError::Mismatch {
            digest: digest.clone(),
            bytes: copied,
            sha256: actual,
        });
    }
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|source| PrepareError::Io {
            action: "storing",
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// Why a copy ended early.
#[derive(Debug)]
enum Copy {
    /// No data came for the stall limit.
    Stalled,
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies `from` to `to` to its end; a read that brings nothing for
/// `stall` ends the copy (a download that has stopped moving, whatever
/// its size, has a deadline). Returns how many bytes were copied.
async fn copy_until_stalled(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    stall: Duration,
) -> Result<u64, Copy> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match tokio::time::timeout(stall, from.read(&mut buf)).await {
            Err(_) => return Err(Copy::Stalled),
            Ok(Err(e)) => return Err(Copy::Read(e)),
            Ok(Ok(0)) => return Ok(copied),
            Ok(Ok(n)) => n,
        };
        to.write_all(&buf[..n]).await.map_err(Copy::Write)?;
        copied += n as u64;
    }
}

/// Removes all but the newest releases of an app (never `keep`).
fn prune_releases(releases: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(releases) else {
        return;
    };
    let mut dirs: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p != keep)
        .filter_map(|p| {
            let version = p.file_name()?.to_str()?.split('-').next()?.parse().ok()?;
            Some((version, p))
        })
        .collect();
    dirs.sort();
    let excess = (dirs.len() + 1).saturating_sub(KEEP_RELEASES);
    for (_, dir) in dirs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Runs a hook (`pre_start`, `post_deploy`) in the release directory with the
/// app's environment; its output goes to the instance's logs.
/// Where an app's processes run: its release (read-only, the working
/// directory), its data directory (writable) and its environment.
pub(crate) struct Place<'a> {
    pub release: &'a Path,
    pub data: &'a Path,
    /// The instance's own writable directory, when it has one (a release's).
    pub scratch: Option<&'a Path>,
    pub env: &'a BTreeMap<String, String>,
}

pub(crate) async fn hook(
    agent: &Agent,
    name: &'static str,
    command: &str,
    place: &Place<'_>,
    app: &str,
    instance: InstanceId,
) -> Result<(), HookError> {
    let Place {
        release: dir,
        data: data_dir,
        scratch,
        env,
    } = *place;
    let writable: Vec<_> = std::iter::once(data_dir)
        .chain(scratch)
        .map(Path::to_path_buf)
        .collect();
    let spec_limits = crate::sandbox::Limits {
        memory_bytes: agent
            .instances
            .get(instance)
            .map_or(reef_proto::job::DEFAULT_MEMORY_BYTES, |r| {
                r.assignment.release.spec.resources.memory_bytes
            }),
        cpu_max_millis: None,
        cpu_weight_millis: 1000,
        pids_max: agent.sandbox.settings().pids_max,
    };
    let launch = crate::sandbox::Launch {
        group: format!("{instance}.{name}"),
        identity: crate::sandbox::Identity::App(app),
        limits: spec_limits,
        argv: vec!["sh".into(), "-c".into(), command.into()],
        workdir: dir.to_path_buf(),
        writable: writable.clone(),
        owned: writable,
        readonly: vec![dir.to_path_buf()],
        network: true,
        gpus: &[],
        files: Vec::new(),
        stdin: false,
    };
    let (mut child, mut tree) = agent
        .sandbox
        .spawn(launch, env)
        .await
        .map_err(|source| HookError::Start { name, source })?;
    let shippers = crate::logs::ship_output(
        &agent.js,
        &mut child,
        subjects::instance_logs(agent.node, app, instance),
    );
    let status = match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
        Ok(status) => status.map_err(|source| HookError::Wait { name, source }),
        Err(_) => {
            tree.kill();
            let _ = child.wait().await;
            Err(HookError::Timeout {
                name,
                limit: HOOK_TIMEOUT,
            })
        }
    };
    // Whatever it left running goes with it.
    agent.sandbox.end(&mut tree).await;
    let status = status?;
    crate::logs::finish(shippers, LOG_DRAIN).await;
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            name,
            command: command.to_string(),
            code: crate::process::exit_code(status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_download_that_stops_moving_ends_and_one_that_moves_completes() {
        let (mut tx, mut rx) = tokio::io::duplex(1024);
        let mut out = Vec::new();
        tx.write_all(b"first bytes").await.expect("write");
        let stalled = copy_until_stalled(&mut rx, &mut out, Duration::from_millis(100)).await;
        assert!(matches!(stalled, Err(Copy::Stalled)), "{stalled:?}");
        assert_eq!(
            out, b"first bytes",
            "what came is kept until the caller drops it"
        );

        let (mut tx, mut rx) = tokio::io::duplex(16);
        let writer = tokio::spawn(async move {
            for _ in 0..10 {
                tx.write_all(b"0123456789").await.expect("write");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let mut out = Vec::new();
        let copied = copy_until_stalled(&mut rx, &mut out, Duration::from_secs(5))
            .await
            .expect("a slow but moving download completes");
        writer.await.expect("writer");
        assert_eq!(copied, 100);
        assert_eq!(out.len(), 100);
    }
}
