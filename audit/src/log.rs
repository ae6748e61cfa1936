//! The writer: appends events to the log from any number of processes.
//!
//! Invariants, in the order they matter:
//! - The log file is opened for reading and appending only. Committed bytes
//!   (everything up to the last newline) are never rewritten or removed.
//! - Every append happens under an exclusive advisory lock (`File::lock`, an
//!   `flock` on Unix) and starts by reading what other writers appended since
//!   this handle last looked, checking that it chains, so the new entries
//!   always link to the true tail.
//! - An append is one `write` of whole lines followed by `sync_data`; the
//!   receipt is returned only after that. A crash can therefore leave at most
//!   a torn last line without a newline: bytes that were never committed.
//! - On open, and before each append, such a torn tail is copied to
//!   `<log>.recovered-<time>` (fsynced), cut from the log (the only time the
//!   file is shortened, and only those bytes), and an `audit.recovered`
//!   entry recording their offset, length and SHA-256 is appended.
//! - With a [`CheckpointSigner`], the existing checkpoint is checked against
//!   the log before each append and a new one is written after it; if the
//!   log no longer matches the last checkpoint (truncated, restored, or
//!   re-signed by another key) the writer refuses, so tampered history is
//!   never re-signed. A missing checkpoint is simply written afresh: nothing
//!   local can tell a deleted checkpoint from a first one (until then
//!   `verify` reports it missing); a witness that keeps old checkpoints and
//!   asks for consistency proofs can.
//! - A checkpointing writer keeps the Merkle state beside the log
//!   ([`crate::tree`]) instead of reading the whole log: on first use it
//!   checks the state in O(log n) (its root at the checkpoint's size must be
//!   the signed root, and the state's last trusted leaf must be the hash of
//!   that entry's line in the log) and recomputes from the log only the
//!   entries after the checkpoint. New roots are computed from state the
//!   signed checkpoint vouches for, so an entry edited in the log after it
//!   was checkpointed is never signed over: the next checkpoint still
//!   commits to the original, and `verify` finds the edit. A missing state,
//!   or one that does not match the log, is rebuilt with one walk and an
//!   `audit.tree_rebuilt` entry records it.
//! - fsyncs per append: the log's data (the entry is durable before the
//!   receipt) and the checkpoint's temp file (a checkpoint is never half
//!   written). The checkpoint's rename is not flushed: after a crash the
//!   previous checkpoint may be back, which covers fewer entries that are
//!   all still in the log, and the next append signs them again. The tree
//!   files are not flushed: a crash leaves them shorter than the log, and
//!   they are extended from it. The directory is flushed once, when the log
//!   is created.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::checkpoint::{
    CheckpointSigner, SignedCheckpoint, default_checkpoint_path, parent_dir, parse_checkpoint_bytes,
    read_checkpoint_file, sync_dir, write_checkpoint_file,
};
use crate::entry::{Actor, Event, encode_line, now_text};
use crate::error::AuditError;
use crate::hash::Sha256Hash;
use crate::kinds;
use crate::lines::LineReader;
use crate::merkle::{empty_root, leaf_hash};
use crate::scan::{MAX_LINE_BYTES, scan_line};
use crate::tree::{Found, PositionedReader, StoredTree, read_line_at};
use crate::verify::{TamperReason, Tampering};
use crate::walk::{ChainCursor, LineFault, WalkError, WalkScope, check_line, walk};

/// How to open a log for writing.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Sign and write a checkpoint after every append, after checking the
    /// previous checkpoint against the log. Without one, appends write no
    /// checkpoint and `verify` reports the entries as uncheckpointed.
    pub checkpoint_signer: Option<CheckpointSigner>,
    /// Where the checkpoint lives; `<log>.checkpoint` by default.
    pub checkpoint_path: Option<PathBuf>,
}

/// Proof that an event was durably appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AppendReceipt {
    pub seq: u64,
    pub hash: Sha256Hash,
}

/// A torn tail this handle moved aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Seq of the `audit.recovered` entry that records it.
    pub seq: u64,
    /// Where the torn bytes started in the log.
    pub offset: u64,
    pub length: u64,
    pub sha256: Sha256Hash,
    /// The file the bytes were saved to.
    pub saved_to: PathBuf,
}

