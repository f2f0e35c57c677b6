//! The control-plane backup file: every bucket's entries and every
//! artifact, encrypted with the cluster key, readable as a stream.
//!
//! ```text
//! "REEFBAK1"                  magic
//! u32 BE, JSON                the header, in the clear (which cluster, when)
//! chunks: u32 BE, sealed      each ClusterKey::encrypt(context, up to 1 MiB)
//! ```
//!
//! Each chunk's context binds the header's sha256, the chunk's index and
//! whether it is the last one, so chunks cannot be moved between files,
//! reordered, dropped or cut off without the reader noticing. The chunks'
//! plaintexts, concatenated, are a sequence of records (u32 BE length,
//! postcard), the last of which is [`Record::End`] with the counts. Every
//! length is bounded before anything is allocated.

use reef_secrets::ClusterKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};

const MAGIC: &[u8; 8] = b"REEFBAK1";
/// The largest plaintext in one chunk.
pub const CHUNK: usize = 1024 * 1024;
/// The largest sealed chunk accepted (a chunk plus the cipher's framing).
const MAX_SEALED: usize = CHUNK + 1024;
/// The largest header and the largest record accepted.
const MAX_HEADER: usize = 64 * 1024;
const MAX_RECORD: usize = 2 * CHUNK;

/// Who made the backup, in the clear: a restore says whose it is when the
/// key does not open it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    /// The cluster's name and its operator's public key (its identity).
    pub cluster: String,
    pub operator: String,
    pub created_at_ms: u64,
    /// The reef release that made it.
    pub reef: String,
}

/// One record of the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A bucket's entry: its key and its stored bytes.
    Entry {
        bucket: String,
        key: String,
        value: Vec<u8>,
    },
    /// An artifact of `size` bytes follows in [`Record::Data`] records.
    Object {
        name: String,
        size: u64,
    },
    Data(Vec<u8>),
    /// The end, with how many entries and objects came before.
    End {
        entries: u64,
        objects: u64,
    },
}

/// Why a backup could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a reef backup (no REEFBAK1 at its start)")]
    Magic,
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("the backup is cut short: it ends before its last part")]
    CutShort,
    #[error(
        "this key does not open the backup of cluster {cluster} (operator {operator}): \
         pass that cluster's key with --key, or the file is damaged"
    )]
    WrongKey { cluster: String, operator: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn damaged(what: impl Into<String>) -> FormatError {
    FormatError::Damaged(what.into())
}

fn context(header_digest: &[u8], index: u64, last: bool) -> String {
    let hex: String = header_digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "reef-backup:{hex}:{index}:{}",
        if last { "last" } else { "more" }
    )
}

/// Writes a backup: [`Writer::record`] for each record, then
/// [`Writer::finish`], which writes the end and the last chunk.
pub struct Writer<'k, W: Write> {
    out: W,
    key: &'k ClusterKey,
    digest: Vec<u8>,
    index: u64,
    pending: Vec<u8>,
    entries: u64,
    objects: u64,
}

impl<'k, W: Write> Writer<'k, W> {
    pub fn new(mut out: W, key: &'k ClusterKey, header: &Header) -> Result<Self, FormatError> {
        let header = serde_json::to_vec(header).map_err(|e| damaged(e.to_string()))?;
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u32).to_be_bytes())?;
        out.write_all(&header)?;
        Ok(Writer {
            out,
            key,
            digest: Sha256::digest(&header).to_vec(),
            index: 0,
            pending: Vec::with_capacity(CHUNK),
            entries: 0,
            objects: 0,
        })
    }

    pub fn record(&mut self, record: &Record) -> Result<(), FormatError> {
        match record {
            Record::Entry { .. } => self.entries += 1,
            Record::Object { .. } => self.objects += 1,
            _ => {}
        }
        let bytes = postcard::to_stdvec(record).map_err(|e| damaged(e.to_string()))?;
        if bytes.len() > MAX_RECORD {
            return Err(damaged(format!("a record of {} bytes", bytes.len())));
        }
        self.pending
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.pending.extend_from_slice(&bytes);
        while self.pending.len() > CHUNK {
            let rest = self.pending.split_off(CHUNK);
            let chunk = std::mem::replace(&mut self.pending, rest);
            self.seal(&chunk, false)?;
        }
        Ok(())
    }

    /// Writes the end record and the last chunk; returns the output.
    pub fn finish(mut self) -> Result<W, FormatError> {
        let end = Record::End {
            entries: self.entries,
            objects: self.objects,
        };
        self.record(&end)?;
        let chunk = std::mem::take(&mut self.pending);
        self.seal(&chunk, true)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn seal(&mut self, plaintext: &[u8], last: bool) -> Result<(), FormatError> {
        let sealed = self
            .key
            .encrypt(&context(&self.digest, self.index, last), plaintext)
            .map_err(|e| damaged(e.to_string()))?;
        self.out.write_all(&(sealed.len() as u32).to_be_bytes())?;
        self.out.write_all(&sealed)?;
        self.index += 1;
        Ok(())
    }
}

