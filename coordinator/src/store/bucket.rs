//! A KV bucket handle typed by what it stores: a `Bucket<JobRecord>` reads
//! and writes job records and nothing else, so a record of the wrong kind
//! for a bucket does not compile. Reads decode (a value that does not is
//! `Corrupt`, naming bucket and key); writes encode; compare-and-set is on
//! the key's revision.
//!
//! Two buckets hold more than one kind of value under different keys (the
//! certificates bucket also keeps the ACME account and the attempts per
//! domain): each kind gets a handle of its own over the same bucket.

use super::error::StoreError;
use async_nats::jetstream::kv;
use futures::{StreamExt, TryStreamExt};
use reef_proto::{decode, encode, Message};
use std::marker::PhantomData;

/// How long each write (create, put, compare-and-set) took, in this
/// process: `reef_coordinator_kv_write_duration_seconds`.
pub static WRITES: reef_proxy::exposition::Histogram = reef_proxy::exposition::Histogram::new();

/// What a bucket can hold: how a value becomes bytes and back.
pub trait Stored: Sized {
    fn to_bytes(&self) -> Result<bytes::Bytes, reef_proto::EncodeError>;
    fn from_bytes(bytes: &[u8]) -> Result<Self, reef_proto::DecodeError>;
}

impl<T: Message> Stored for T {
    fn to_bytes(&self) -> Result<bytes::Bytes, reef_proto::EncodeError> {
        encode(self)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, reef_proto::DecodeError> {
        decode(bytes)
    }
}

/// Bytes only the cluster key opens (secrets, the ACME account), stored
/// as they are: reef's envelope would add nothing to a ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext(pub Vec<u8>);

impl Stored for Ciphertext {
    fn to_bytes(&self) -> Result<bytes::Bytes, reef_proto::EncodeError> {
        Ok(bytes::Bytes::copy_from_slice(&self.0))
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, reef_proto::DecodeError> {
        Ok(Self(bytes.to_vec()))
    }
}

/// A KV bucket of `T`s.
pub struct Bucket<T> {
    kv: kv::Store,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Self {
            kv: self.kv.clone(),
            record: PhantomData,
        }
    }
}

/// How many reads `all` keeps in flight.
const READS_IN_FLIGHT: usize = 64;

impl<T: Stored> Bucket<T> {
    pub fn new(kv: kv::Store) -> Self {
        Self {
            kv,
            record: PhantomData,
        }
    }

    pub fn name(&self) -> &str {
        &self.kv.name
    }

    /// The untyped handle, for watching the bucket.
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    fn fail<E>(&self, key: &str, source: E) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        StoreError::Io {
            bucket: self.kv.name.clone(),
            key: key.to_string(),
            source: Box::new(source),
        }
    }

    fn encode(&self, key: &str, value: &T) -> Result<bytes::Bytes, StoreError> {
        value.to_bytes().map_err(|source| StoreError::Encode {
            bucket: self.kv.name.clone(),
            key: key.to_string(),
            source,
        })
    }

    /// Reads and decodes one value with its revision (None: no such key, or deleted).
    pub async fn get(&self, key: &str) -> Result<Option<(T, u64)>, StoreError> {
        let Some(entry) = self.kv.entry(key).await.map_err(|e| self.fail(key, e))? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value = T::from_bytes(&entry.value).map_err(|source| StoreError::Corrupt {
            bucket: self.kv.name.clone(),
            key: key.to_string(),
            source,
        })?;
        Ok(Some((value, entry.revision)))
    }

    /// One value with its revision, whether or not it decodes: for a key
    /// whose unreadable value is itself something to act on.
    pub async fn entry(
        &self,
        key: &str,
    ) -> Result<Option<(Result<T, reef_proto::DecodeError>, u64)>, StoreError> {
        let Some(entry) = self.kv.entry(key).await.map_err(|e| self.fail(key, e))? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        Ok(Some((T::from_bytes(&entry.value), entry.revision)))
    }

    /// Whether `key` holds a value.
    pub async fn contains(&self, key: &str) -> Result<bool, StoreError> {
        let entry = self.kv.entry(key).await.map_err(|e| self.fail(key, e))?;
        Ok(entry.is_some_and(|e| e.operation == kv::Operation::Put))
    }

    /// Creates `key`; `Ok(None)` if it exists already.
    pub async fn create(&self, key: &str, value: &T) -> Result<Option<u64>, StoreError> {
        let bytes = self.encode(key, value)?;
        let started = std::time::Instant::now();
        let created = self.kv.create(key, bytes).await;
        WRITES.observe(started.elapsed());
        match created {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(self.fail(key, e)),
        }
    }

    /// Creates `key`, which must not exist yet (ids are fresh uuids).
    pub async fn create_new(&self, key: &str, value: &T) -> Result<u64, StoreError> {
        self.create(key, value)
            .await?
            .ok_or_else(|| StoreError::Exists {
                bucket: self.kv.name.clone(),
                key: key.to_string(),
            })
    }

