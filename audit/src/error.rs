//! Error types of reading and writing, kept apart from tamper findings.
//!
//! A tamper finding (`Tampering`) is a definite "no" about the log's
//! integrity; these errors mean the question could not be answered or the
//! operation could not be done. The CLI maps them to different exit codes.

use std::io;
use std::path::{Path, PathBuf};

use crate::entry::EventError;
use crate::scan::EntryParseError;
use crate::verify::Tampering;

/// An I/O failure while reading a log or checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ReadError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        ReadError::Io { action, path: path.to_path_buf(), source }
    }
}

/// Why opening, appending to or checkpointing a log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    /// The log or its checkpoint fails a check the writer makes before
    /// extending it; appending would build on, or re-sign, tampered history.
    #[error("refusing to extend {path}: {tampering}")]
    Tampered { path: PathBuf, tampering: Tampering },
    /// The last newline-terminated line does not parse. It cannot be a torn
    /// write (those never end in a newline), so it was committed and is left
    /// alone: run `verify`.
    #[error(
        "last complete line of {path}, at byte {offset}, is not an entry; it is not cut away because it was committed"
    )]
    CorruptTail {
        path: PathBuf,
        offset: u64,
        #[source]
        source: EntryParseError,
    },
    /// The file is shorter than what this handle already read: committed
    /// entries were removed behind its back.
    #[error(
        "{path} is {found} bytes long, shorter than the {expected} bytes already read: committed entries were removed"
    )]
    LogShrank { path: PathBuf, expected: u64, found: u64 },
}

impl AuditError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        AuditError::Io { action, path: path.to_path_buf(), source }
    }
}
