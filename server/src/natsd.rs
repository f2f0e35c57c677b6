//! The nats-server child of `reef server` and `reef dev`: started with the
//! configuration reef wrote, waited for until it listens, restarted with a
//! growing delay when it exits on its own, and stopped (SIGTERM, then
//! SIGKILL after a grace) when asked, at any moment, start-up included.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why a nats-server did not come up.
#[derive(Debug, thiserror::Error)]
pub enum NatsdError {
    /// Its log could not be opened.
    #[error("could not open {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be started.
    #[error("could not start {}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// It exited before it listened.
    #[error("nats-server exited at start ({status}); see its log, {}", log.display())]
    ExitedAtStart { status: String, log: PathBuf },
    /// It did not listen in time.
    #[error("nats-server did not listen on {probe} within {}s; see its log, {}", within.as_secs(), log.display())]
    NotListening {
        probe: SocketAddr,
        within: Duration,
        log: PathBuf,
    },
    /// Its status could not be read.
    #[error("could not wait for nats-server")]
    Wait(#[source] std::io::Error),
    /// It was asked to stop before it listened.
    #[error("stopped while nats-server was starting")]
    Stopped,
    /// The supervising task is gone.
    #[error("the nats-server supervisor ended")]
    Ended,
}

type Outcome = Option<Result<(), Arc<NatsdError>>>;

/// How one nats-server is run.
#[derive(Clone, Debug)]
pub struct Spec {
    pub binary: PathBuf,
    pub config: PathBuf,
    /// Where its log goes (appended to across restarts).
    pub log: PathBuf,
    /// The client address it listens on once it is up.
    pub probe: SocketAddr,
    /// Where the configuration tells it to write its pid.
    pub pid_file: PathBuf,
}

/// How long a server may take to listen after it starts.
const START_WITHIN: Duration = Duration::from_secs(20);
/// How long a stopped server has to write its state out before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// A run at least this long resets the restart delay.
const STEADY: Duration = Duration::from_secs(60);

/// The delay before the next start, after `failures` runs in a row that
/// ended before [`STEADY`]: 250 ms, doubling, at most 10 s.
pub fn restart_delay(failures: u32) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << failures.min(6));
    Duration::from_millis(ms.min(10_000))
}

/// A supervised nats-server.
pub struct Supervisor {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    up: watch::Receiver<Outcome>,
}

impl Supervisor {
    /// Starts supervising; the first start's outcome is [`Supervisor::ready`]'s.
    pub fn start(spec: Spec) -> Supervisor {
        let stop = CancellationToken::new();
        let (up_tx, up) = watch::channel(None);
        let task = tokio::spawn(supervise(spec, stop.clone(), up_tx));
        Supervisor {
            task: Some(task),
            stop,
            up,
        }
    }

    /// Resolves once the first start listens, or with why it did not.
    pub async fn ready(&mut self) -> Result<(), Arc<NatsdError>> {
        let outcome = self
            .up
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Arc::new(NatsdError::Ended))?
            .clone();
        outcome.unwrap_or(Ok(()))
    }

    /// Stops the server (SIGTERM, SIGKILL after a grace) and waits for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Dropped without [`Supervisor::stop`] (an error on the way), the server
/// is killed outright.
impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn supervise(spec: Spec, stop: CancellationToken, up: watch::Sender<Outcome>) {
    let mut failures = 0u32;
    let mut first = true;
    // A server an earlier run left (that run was killed outright, and
    // nothing stopped its child) holds the ports and the store.
    stop_leftover(&spec).await;
    loop {
        let started = tokio::time::Instant::now();
        let mut child = match spawn(&spec) {
            Ok(child) => child,
            Err(e) => {
                if first {
                    let _ = up.send(Some(Err(Arc::new(e))));
                    return;
                }
                tracing::error!(error = %e, "could not start nats-server again");
                failures += 1;
                if wait_or_stop(&stop, restart_delay(failures)).await {
                    return;
                }
                continue;
            }
        };
        let listening = tokio::select! {
            result = listening(&spec, &mut child) => result,
            _ = stop.cancelled() => {
                halt(&mut child).await;
                let _ = up.send(Some(Err(Arc::new(NatsdError::Stopped))));
                return;
            }
        };
        if let Err(e) = listening {
            halt(&mut child).await;
            if first {
                let _ = up.send(Some(Err(Arc::new(e))));
                return;
            }
            tracing::error!(error = %e, "nats-server did not come back");
        } else {
            if first {
                first = false;
                let _ = up.send(Some(Ok(())));
            } else {
                tracing::info!("nats-server is back");
            }
            tokio::select! {
                status = child.wait() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    tracing::warn!("nats-server exited ({status}); see {}", spec.log.display());
                }
                _ = stop.cancelled() => {
                    halt(&mut child).await;
                    return;
                }
            }
        }
        failures = match started.elapsed() >= STEADY {
            true => 0,
            false => failures + 1,
        };
        let delay = restart_delay(failures);
        tracing::info!("starting nats-server again in {delay:?}");
        if wait_or_stop(&stop, delay).await {
            return;
        }
    }
}

/// Sleeps for `delay`; true if stopped meanwhile.
async fn wait_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop.cancelled() => true,
    }
}

fn spawn(spec: &Spec) -> Result<Child, NatsdError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|source| NatsdError::Log {
            path: spec.log.clone(),
            source,
        })?;
    Command::new(&spec.binary)
        .arg("-c")
        .arg(&spec.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Should this process die without stopping it, it goes too.
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NatsdError::Spawn {
            binary: spec.binary.clone(),
            source,
        })
}

/// Waits until the server accepts connections on its client port.
async fn listening(spec: &Spec, child: &mut Child) -> Result<(), NatsdError> {
    let deadline = tokio::time::Instant::now() + START_WITHIN;
    loop {
        if tokio::net::TcpStream::connect(spec.probe).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait().map_err(NatsdError::Wait)? {
            return Err(NatsdError::ExitedAtStart {
                status: status.to_string(),
                log: spec.log.clone(),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(NatsdError::NotListening {
                probe: spec.probe,
                within: START_WITHIN,
                log: spec.log.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a nats-server still running with this configuration from an
/// earlier run, found by the pid file it wrote.
async fn stop_leftover(spec: &Spec) {
    let Some(pid) = std::fs::read_to_string(&spec.pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 1)
    else {
        return;
    };
    let ours = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let config = spec.config.as_os_str().as_encoded_bytes();
            cmdline.split(|b| *b == 0).any(|arg| arg == config)
        })
    };
    if !ours(pid) {
        return;
    }
    tracing::warn!(pid, "stopping the nats-server an earlier run left running");
    let target = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while ours(pid) && !zombie(pid) {
        if tokio::time::Instant::now() > deadline {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `pid` has exited and waits for its parent to reap it.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    })
}

/// SIGTERM, then SIGKILL if it has not exited within the grace.
async fn halt(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("nats-server ignored SIGTERM for {STOP_GRACE:?}; killing it");
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::restart_delay;
    use std::time::Duration;

    #[test]
    fn the_restart_delay_doubles_up_to_ten_seconds() {
        assert_eq!(restart_delay(0), Duration::from_millis(250));
        assert_eq!(restart_delay(1), Duration::from_millis(500));
        assert_eq!(restart_delay(3), Duration::from_secs(2));
        assert_eq!(restart_delay(6), Duration::from_secs(10));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(10));
    }
}