    /// Writes `value` whatever `key` holds.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, StoreError> {
        let bytes = self.encode(key, value)?;
        let started = std::time::Instant::now();
        let put = self.kv.put(key, bytes).await;
        WRITES.observe(started.elapsed());
        put.map_err(|e| self.fail(key, e))
    }

    /// Writes `value` only if `key` is still at `revision`; `Ok(None)` on conflict.
    pub async fn put_if(
        &self,
        key: &str,
        value: &T,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let bytes = self.encode(key, value)?;
        let started = std::time::Instant::now();
        let updated = self.kv.update(key, bytes, revision).await;
        WRITES.observe(started.elapsed());
        match updated {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(self.fail(key, e)),
        }
    }

    /// Creates or replaces `key` with compare-and-set, retried on conflict:
    /// a concurrent writer is noticed and written over knowingly.
    pub async fn replace(&self, key: &str, value: &T) -> Result<u64, StoreError> {
        for _ in 0..8 {
            let entry = self.kv.entry(key).await.map_err(|e| self.fail(key, e))?;
            let written = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    self.put_if(key, value, entry.revision).await?
                }
                _ => self.create(key, value).await?,
            };
            if let Some(revision) = written {
                return Ok(revision);
            }
        }
        Err(self.conflict(key))
    }

    fn conflict(&self, key: &str) -> StoreError {
        StoreError::Conflict {
            bucket: self.kv.name.clone(),
            key: key.to_string(),
        }
    }

    /// Read-modify-write with compare-and-set, retried on conflict. `change`
    /// returns false to leave the value as it is. Returns the value as stored.
    pub async fn modify(
        &self,
        key: &str,
        change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .modify_from(key, None, change)
            .await?
            .map(|(value, _)| value))
    }

    /// Like [`Bucket::modify`], starting from a cached value and revision
    /// when there is one, which saves a read when the cache is current. A
    /// stale cache costs one failed write and then a read; a decision not
    /// to write is never taken on cached data alone. Returns the value as
    /// stored and its revision.
    ///
    /// `change` applies a decision already made (see `plan/`): it may run
    /// more than once, on fresher values, and must decide nothing that the
    /// caller needs to know beyond what it returns.
    pub async fn modify_from(
        &self,
        key: &str,
        mut cached: Option<(T, u64)>,
        mut change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<(T, u64)>, StoreError> {
        for _ in 0..16 {
            let from_cache = cached.is_some();
            let (mut value, revision) = match cached.take() {
                Some(hit) => hit,
                None => match self.get(key).await? {
                    Some(fresh) => fresh,
                    None => return Ok(None),
                },
            };
            if !change(&mut value) {
                if from_cache {
                    continue;
                }
                return Ok(Some((value, revision)));
            }
            if let Some(new_revision) = self.put_if(key, &value, revision).await? {
                return Ok(Some((value, new_revision)));
            }
        }
        Err(self.conflict(key))
    }

    /// Deletes `key` (a tombstone stays until the bucket's history drops it).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.delete(key).await.map_err(|e| self.fail(key, e))
    }

    /// Deletes `key` only if it is still at `revision`.
    pub async fn delete_if(&self, key: &str, revision: u64) -> Result<(), StoreError> {
        self.kv
            .delete_expect_revision(key, Some(revision))
            .await
            .map_err(|e| self.fail(key, e))
    }

    /// Removes `key` and its history, only if it is still at `revision`.
    pub async fn purge_if(&self, key: &str, revision: u64) -> Result<(), StoreError> {
        self.kv
            .purge_expect_revision(key, Some(revision))
            .await
            .map_err(|e| self.fail(key, e))
    }

    /// Removes `key` and its history.
    pub async fn purge(&self, key: &str) -> Result<(), StoreError> {
        self.kv.purge(key).await.map_err(|e| self.fail(key, e))
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let keys = self.kv.keys().await.map_err(|e| self.fail("*", e))?;
        keys.try_collect().await.map_err(|e| self.fail("*", e))
    }

    /// The values of `keys`, read concurrently; corrupt entries are logged
    /// and skipped, deleted ones left out.
    pub async fn read_many(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<Vec<(String, T, u64)>, StoreError> {
        let values = futures::stream::iter(keys)
            .map(|key| async move { (self.get(&key).await, key) })
            .buffer_unordered(READS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::with_capacity(values.len());
        for (value, key) in values {
            match value {
                Ok(Some((v, revision))) => out.push((key, v, revision)),
                Ok(None) => {}
                Err(e @ StoreError::Corrupt { .. }) => {
                    tracing::warn!(error = %crate::error::Report(&e), "skipping a corrupt entry");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every value in the bucket; corrupt entries are logged and skipped.
    pub async fn all(&self) -> Result<Vec<T>, StoreError> {
        let keys = self.keys().await?;
        Ok(self
            .read_many(keys)
            .await?
            .into_iter()
            .map(|(_, value, _)| value)
            .collect())
    }
}
