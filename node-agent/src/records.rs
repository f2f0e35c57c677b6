//! The agent's durable memory of what it runs: one JSON file per allocation
//! (job runs under `<data-dir>/allocs/`, app instances under
//! `<data-dir>/instances/`), replaced atomically (write, fsync, rename, fsync
//! the directory) on every state change. An assignment is acknowledged only
//! after its record is on disk, and after a restart these files say what was
//! running, what finished, and what is still unreported.

use reef_proto::agent::{AllocEvent, Assignment};
use reef_proto::alloc::AllocState;
use reef_proto::{now_ms, AllocId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How hard a write must be before it returns.
///
/// `Synced` survives power loss (fsync of the file and its directory).
/// `Written` survives the agent being killed, since the page cache outlives
/// the process; it is enough for changes that matter only while the machine
/// stays up (the process group of a running job, which a power loss ends
/// anyway) or that are already safe elsewhere (a terminal state reported to
/// JetStream, whose replay after a power loss the coordinator ignores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Synced,
    Written,
}

/// A record kept by [`Records`]: identified by its id (an allocation's or
/// an instance's), with a sequence number per state change and the highest
/// one reported.
pub trait Record: Serialize + serde::de::DeserializeOwned + Clone + Send + 'static {
    /// What identifies a record; also its file name.
    type Id: Copy + Eq + std::hash::Hash + std::fmt::Display + Send + 'static;
    fn id(&self) -> Self::Id;
    fn seq(&self) -> u32;
    fn reported_seq(&self) -> u32;
    fn set_reported_seq(&mut self, seq: u32);
    fn is_terminal(&self) -> bool;
    fn updated_at_ms(&self) -> u64;
    fn set_updated_at_ms(&mut self, at: u64);
    /// The subject its events go on (`reef.events.<node>.<id>`).
    fn event_subject(&self) -> String;
    /// The event that reports the record's current state.
    fn event_payload(&self) -> Result<bytes::Bytes, reef_proto::EncodeError>;
}

/// What the agent knows of one allocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalAlloc {
    pub assignment: Assignment,
    pub state: AllocState,
    /// Sequence number of `state`; bumped on every change.
    pub seq: u32,
    /// Highest sequence number the coordinator has been sent (and JetStream acknowledged).
    pub reported_seq: u32,
    /// Process group of the running job, with its start time to recognise it later.
    pub pgid: Option<u32>,
    pub pgid_start_time: Option<u64>,
    pub output_lines: Option<(u64, u64)>,
    /// What it used, once it ended.
    #[serde(default)]
    pub usage: Option<reef_proto::alloc::Usage>,
    /// What it produced, once it exited.
    #[serde(default)]
    pub result: Option<reef_proto::job::JobResult>,
    pub updated_at_ms: u64,
}

impl LocalAlloc {
    /// Moves to `state` if the state machine allows it, bumping the sequence
    /// number; false (and no change) otherwise.
    pub fn advance(&mut self, state: AllocState) -> bool {
        let moved = self.state.advance(state);
        if moved {
            self.seq += 1;
        }
        moved
    }

    pub fn event(&self) -> AllocEvent {
        AllocEvent {
            alloc: self.assignment.alloc,
            job: self.assignment.job,
            node: self.assignment.node,
            seq: self.seq,
            state: self.state.clone(),
            at_ms: self.updated_at_ms,
            output_lines: self.output_lines,
            usage: self.usage,
            result: self.result.clone(),
        }
    }
}

impl Record for LocalAlloc {
    type Id = AllocId;
    fn id(&self) -> AllocId {
        self.assignment.alloc
    }
    fn seq(&self) -> u32 {
        self.seq
    }
    fn reported_seq(&self) -> u32 {
        self.reported_seq
    }
    fn set_reported_seq(&mut self, seq: u32) {
        self.reported_seq = seq;
    }
    fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
    fn updated_at_ms(&self) -> u64 {
        self.updated_at_ms
    }
    fn set_updated_at_ms(&mut self, at: u64) {
        self.updated_at_ms = at;
    }
    fn event_subject(&self) -> String {
        reef_proto::subjects::event(self.assignment.node, self.assignment.alloc)
    }
    fn event_payload(&self) -> Result<bytes::Bytes, reef_proto::EncodeError> {
        reef_proto::encode(&self.event())
    }
}

/// Durable records of one kind, in memory and on disk.
#[derive(Clone)]
pub struct Records<R: Record> {
    dir: PathBuf,
    inner: Arc<Mutex<HashMap<R::Id, R>>>,
}

