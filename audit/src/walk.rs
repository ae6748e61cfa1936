//! Walking the chain: the per-line checks shared by verification, proof
//! generation and a writer catching up with other writers' appends.
//!
//! Keeping one walker means the writer refuses exactly what the verifier
//! would report, and both name a problem the same way.

use std::io::{self, Read};

use crate::entry::entry_hash;
use crate::hash::Sha256Hash;
use crate::lines::{Line, LineReader};
use crate::scan::{EntryParseError, MAX_LINE_BYTES, scan_line};
use crate::verify::{AppendDefect, TamperReason, Tampering};

/// Where the chain stands: the seq the next line must carry and the hash
/// its `prev` must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainCursor {
    pub next_seq: u64,
    pub last_hash: Sha256Hash,
}

impl ChainCursor {
    pub(crate) fn start() -> Self {
        ChainCursor { next_seq: 0, last_hash: Sha256Hash::ZERO }
    }
}

/// What is wrong with one line, before context turns it into a reason.
#[derive(Debug)]
pub(crate) enum LineFault {
    Parse(EntryParseError),
    HashMismatch { stated: Sha256Hash, computed: Sha256Hash },
    SeqAhead { found: u64 },
    SeqBehind { found: u64 },
    PrevMismatch,
}

/// Checks one line against the chain, in this order: well-formed, its own
/// hash, its seq, its link to the previous entry. The hash comes first so
/// that an edited `seq` reads as an edit, and a moved but intact entry reads
/// as a seq problem.
pub(crate) fn check_line(cursor: &ChainCursor, line: &[u8]) -> Result<Sha256Hash, LineFault> {
    let scanned = scan_line(line).map_err(LineFault::Parse)?;
    let cut = scanned.hash_member;
    let computed = entry_hash(&scanned.prev, &[&line[..cut.start], &line[cut.end..]]);
    if computed != scanned.hash {
        return Err(LineFault::HashMismatch { stated: scanned.hash, computed });
    }
    if scanned.seq > cursor.next_seq {
        return Err(LineFault::SeqAhead { found: scanned.seq });
    }
    if scanned.seq < cursor.next_seq {
        return Err(LineFault::SeqBehind { found: scanned.seq });
    }
    if scanned.prev != cursor.last_hash {
        return Err(LineFault::PrevMismatch);
    }
    Ok(computed)
}

#[derive(Debug)]
pub(crate) enum WalkError {
    Io(io::Error),
    Tampered(Tampering),
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

/// Where a walk stopped.
#[derive(Debug)]
pub(crate) struct WalkEnd {
    pub cursor: ChainCursor,
    /// Offset just past the last complete line walked.
    pub committed_offset: u64,
    /// Bytes after the last newline, if any: `(offset, length)`.
    pub torn: Option<(u64, u64)>,
}

/// Settings of one walk.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WalkScope {
    /// Entries at or past this seq are not covered by a signature: a broken
    /// hash or link there is reported as a forged append.
    pub checkpoint_size: Option<u64>,
    /// Stop once this many entries have been walked.
    pub stop_after: Option<u64>,
}

/// Walks lines from `cursor` on, calling `visit(seq, line, hash)` for each
/// good one, and stops at the first problem.
pub(crate) fn walk<R: Read>(
    reader: &mut LineReader<R>,
    mut cursor: ChainCursor,
    scope: WalkScope,
    mut visit: impl FnMut(u64, &[u8], &Sha256Hash),
) -> Result<WalkEnd, WalkError> {
    loop {
        if scope.stop_after == Some(cursor.next_seq) {
            return Ok(WalkEnd { cursor, committed_offset: reader.offset(), torn: None });
        }
        let fault = match reader.next_line()? {
            Line::Complete(line) => match check_line(&cursor, line) {
                Ok(hash) => {
                    visit(cursor.next_seq, line, &hash);
                    cursor.next_seq += 1;
                    cursor.last_hash = hash;
                    continue;
                }
                Err(fault) => fault,
            },
            Line::Oversized { length } => {
                return Err(WalkError::Tampered(Tampering {
                    first_bad_seq: Some(cursor.next_seq),
                    reason: TamperReason::OversizedLine {
                        line: cursor.next_seq + 1,
                        length,
                        limit: MAX_LINE_BYTES as u64,
                    },
                }));
            }
            Line::Torn { offset, length } => {
                return Ok(WalkEnd { cursor, committed_offset: offset, torn: Some((offset, length)) });
            }
            Line::End => {
                return Ok(WalkEnd { cursor, committed_offset: reader.offset(), torn: None });
            }
        };
        return Err(WalkError::Tampered(classify(fault, &cursor, scope, reader)?));
    }
}

/// Names a fault precisely. Line numbers are 1-based and equal `seq + 1`
/// for a good log, so the failing line is `next_seq + 1`.
fn classify<R: Read>(
    fault: LineFault,
    cursor: &ChainCursor,
    scope: WalkScope,
    reader: &mut LineReader<R>,
) -> io::Result<Tampering> {
    let seq = cursor.next_seq;
    let line = seq + 1;
    let uncovered = scope.checkpoint_size.filter(|&size| seq >= size);
    let reason = match fault {
        LineFault::Parse(EntryParseError::NonUtf8 { offset }) => TamperReason::NonUtf8Line { line, offset },
        LineFault::Parse(error) => TamperReason::MalformedLine { line, error },
        LineFault::HashMismatch { stated, computed } => match uncovered {
            Some(checkpoint_size) => TamperReason::ForgedAppend { checkpoint_size, defect: AppendDefect::HashMismatch },
            None => TamperReason::EditedEntry { stated, computed },
        },
        LineFault::PrevMismatch => match uncovered {
            Some(checkpoint_size) => TamperReason::ForgedAppend { checkpoint_size, defect: AppendDefect::ChainBroken },
            None => TamperReason::ChainBroken,
        },
        LineFault::SeqAhead { found } => {
            // Seq `seq` is not here: if it turns up later the entries were
            // moved, otherwise it is gone.
            if seq_appears_later(reader, seq)? {
                TamperReason::Reordered { found_seq: found }
            } else {
                TamperReason::MissingEntry { found_seq: found }
            }
        }
        LineFault::SeqBehind { found } => TamperReason::DuplicateEntry { found_seq: found },
    };
    Ok(Tampering { first_bad_seq: Some(seq), reason })
}

fn seq_appears_later<R: Read>(reader: &mut LineReader<R>, wanted: u64) -> io::Result<bool> {
    loop {
        match reader.next_line()? {
            Line::Complete(line) => {
                if scan_line(line).is_ok_and(|scanned| scanned.seq == wanted) {
                    return Ok(true);
                }
            }
            Line::Oversized { .. } => {}
            Line::Torn { .. } | Line::End => return Ok(false),
        }
    }
}