/// An open audit log. One handle per thread or process; handles on the same
/// file, in one process or several, serialise through the file lock.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    checkpoint_path: PathBuf,
    file: File,
    signer: Option<CheckpointSigner>,
    cursor: ChainCursor,
    /// Offset just past the last committed line this handle has seen.
    offset: u64,
    /// The Merkle state of entries `0..cursor.next_seq`, opened and checked
    /// on first need (checkpointing) and then kept up to date.
    tree: Option<StoredTree>,
    /// The last checkpoint (size, root) found to agree with the log.
    agreed_checkpoint: Option<(u64, Sha256Hash)>,
    recoveries: Vec<Recovery>,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` for appending, without
    /// checkpointing. A torn tail left by a crash is recovered here.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        Self::open_with(path, LogOptions::default())
    }

    /// Opens the log with options. Only the last line is read here; the
    /// whole log is read once, on the first checkpoint.
    pub fn open_with(path: impl AsRef<Path>, options: LogOptions) -> Result<AuditLog, AuditError> {
        let path = path.as_ref().to_path_buf();
        // Not through a symlink, and without blocking on a FIFO: the log must
        // be a regular file of its own, checked on the opened handle.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let open = |create: bool| {
            OpenOptions::new().read(true).append(true).create_new(create).custom_flags(flags.bits() as i32).open(&path)
        };
        let file = match open(false) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
                Ok(file) => {
                    // Make the new file's existence durable too, not only
                    // its contents: once, when it is created.
                    sync_dir(&parent_dir(&path)).map_err(|e| AuditError::io("sync the directory of", &path, e))?;
                    Ok(file)
                }
                // Another writer created it first.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open(false),
                Err(e) => Err(e),
            },
            opened => opened,
        }
        .map_err(|e| AuditError::io("open", &path, e))?;
        let meta = file.metadata().map_err(|e| AuditError::io("stat", &path, e))?;
        if !meta.is_file() {
            let kind = signer::fsutil::kind_of(&meta);
            let error = io::Error::new(io::ErrorKind::InvalidInput, format!("it is {kind}, not a regular file"));
            return Err(AuditError::io("open", &path, error));
        }
        let checkpoint_path = options.checkpoint_path.unwrap_or_else(|| default_checkpoint_path(&path));
        let mut log = AuditLog {
            path,
            checkpoint_path,
            file,
            signer: options.checkpoint_signer,
            cursor: ChainCursor::start(),
            offset: 0,
            tree: None,
            agreed_checkpoint: None,
            recoveries: Vec::new(),
        };
        log.with_lock(Self::load_tail)?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn checkpoint_path(&self) -> &Path {
        &self.checkpoint_path
    }

    /// Number of entries as of this handle's last operation (other writers
    /// may have appended since).
    pub fn size(&self) -> u64 {
        self.cursor.next_seq
    }

    /// Hash of the last entry as of this handle's last operation.
    pub fn last_hash(&self) -> Sha256Hash {
        self.cursor.last_hash
    }

    /// Torn tails this handle recovered.
    pub fn recoveries(&self) -> &[Recovery] {
        &self.recoveries
    }

    /// Appends one event: written and fsynced before this returns.
    pub fn append(&mut self, event: &Event) -> Result<AppendReceipt, AuditError> {
        let receipts = self.append_batch(std::slice::from_ref(event))?;
        receipts.into_iter().next().ok_or_else(|| {
            AuditError::io("append to", &self.path, io::Error::other("no receipt for an appended event"))
        })
    }

    /// Appends events with one write and one fsync, for high-rate writers.
    /// All get the same time stamp. If the process dies mid-write, the
    /// complete lines written stay (they chain correctly) and the torn last
    /// one is recovered by the next writer.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Vec<AppendReceipt>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let signer = self.signer.clone();
        self.with_lock(|log| {
            log.catch_up(signer.as_ref().map(|s| s.verifying_key()).as_ref())?;
            let receipts = log.write_events(events)?;
            if let Some(signer) = &signer {
                log.publish_checkpoint(signer)?;
            }
            Ok(receipts)
        })
    }

    /// Signs and writes a checkpoint of the log as it is now, after checking
    /// that the current checkpoint (if any) was signed by `signer`'s key and
    /// still matches the log.
    pub fn write_checkpoint(&mut self, signer: &CheckpointSigner) -> Result<SignedCheckpoint, AuditError> {
        self.with_lock(|log| {
            log.catch_up(Some(&signer.verifying_key()))?;
            log.publish_checkpoint(signer)
        })
    }

    fn with_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, AuditError>) -> Result<T, AuditError> {
        self.file.lock().map_err(|e| AuditError::io("lock", &self.path, e))?;
        // If `f` panics the lock is held until the handle is dropped, which
        // closes the file and so releases it.
        let result = f(self);
        let unlocked = self.file.unlock();
        let value = result?;
        unlocked.map_err(|e| AuditError::io("unlock", &self.path, e))?;
        Ok(value)
    }

    fn tampered(&self, first_bad_seq: Option<u64>, reason: TamperReason) -> AuditError {
        AuditError::Tampered { path: self.path.clone(), tampering: Tampering { first_bad_seq, reason } }
    }

    fn file_len(&self) -> Result<u64, AuditError> {
        self.file.metadata().map(|m| m.len()).map_err(|e| AuditError::io("stat", &self.path, e))
    }

    /// Reads the last complete line to learn the chain head, then recovers
    /// any torn tail after it. Called under the lock.
    fn load_tail(&mut self) -> Result<(), AuditError> {
        let len = self.file_len()?;
        let read_error = |e| AuditError::io("read", &self.path, e);
        let last_newline = rfind_newline(&self.file, 0, len).map_err(read_error)?;
        self.cursor = ChainCursor::start();
        self.offset = 0;
        if let Some(newline) = last_newline {
            let floor = newline.saturating_sub(MAX_LINE_BYTES as u64 + 1);
            let line_start = match rfind_newline(&self.file, floor, newline).map_err(read_error)? {
                Some(previous) => previous + 1,
                None if floor == 0 => 0,
                None => {
                    return Err(AuditError::CorruptTail {
                        path: self.path.clone(),
                        offset: floor,
                        source: crate::scan::EntryParseError::TooLong {
                            length: MAX_LINE_BYTES + 1,
                            limit: MAX_LINE_BYTES,
                        },
                    });
                }
            };
            let mut line = vec![0; (newline - line_start) as usize];
            read_exact_at(&self.file, &mut line, line_start).map_err(read_error)?;
            let scanned = scan_line(&line).map_err(|source| AuditError::CorruptTail {
                path: self.path.clone(),
                offset: line_start,
                source,
            })?;
            // Check the head's own hash so a new entry never links to an
            // edited one; its seq and prev are taken as they stand.
            let seq = scanned.seq;
            let head = ChainCursor { next_seq: seq, last_hash: scanned.prev };
            let hash = check_line(&head, &line).map_err(|fault| match fault {
                LineFault::HashMismatch { stated, computed } => {
                    self.tampered(Some(seq), TamperReason::EditedEntry { stated, computed })
                }
                // A line that scanned, checked against its own seq and prev,
                // can only fail on its hash; refuse rather than guess.
                _ => self.tampered(Some(seq), TamperReason::ChainBroken),
            })?;
            self.cursor = ChainCursor { next_seq: seq + 1, last_hash: hash };
            self.offset = newline + 1;
        }
        if self.offset < len {
            self.recover_torn_tail(self.offset, len)?;
        }
        Ok(())
    }

    /// Under the lock: reads what other writers appended, recovers a torn
    /// tail, and with a signer checks the current checkpoint against the log
    /// (through the Merkle state, opened and checked here on first use).
    fn catch_up(&mut self, signer_key: Option<&VerifyingKey>) -> Result<(), AuditError> {
        let Some(key) = signer_key else {
            return self.read_new_lines();
        };
        // The checkpoint first: it is written after the lines it covers.
        let checkpoint = self.read_trusted_checkpoint(key)?;
        self.read_new_lines()?;
        let log_entries = self.cursor.next_seq;
        if let Some((size, _)) = checkpoint
            && size > log_entries
        {
            return Err(
                self.tampered(Some(log_entries), TamperReason::Truncated { log_entries, checkpoint_size: size })
            );
        }
        let tree = match self.tree.take() {
            Some(tree) => tree,
            None => self.open_tree(checkpoint)?,
        };
        let tree = self.tree.insert(tree);
        let Some((size, root)) = checkpoint else {
            return Ok(());
        };
        if self.agreed_checkpoint == Some((size, root)) {
            return Ok(());
        }
        let log_root = tree.root_at(size).map_err(|e| AuditError::io("read the merkle state of", &self.path, e))?;
        if log_root != root {
            return Err(
                self.tampered(None, TamperReason::CheckpointRootMismatch { size, checkpoint_root: root, log_root })
            );
        }
        self.agreed_checkpoint = Some((size, root));
        Ok(())
    }

    /// Opens the Merkle state beside the log and brings it level with the
    /// log as this handle has read it: trusted as far as the checkpoint
    /// vouches for it, recomputed from the log after that, rebuilt with one
    /// walk (and recorded) if it is missing or does not match the log.
    fn open_tree(&mut self, checkpoint: Option<(u64, Sha256Hash)>) -> Result<StoredTree, AuditError> {
        let state_error = |path: &Path| {
            let path = path.to_path_buf();
            move |e| AuditError::io("use the merkle state of", &path, e)
        };
        let mode = self.file.metadata().map_err(state_error(&self.path))?.permissions().mode() & 0o666;
        let (mut tree, found) = StoredTree::open_for_append(&self.path, mode).map_err(state_error(&self.path))?;
        let log_entries = self.cursor.next_seq;
        if tree.size() > log_entries {
            return Err(self.tampered(
                Some(log_entries),
                TamperReason::TreeStateAhead { log_entries, state_entries: tree.size() },
            ));
        }
        let (size, root) = checkpoint.unwrap_or((0, empty_root()));
        // A log never checkpointed has no state by design (writers without a
        // signer keep none): building its first one is not a rebuild.
        let mut rebuilt = (found == Found::Created && checkpoint.is_some()).then_some("missing");
        let mut trusted = tree.size().min(size);
        let mut start = (ChainCursor::start(), 0);
        if trusted > 0 {
            match self.trusted_line_end(&tree, trusted - 1)? {
                Some(end) => start = end,
                None => {
                    trusted = 0;
                    rebuilt = Some("disagreed_with_log");
                }
            }
        }
        tree.truncate(trusted).map_err(state_error(tree.hashes_path()))?;
        let (cursor, offset) = start;
        let mut at = offset;
        let mut reader =
            LineReader::new(PositionedReader { file: &self.file, at: offset }.take(self.offset - offset), offset);
        let scope = WalkScope { checkpoint_size: checkpoint.map(|(size, _)| size), stop_after: None };
        let end = walk(&mut reader, cursor, scope, |_, line, _| {
            tree.push(leaf_hash(line), at);
            at += line.len() as u64 + 1;
        })
        .map_err(|error| self.walk_error(error))?;
        if end.cursor != self.cursor {
            return Err(self.tampered(Some(end.cursor.next_seq), TamperReason::ChainBroken));
        }
        if size > 0 {
            let state_root = tree.root_at(size).map_err(state_error(tree.hashes_path()))?;
            if state_root != root {
                let reason = if trusted == 0 {
                    TamperReason::CheckpointRootMismatch { size, checkpoint_root: root, log_root: state_root }
                } else {
                    TamperReason::TreeStateMismatch { size, checkpoint_root: root, state_root }
                };
                return Err(self.tampered(None, reason));
            }
            self.agreed_checkpoint = Some((size, root));
        }
        tree.flush().map_err(state_error(tree.hashes_path()))?;
        if let Some(reason) = rebuilt {
            tracing::warn!(log = %self.path.display(), reason, entries = log_entries, "rebuilt the merkle state beside the log");
            let mut data = Map::new();
            data.insert("reason".into(), Value::from(reason));
            data.insert("entries".into(), Value::from(log_entries));
            let event = Event::new(kinds::AUDIT_TREE_REBUILT, Actor::this_process(), data);
            self.tree = Some(tree);
            self.write_events(std::slice::from_ref(&event))?;
            return self.tree.take().ok_or_else(|| state_error(&self.path)(io::Error::other("merkle state lost")));
        }
        Ok(tree)
    }

    /// The chain head after entry `seq` and where the next line starts, if
    /// the state's offset of `seq` leads to a line of that seq whose leaf
    /// hash is the state's: the link between state and log.
    fn trusted_line_end(&self, tree: &StoredTree, seq: u64) -> Result<Option<(ChainCursor, u64)>, AuditError> {
        let read = |e| AuditError::io("read the merkle state of", &self.path, e);
        let offset = tree.offset_of(seq).map_err(read)?;
        let Some(line) = read_line_at(&self.file, offset, self.offset).map_err(read)? else {
            return Ok(None);
        };
        if leaf_hash(&line) != tree.leaf(seq).map_err(read)? {
            return Ok(None);
        }
        let Ok(scanned) = scan_line(&line) else {
            return Ok(None);
        };
        if scanned.seq != seq {
            return Ok(None);
        }
        let head = ChainCursor { next_seq: seq, last_hash: scanned.prev };
        match check_line(&head, &line) {
            Ok(hash) => Ok(Some((ChainCursor { next_seq: seq + 1, last_hash: hash }, offset + line.len() as u64 + 1))),
            // The line the state recorded no longer hashes to itself.
            Err(LineFault::HashMismatch { stated, computed }) => {
                Err(self.tampered(Some(seq), TamperReason::EditedEntry { stated, computed }))
            }
            Err(_) => Ok(None),
        }
    }

    fn walk_error(&self, error: WalkError) -> AuditError {
        match error {
            WalkError::Io(e) => AuditError::io("read", &self.path, e),
            WalkError::Tampered(tampering) => AuditError::Tampered { path: self.path.clone(), tampering },
        }
    }

    fn read_trusted_checkpoint(&self, key: &VerifyingKey) -> Result<Option<(u64, Sha256Hash)>, AuditError> {
        let Some(bytes) = read_checkpoint_file(&self.checkpoint_path)
            .map_err(|e| AuditError::io("read", &self.checkpoint_path, e))?
        else {
            return Ok(None);
        };
        let signed = parse_checkpoint_bytes(&bytes)
            .map_err(|error| self.tampered(None, TamperReason::MalformedCheckpoint { error }))?;
        let checkpoint = signed.verify(key).map_err(|e| self.tampered(None, TamperReason::from_checkpoint_error(e)))?;
        Ok(Some((checkpoint.size, checkpoint.root)))
    }

    /// Reads complete lines from this handle's offset to the end, checking
    /// that they chain, and folds them into the tree if there is one.
    fn read_new_lines(&mut self) -> Result<(), AuditError> {
        let len = self.file_len()?;
        if len < self.offset {
            return Err(AuditError::LogShrank { path: self.path.clone(), expected: self.offset, found: len });
        }
        if len == self.offset {
            return Ok(());
        }
        let start = self.offset;
        let mut reader = LineReader::new(PositionedReader { file: &self.file, at: start }.take(len - start), start);
        let tree = &mut self.tree;
        let mut at = start;
        let walked = walk(&mut reader, self.cursor.clone(), WalkScope::default(), |_, line, _| {
            if let Some(tree) = tree.as_mut() {
                tree.push(leaf_hash(line), at);
            }
            at += line.len() as u64 + 1;
        });
        let end = match walked {
            Ok(end) => end,
            Err(error) => {
                // The tree may hold part of what was read: reopen it next time.
                self.tree = None;
                return Err(self.walk_error(error));
            }
        };
        self.cursor = end.cursor;
        self.offset = end.committed_offset;
        if let Some((offset, _)) = end.torn {
            self.recover_torn_tail(offset, len)?;
        }
        Ok(())
    }

    /// Moves the uncommitted bytes `start..end` aside and records that in
    /// the log. Called under the lock, with `start` just past the last
    /// newline, so only bytes of a write that never completed are removed.
    fn recover_torn_tail(&mut self, start: u64, end: u64) -> Result<(), AuditError> {
        self.refuse_to_cut_checkpointed_entries()?;
        let length = end - start;
        // Save the bytes durably before cutting them: afterwards this copy
        // is the only one.
        let (saved_to, sha256) = self.save_torn_bytes(start, length)?;
        self.file.set_len(start).map_err(|e| AuditError::io("cut the torn tail of", &self.path, e))?;
        self.file.sync_all().map_err(|e| AuditError::io("sync", &self.path, e))?;
        tracing::warn!(
            log = %self.path.display(),
            offset = start,
            length,
            saved_to = %saved_to.display(),
            "moved a torn, uncommitted tail aside"
        );
        let mut data = Map::new();
        data.insert("offset".into(), Value::from(start));
        data.insert("length".into(), Value::from(length));
        data.insert("sha256".into(), Value::from(sha256.to_hex()));
        let saved_name = saved_to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        data.insert("saved_to".into(), Value::from(saved_name));
        let event = Event::new(kinds::AUDIT_RECOVERED, Actor::this_process(), data);
        let receipts = self.write_events(std::slice::from_ref(&event))?;
        self.recoveries.push(Recovery {
            seq: receipts.first().map_or(0, |r| r.seq),
            offset: start,
            length,
            sha256,
            saved_to,
        });
        Ok(())
    }

    /// A torn tail is bytes a crash left after the last newline: never
    /// committed, because a checkpoint is only written after its entries are
    /// synced. So if the checkpoint covers more entries than end in a newline,
    /// the tail is a committed entry that lost its newline (or more), and
    /// cutting it would destroy history: that is tampering, reported with the
    /// first entry it concerns. An unreadable checkpoint is refused too: with
    /// it nothing can tell a crash from an attack.
    fn refuse_to_cut_checkpointed_entries(&self) -> Result<(), AuditError> {
        let Some(bytes) = read_checkpoint_file(&self.checkpoint_path)
            .map_err(|e| AuditError::io("read", &self.checkpoint_path, e))?
        else {
            return Ok(());
        };
        let signed = parse_checkpoint_bytes(&bytes)
            .map_err(|error| self.tampered(None, TamperReason::MalformedCheckpoint { error }))?;
        let complete = self.cursor.next_seq;
        let checkpoint_size = signed.checkpoint.size;
        if checkpoint_size > complete {
            return Err(self.tampered(Some(complete), TamperReason::CheckpointedTailCut { complete, checkpoint_size }));
        }
        Ok(())
    }

    fn save_torn_bytes(&self, start: u64, length: u64) -> Result<(PathBuf, Sha256Hash), AuditError> {
        let dir = parent_dir(&self.path);
        let base = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stamp = signer::manifest::format_compact_utc(OffsetDateTime::now_utc());
        let mut attempt = 0u32;
        let (saved_to, mut out) = loop {
            let name = match attempt {
                0 => format!("{base}.recovered-{stamp}"),
                n => format!("{base}.recovered-{stamp}-{n}"),
            };
            let candidate = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&candidate) {
                Ok(file) => break (candidate, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 10_000 => attempt += 1,
                Err(e) => return Err(AuditError::io("create", &candidate, e)),
            }
        };
        let mut hasher = Sha256::new();
        let mut source = &self.file;
        source.seek(SeekFrom::Start(start)).map_err(|e| AuditError::io("read", &self.path, e))?;
        let mut source = source.take(length);
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let n = match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AuditError::io("read", &self.path, e)),
            };
            hasher.update(&chunk[..n]);
            out.write_all(&chunk[..n]).map_err(|e| AuditError::io("write", &saved_to, e))?;
        }
        out.sync_all().map_err(|e| AuditError::io("sync", &saved_to, e))?;
        sync_dir(&dir).map_err(|e| AuditError::io("sync the directory of", &saved_to, e))?;
        Ok((saved_to, Sha256Hash(hasher.finalize().into())))
    }

    /// Encodes `events` after the current head and writes them with one
    /// write and one fsync. Called under the lock with the head up to date.
    fn write_events(&mut self, events: &[Event]) -> Result<Vec<AppendReceipt>, AuditError> {
        let time = now_text();
        let mut cursor = self.cursor.clone();
        let mut buffer = Vec::new();
        let mut receipts = Vec::with_capacity(events.len());
        let mut leaves = Vec::new();
        for event in events {
            let line = encode_line(event, cursor.next_seq, &time, &cursor.last_hash, None)?;
            if self.tree.is_some() {
                leaves.push((leaf_hash(&line.bytes), self.offset + buffer.len() as u64));
            }
            buffer.extend_from_slice(&line.bytes);
            buffer.push(b'\n');
            receipts.push(AppendReceipt { seq: cursor.next_seq, hash: line.hash });
            cursor.next_seq += 1;
            cursor.last_hash = line.hash;
        }
        if let Err(e) = write_lines(&self.file, &buffer) {
            // Whatever part did land was never committed: cut it back now
            // rather than leave it for recovery.
            let _ = self.file.set_len(self.offset);
            return Err(AuditError::io("append to", &self.path, e));
        }
        // On failure the lines stay in the file; the next catch-up reads
        // them like another writer's, so the head stays right.
        self.file.sync_data().map_err(|e| AuditError::io("sync", &self.path, e))?;
        self.cursor = cursor;
        self.offset += buffer.len() as u64;
        if let Some(tree) = self.tree.as_mut() {
            for (leaf, offset) in leaves {
                tree.push(leaf, offset);
            }
            // After the log's sync, so the state is never ahead of the log.
            if let Err(e) = tree.flush() {
                self.tree = None;
                return Err(AuditError::io("write the merkle state of", &self.path, e));
            }
        }
        Ok(receipts)
    }

    fn publish_checkpoint(&mut self, signer: &CheckpointSigner) -> Result<SignedCheckpoint, AuditError> {
        // `catch_up` with a signer, which always comes first, opens the tree.
        let root = match &self.tree {
            Some(tree) => tree.root(),
            None => return Err(AuditError::io("checkpoint", &self.path, io::Error::other("merkle state not open"))),
        };
        let signed = signer.sign(self.cursor.next_seq, root);
        write_checkpoint_file(&self.checkpoint_path, signed.to_signed_note().as_bytes())
            .map_err(|e| AuditError::io("write", &self.checkpoint_path, e))?;
        self.agreed_checkpoint = Some((self.cursor.next_seq, root));
        Ok(signed)
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// The offset of the last `\n` in `lo..hi`, reading backwards in chunks.
fn rfind_newline(file: &File, lo: u64, hi: u64) -> io::Result<Option<u64>> {
    let mut chunk = vec![0; 64 * 1024];
    let mut end = hi;
    while end > lo {
        let start = end.saturating_sub(chunk.len() as u64).max(lo);
        let piece = &mut chunk[..(end - start) as usize];
        read_exact_at(file, piece, start)?;
        if let Some(i) = memchr::memrchr(b'\n', piece) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// Test hook: with this set to `N`, the `N`th append of this process and
/// every later one write the first half of their lines, then stop for a
/// minute before the rest, so that a crash test can SIGKILL a writer inside
/// its write for certain rather than by luck. Never set it in production.
pub const TORN_WRITE_HOOK_ENV: &str = "NIGHTCORE_TEST_AUDIT_TEAR_FROM_APPEND";

/// Writes an append's lines: in one `write(2)` (as far as the kernel allows),
/// or split by the [`TORN_WRITE_HOOK_ENV`] hook.
fn write_lines(file: &File, buffer: &[u8]) -> io::Result<()> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TEAR_FROM: OnceLock<Option<u64>> = OnceLock::new();
    static APPENDS: AtomicU64 = AtomicU64::new(0);
    let tear_from = *TEAR_FROM.get_or_init(|| std::env::var(TORN_WRITE_HOOK_ENV).ok().and_then(|n| n.parse().ok()));
    let append = APPENDS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut file = file;
    match tear_from {
        Some(from) if append >= from && buffer.len() > 1 => {
            let (first, rest) = buffer.split_at(buffer.len() / 2);
            file.write_all(first)?;
            tracing::warn!(append, "test hook: append paused inside its write");
            std::thread::sleep(std::time::Duration::from_secs(60));
            file.write_all(rest)
        }
        _ => file.write_all(buffer),
    }
}