impl<R: Record> Records<R> {
    /// Opens `<data_dir>/<kind>`, loading every record in it. Unreadable
    /// records are moved aside (`.corrupt`) and reported in the log.
    pub fn open(data_dir: &Path, kind: &str) -> std::io::Result<Self> {
        let dir = data_dir.join(kind);
        std::fs::create_dir_all(&dir)?;
        let mut map = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<R>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => {
                    map.insert(record.id(), record);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable allocation record, moved aside");
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                }
            }
        }
        Ok(Self {
            dir,
            inner: Arc::new(Mutex::new(map)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<R::Id, R>> {
        // A poisoned lock only means another task panicked mid-update of the
        // in-memory map; the files stay the truth, so carry on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: R::Id) -> Option<R> {
        self.lock().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<R> {
        self.lock().values().cloned().collect()
    }

    /// Records with a state change the coordinator has not acknowledged yet.
    pub fn unreported(&self) -> Vec<R> {
        self.lock()
            .values()
            .filter(|r| r.reported_seq() < r.seq())
            .cloned()
            .collect()
    }

    pub fn live_count(&self) -> usize {
        self.lock().values().filter(|r| !r.is_terminal()).count()
    }

    /// Stores a new record, synced. Returns false (and writes nothing) if a
    /// record with its id is already known: a redelivery.
    pub async fn accept(&self, record: R) -> std::io::Result<bool> {
        let id = record.id();
        if self.lock().contains_key(&id) {
            return Ok(false);
        }
        self.save(&record, Durability::Synced).await?;
        self.lock().entry(id).or_insert(record);
        Ok(true)
    }

    /// Applies `change` to a record and persists it. Returns the new record.
    pub async fn update(
        &self,
        alloc: R::Id,
        durability: Durability,
        change: impl FnOnce(&mut R),
    ) -> std::io::Result<Option<R>> {
        let updated = {
            let mut map = self.lock();
            let Some(record) = map.get_mut(&alloc) else {
                return Ok(None);
            };
            change(record);
            record.set_updated_at_ms(now_ms());
            record.clone()
        };
        self.save(&updated, durability).await?;
        Ok(Some(updated))
    }

    /// Notes that the coordinator has been sent `seq`.
    pub async fn mark_reported(&self, alloc: R::Id, seq: u32) -> std::io::Result<()> {
        let changed = {
            let mut map = self.lock();
            match map.get_mut(&alloc) {
                Some(r) if r.reported_seq() < seq => {
                    r.set_reported_seq(seq);
                    Some(r.clone())
                }
                _ => None,
            }
        };
        if let Some(record) = changed {
            // Not synced: losing this in a crash only means reporting the
            // same state again, which the coordinator ignores.
            self.save(&record, Durability::Written).await?;
        }
        Ok(())
    }

    /// Forgets terminal, reported records older than `max_age_ms`.
    pub fn prune(&self, max_age_ms: u64) {
        let cutoff = now_ms().saturating_sub(max_age_ms);
        let old: Vec<R::Id> = self
            .lock()
            .values()
            .filter(|r| {
                r.is_terminal() && r.reported_seq() >= r.seq() && r.updated_at_ms() < cutoff
            })
            .map(|r| r.id())
            .collect();
        for id in old {
            let _ = std::fs::remove_file(self.path(id));
            self.lock().remove(&id);
        }
    }

    fn path(&self, alloc: R::Id) -> PathBuf {
        self.dir.join(format!("{alloc}.json"))
    }

    async fn save(&self, record: &R, durability: Durability) -> std::io::Result<()> {
        let path = self.path(record.id());
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let durable = durability == Durability::Synced;
        tokio::task::spawn_blocking(move || write_file(&path, &bytes, durable))
            .await
            .map_err(std::io::Error::other)?
    }
}

impl Records<LocalAlloc> {
    /// Records a new job assignment, synced, directly as `starting`: the
    /// executor starts it at once, and one synced write before the process
    /// exists is what keeps a crash from ever running it twice. (A crash in
    /// the moment between this write and the spawn reports the job `lost`
    /// although it never ran; it is never run twice.) Returns false (and
    /// writes nothing) if the allocation is already known.
    pub async fn accept_assignment(&self, assignment: Assignment) -> std::io::Result<bool> {
        self.accept(LocalAlloc {
            assignment,
            state: AllocState::Starting,
            seq: 1,
            reported_seq: 0,
            pgid: None,
            pgid_start_time: None,
            output_lines: None,
            usage: None,
            result: None,
            updated_at_ms: now_ms(),
        })
        .await
    }

    /// Moves a live record to `state` (a no-op if the state machine forbids it).
    pub async fn transition(
        &self,
        alloc: AllocId,
        state: AllocState,
        durability: Durability,
    ) -> std::io::Result<Option<LocalAlloc>> {
        self.update(alloc, durability, |r| {
            r.advance(state);
        })
        .await
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file(path, bytes, true)
}

/// Replaces `path` atomically; with `durable`, also survives a power loss
/// once this returns. Records hold sealed secrets: only the agent's user
/// may read them (0600).
fn write_file(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash would keep its own mode.
    let _ = std::fs::remove_file(&tmp);
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
