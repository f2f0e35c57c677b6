//! The unprivileged uids sandboxed processes run as, from a block this agent
//! owns: the first half for apps, one stable uid per app (kept in the data
//! dir, so an app's `${data_dir}` stays its own across restarts and
//! releases), the second half for jobs, one per running allocation, handed
//! back when it ends. The group id is the same number.

use super::SandboxError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Where a node's block starts by default: past the uids of people and of
/// the subordinate ranges (`/etc/subuid`) container tools hand out, below 2^31.
pub const DEFAULT_BASE: u32 = 2_000_000_000;
/// Uids in one agent's block.
pub const BLOCK: u32 = 65_536;
/// Blocks the default spreads nodes over.
const BLOCKS: u32 = 2_000;

/// A block of uids: `first..first + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidRange {
    pub first: u32,
    pub count: u32,
}

impl UidRange {
    /// The default block of node `node` (its id's bytes): one of 2,000
    /// blocks from [`DEFAULT_BASE`], so that agents sharing a machine (as
    /// `reef dev` runs them) rarely share uids.
    pub fn for_node(node: &[u8]) -> Self {
        // FNV-1a: stable across builds and platforms.
        let hash = node.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self {
            first: DEFAULT_BASE + (hash % u64::from(BLOCKS)) as u32 * BLOCK,
            count: BLOCK,
        }
    }

    /// Parses `FIRST-LAST` (inclusive), at least 2 uids, none below 1000 or
    /// at the top (`nobody` and `-1`).
    pub fn parse(input: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid uid range {input:?}: expected FIRST-LAST, e.g. 2000000000-2000065535")
        };
        let (first, last) = input.split_once('-').ok_or_else(bad)?;
        let first: u32 = first.trim().parse().map_err(|_| bad())?;
        let last: u32 = last.trim().parse().map_err(|_| bad())?;
        if first < 1000 || last <= first || last >= u32::MAX - 1 {
            return Err(format!(
                "invalid uid range {input:?}: needs at least 2 uids, from 1000 up, below 4294967294"
            ));
        }
        Ok(Self {
            first,
            count: last - first + 1,
        })
    }

    fn apps(&self) -> std::ops::Range<u32> {
        self.first..self.first + self.count / 2
    }

    fn jobs(&self) -> std::ops::Range<u32> {
        self.first + self.count / 2..self.first + self.count
    }

    pub fn last(&self) -> u32 {
        self.first + self.count - 1
    }
}

/// The lowest uid of `range` not in `used`.
pub fn lowest_free(range: std::ops::Range<u32>, used: &BTreeSet<u32>) -> Option<u32> {
    range.into_iter().find(|uid| !used.contains(uid))
}

/// The uids in use on this node.
#[derive(Debug)]
pub struct Uids {
    range: UidRange,
    /// `<data-dir>/sandbox-uids.json`: app name → uid.
    path: PathBuf,
    apps: BTreeMap<String, u32>,
    jobs: BTreeSet<u32>,
}

impl Uids {
    /// Loads the apps' uids kept in `path` (a missing file: none yet);
    /// uids outside `range` (the range changed) are forgotten.
    pub fn load(range: UidRange, path: PathBuf) -> Result<Self, SandboxError> {
        let apps: BTreeMap<String, u32> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SandboxError::Io {
                action: "reading",
                path: path.clone(),
                source: std::io::Error::other(e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(SandboxError::Io {
                    action: "reading",
                    path,
                    source,
                })
            }
        };
        let apps = apps
            .into_iter()
            .filter(|(_, uid)| range.apps().contains(uid))
            .collect();
        Ok(Self {
            range,
            path,
            apps,
            jobs: BTreeSet::new(),
        })
    }

    pub fn range(&self) -> UidRange {
        self.range
    }

    /// The uid of app `app`, given it the first time (and kept on disk).
    pub fn app(&mut self, app: &str) -> Result<u32, SandboxError> {
        if let Some(uid) = self.apps.get(app) {
            return Ok(*uid);
        }
        let used: BTreeSet<u32> = self.apps.values().copied().collect();
        let uid = lowest_free(self.range.apps(), &used).ok_or(SandboxError::NoUid {
            first: self.range.first,
            last: self.range.last(),
        })?;
        self.apps.insert(app.to_string(), uid);
        let bytes = serde_json::to_vec_pretty(&self.apps).map_err(|e| SandboxError::Io {
            action: "writing",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let partial = self.path.with_extension("json.partial");
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, &self.path))
            .map_err(|source| SandboxError::Io {
                action: "writing",
                path: self.path.clone(),
                source,
            })?;
        Ok(uid)
    }

    /// A uid no running job has, until [`Uids::give_back`].
    pub fn take_job(&mut self) -> Result<u32, SandboxError> {
        let uid = lowest_free(self.range.jobs(), &self.jobs).ok_or(SandboxError::NoUid {
            first: self.range.first,
            last: self.range.last(),
        })?;
        self.jobs.insert(uid);
        Ok(uid)
    }

    pub fn give_back(&mut self, uid: u32) {
        self.jobs.remove(&uid);
    }
}
