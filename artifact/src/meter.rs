//! A reader that bounds how much the tar parser may consume on its own.
//!
//! The `tar` crate buffers GNU long names and pax records in memory while it
//! looks for the next entry, with no limit of its own, so a few megabytes of
//! gzip could make it allocate gigabytes. The unpacker therefore hands the
//! parser a [`MeteredReader`] and, through the shared [`Meter`], allows only a
//! small allowance of bytes while the parser reads headers, and lifts it while
//! the unpacker itself reads (and counts) entry data.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// The allowance shared between the unpacker and its [`MeteredReader`].
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Bytes that may still be read; `None` means no limit.
    allowance: Cell<Option<u64>>,
    /// Whether a read was refused because the allowance ran out.
    tripped: Cell<bool>,
}

impl Meter {
    /// From now on, allow at most `bytes` more bytes to be read.
    pub(crate) fn allow(&self, bytes: u64) {
        self.allowance.set(Some(bytes));
    }

    /// From now on, allow reads without limit.
    pub(crate) fn allow_unlimited(&self) {
        self.allowance.set(None);
    }

    /// Whether a read failed because the allowance ran out; tells such a
    /// failure apart from a corrupt stream once the parser reports it.
    pub(crate) fn tripped(&self) -> bool {
        self.tripped.get()
    }
}

/// Passes reads through to `inner` while the [`Meter`] allows them.
pub(crate) struct MeteredReader<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> MeteredReader<R> {
    pub(crate) fn new(inner: R, meter: Rc<Meter>) -> Self {
        MeteredReader { inner, meter }
    }
}

impl<R: Read> Read for MeteredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(allowance) = self.meter.allowance.get() else {
            return self.inner.read(buf);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        if allowance == 0 {
            self.meter.tripped.set(true);
            return Err(io::Error::other("header allowance exhausted"));
        }
        let want = usize::try_from(allowance).map_or(buf.len(), |a| a.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        self.meter.allowance.set(Some(allowance - n as u64));
        Ok(n)
    }
}

#[cfg(test)]
#[path = "meter_tests.rs"]
mod tests;