/// The header of the backup `input` starts with, before anything is opened.
pub fn read_header(input: &mut impl Read) -> Result<(Header, Vec<u8>), FormatError> {
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|_| FormatError::Magic)?;
    if &magic != MAGIC {
        return Err(FormatError::Magic);
    }
    let bytes = read_framed(input, MAX_HEADER)?.ok_or(FormatError::CutShort)?;
    let header: Header =
        serde_json::from_slice(&bytes).map_err(|e| damaged(format!("its header: {e}")))?;
    if header.format != 1 {
        return Err(damaged(format!(
            "format {} (this reef reads format 1)",
            header.format
        )));
    }
    Ok((header, Sha256::digest(&bytes).to_vec()))
}

/// A `u32 BE` length (at most `max`) and that many bytes; None at a clean
/// end of input.
fn read_framed(input: &mut impl Read, max: usize) -> Result<Option<Vec<u8>>, FormatError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FormatError::CutShort),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(damaged(format!("a part of {len} bytes (at most {max})")));
    }
    let mut bytes = vec![0u8; len];
    input
        .read_exact(&mut bytes)
        .map_err(|_| FormatError::CutShort)?;
    Ok(Some(bytes))
}

/// Reads a backup's records, in order, each checked.
pub struct Reader<'k, R: Read> {
    input: R,
    key: &'k ClusterKey,
    header: Header,
    digest: Vec<u8>,
    index: u64,
    plain: Vec<u8>,
    at: usize,
    /// The last chunk has been opened.
    last: bool,
    ended: bool,
    entries: u64,
    objects: u64,
}

impl<'k, R: Read> Reader<'k, R> {
    pub fn new(mut input: R, key: &'k ClusterKey) -> Result<Self, FormatError> {
        let (header, digest) = read_header(&mut input)?;
        let mut reader = Reader {
            input,
            key,
            header,
            digest,
            index: 0,
            plain: Vec::new(),
            at: 0,
            last: false,
            ended: false,
            entries: 0,
            objects: 0,
        };
        // The first chunk says at once whether the key is the right one.
        reader.open_chunk()?;
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn open_chunk(&mut self) -> Result<(), FormatError> {
        let sealed = read_framed(&mut self.input, MAX_SEALED)?.ok_or(FormatError::CutShort)?;
        let opened = [false, true].into_iter().find_map(|last| {
            self.key
                .decrypt(&context(&self.digest, self.index, last), &sealed)
                .ok()
                .map(|plain| (plain, last))
        });
        let Some((plain, last)) = opened else {
            return Err(match self.index {
                0 => FormatError::WrongKey {
                    cluster: self.header.cluster.clone(),
                    operator: self.header.operator.clone(),
                },
                n => damaged(format!("part {n} does not open")),
            });
        };
        self.plain.drain(..self.at);
        self.at = 0;
        self.plain.extend_from_slice(&plain);
        self.index += 1;
        self.last = last;
        Ok(())
    }

    /// At least `n` bytes of plaintext ahead, opening chunks as needed.
    fn fill(&mut self, n: usize) -> Result<(), FormatError> {
        while self.plain.len() - self.at < n {
            if self.last {
                return Err(damaged("a record runs past the last part"));
            }
            self.open_chunk()?;
        }
        Ok(())
    }

    /// The next record, or None after [`Record::End`] (which is checked
    /// against what came before, and must end the file).
    pub fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        if self.ended {
            return Ok(None);
        }
        self.fill(4)?;
        let len = u32::from_be_bytes(
            self.plain[self.at..self.at + 4]
                .try_into()
                .map_err(|_| damaged("a record's length"))?,
        ) as usize;
        if len > MAX_RECORD {
            return Err(damaged(format!("a record of {len} bytes")));
        }
        self.fill(4 + len)?;
        let bytes = &self.plain[self.at + 4..self.at + 4 + len];
        let record: Record =
            postcard::from_bytes(bytes).map_err(|e| damaged(format!("a record: {e}")))?;
        self.at += 4 + len;
        match &record {
            Record::Entry { .. } => self.entries += 1,
            Record::Object { .. } => self.objects += 1,
            Record::End { entries, objects } => {
                if (*entries, *objects) != (self.entries, self.objects) {
                    return Err(damaged("its counts do not match its contents"));
                }
                if !self.last || self.at != self.plain.len() {
                    return Err(damaged("something follows its end"));
                }
                let mut rest = [0u8; 1];
                if self.input.read(&mut rest)? != 0 {
                    return Err(damaged("something follows its end"));
                }
                self.ended = true;
            }
            Record::Data(_) => {}
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
