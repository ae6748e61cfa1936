//! `show`: reading entries back, filtered by kind and time.
//!
//! Reading is not verifying: entries are parsed strictly (canonical form) but
//! their hashes and chain are not checked here; `verify_log` does that.

use std::fs::File;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::entry::Entry;
use crate::error::ReadError;
use crate::lines::{Line, LineReader};
use crate::scan::{EntryParseError, MAX_LINE_BYTES};

/// Which entries `show` lists. The default lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A kind (`run.finished`) or a dotted prefix of kinds (`run` matches
    /// `run.started` and `run.finished`).
    pub kind: Option<String>,
    /// Only entries stamped at or after this time. Entries are not assumed
    /// to be in time order (clocks step), so the whole log is read.
    pub since: Option<OffsetDateTime>,
}

impl Filter {
    pub fn matches(&self, entry: &Entry) -> bool {
        let kind_ok = self.kind.as_deref().is_none_or(|wanted| {
            entry.kind == wanted || entry.kind.strip_prefix(wanted).is_some_and(|rest| rest.starts_with('.'))
        });
        let time_ok = self.since.is_none_or(|since| entry.time >= since);
        kind_ok && time_ok
    }
}

/// A line `show` could not read; reading goes on with the next line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShowError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("line {line} of {path} is not an entry")]
    MalformedLine {
        path: PathBuf,
        line: u64,
        #[source]
        error: EntryParseError,
    },
    #[error("line {line} of {path} is {length} bytes long, over the limit of {limit}")]
    OversizedLine { path: PathBuf, line: u64, length: u64, limit: u64 },
}

/// Iterator over the entries of a log that match a filter. A torn,
/// uncommitted tail is skipped silently.
pub struct EntryReader {
    path: PathBuf,
    reader: LineReader<File>,
    filter: Filter,
    line: u64,
    done: bool,
}

impl std::fmt::Debug for EntryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryReader")
            .field("path", &self.path)
            .field("filter", &self.filter)
            .field("line", &self.line)
            .finish()
    }
}

/// Opens the log at `path` for `show`.
pub fn read_entries(path: &Path, filter: Filter) -> Result<EntryReader, ReadError> {
    let file = crate::checkpoint::open_for_reading(path).map_err(|e| ReadError::io("open", path, e))?;
    Ok(EntryReader { path: path.to_path_buf(), reader: LineReader::new(file, 0), filter, line: 0, done: false })
}

impl Iterator for EntryReader {
    type Item = Result<Entry, ShowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let line = match self.reader.next_line() {
                Ok(line) => line,
                Err(e) => {
                    self.done = true;
                    return Some(Err(ReadError::io("read", &self.path, e).into()));
                }
            };
            self.line += 1;
            match line {
                Line::Complete(bytes) => match Entry::from_line(bytes) {
                    Ok(entry) if self.filter.matches(&entry) => return Some(Ok(entry)),
                    Ok(_) => {}
                    Err(error) => {
                        return Some(Err(ShowError::MalformedLine { path: self.path.clone(), line: self.line, error }));
                    }
                },
                Line::Oversized { length } => {
                    return Some(Err(ShowError::OversizedLine {
                        path: self.path.clone(),
                        line: self.line,
                        length,
                        limit: MAX_LINE_BYTES as u64,
                    }));
                }
                Line::Torn { .. } | Line::End => self.done = true,
            }
        }
        None
    }
}
