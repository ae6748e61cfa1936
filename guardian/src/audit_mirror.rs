//! A verified mirror of the audit log and its checkpoint, so that tampering
//! with either is not only detected but undone.
//!
//! The mirror is a byte copy of the log's committed lines and of its
//! checkpoint as they were when last verified, kept in
//! `STATE/audit-mirror/`, with the mirror's chain head and Merkle tree held
//! in memory. A check reads the live checkpoint first and the log second
//! (writers write them in the other order, so a concurrent append never
//! looks like tampering), and then:
//!
//! - the live log must start with the mirror's bytes, compared byte for
//!   byte: anything else is a rewrite (`rewritten`), a shorter file
//!   (`truncated`, which also covers an older copy put back) or a missing one
//!   (`deleted`);
//! - every complete line after that must be a canonical entry continuing the
//!   chain (seq, prev, its own hash): otherwise `malformed_line` or
//!   `forged_append`;
//! - a changed checkpoint must verify with the trusted key, must not cover
//!   fewer entries than the mirrored one (`checkpoint_rolled_back`) and must
//!   sign the Merkle root of the entries it covers.
//!
//! If all hold, the new lines are appended to the mirror and the checkpoint
//! copied. When the log grew, a check compares, of the already-mirrored
//! bytes, only the last line (the chain head the appended lines must link
//! to), so it costs O(appended bytes) however long the log is. The whole
//! prefix is compared byte for byte when the log was written without growing
//! (writers only append: an edit in place), when it is another file (another
//! inode: replaced, restored, rewritten by an editor) and on every full scan
//! ([`AuditMirror::require_full_comparison`]: at start-up and each rescan
//! interval). So only an edit in place that lands together with an append is
//! left to the next full scan; every other change is found at once. (A writer
//! never signs over such an edit meanwhile: its roots come from the Merkle
//! state the last checkpoint vouched for, see `audit::tree`.) Otherwise the finding is returned and
//! [`AuditMirror::restore`] quarantines the tampered live file(s) and puts
//! the mirror back (copy beside, fsync, rename, under the log's write lock
//! so no writer is mid-append). The mirror itself is verified in full with
//! `audit::verify_log` when the guardian starts.
//!
//! Before any checkpoint exists (writers that do not sign), only the chain
//! is checked; once the mirror holds a checkpoint, a missing live one is
//! tampering. Without a trusted key at all, checkpoints are ignored and the
//! chain alone is checked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use audit::merkle::{CompactTree, leaf_hash};
use audit::{Entry, Sha256Hash, SignedCheckpoint, TamperReason, VerifyReport, verify_log};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use sha2::Digest;
use signer::fsutil::{FileMode, atomic_write, sync_dir, temp_path_beside};

use crate::quarantine::{Quarantine, QuarantineError};

const MIRROR_LOG: &str = "audit.log";
const MIRROR_CHECKPOINT: &str = "audit.log.checkpoint";
const CANDIDATE_LOG: &str = ".candidate.log";
const CANDIDATE_CHECKPOINT: &str = ".candidate.checkpoint";
const NO_CHECKPOINT: &str = ".no-checkpoint";

/// Which live file was found tampered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperedFile {
    Checkpoint,
    Log,
}

/// A finding about the live audit files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditTamper {
    pub file: TamperedFile,
    /// `rewritten`, `truncated`, `deleted`, `checkpoint_deleted`,
    /// `checkpoint_rolled_back`, or the audit library's own tamper reason
    /// (`forged_append`, `forged_checkpoint`, `checkpoint_root_mismatch`, …).
    pub reason: String,
    pub detail: String,
    /// Entries in the verified mirror.
    pub mirror_entries: u64,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    /// The live files are the ones last verified.
    Unchanged,
    /// The log was extended correctly; the mirror now has `entries` entries.
    Extended {
        entries: u64,
    },
    Tampered(AuditTamper),
}

/// Why the mirror could not do its work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Read(#[from] audit::ReadError),
    #[error(
        "the verified audit mirror in {path} is itself corrupt ({reason}); move it aside to re-seed it from the live log"
    )]
    MirrorCorrupt { path: PathBuf, reason: String },
    #[error(
        "audit log {path} does not verify ({reason}) and there is no verified mirror to restore it from; run `guardian audit verify`"
    )]
    TamperedWithoutMirror { path: PathBuf, reason: String },
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MirrorError + '_ {
    move |source| MirrorError::Io { path: path.to_path_buf(), source }
}

/// Identity and change times of the live files: if none of them moved, the
/// files were not written since the last check (any write changes ctime).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Option<[i64; 6]>, Option<[i64; 6]>);

fn stamp(path: &Path) -> Option<[i64; 6]> {
    let m = fs::symlink_metadata(path).ok()?;
    Some([m.ino() as i64, m.size() as i64, m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()])
}

/// How a log verifies with or without a checkpoint.
enum Judgement {
    Good,
    Bad { reason: String, detail: String },
}

/// The verified mirror of one audit log.
#[derive(Debug)]
pub struct AuditMirror {
    log: PathBuf,
    checkpoint: PathBuf,
    dir: PathBuf,
    key: Option<VerifyingKey>,
    seen: Option<Fingerprint>,
    /// Length, entry count, chain head and Merkle tree of the mirror log,
    /// and where its last line starts.
    mirror_len: u64,
    last_line_start: u64,
    mirror_entries: u64,
    last_hash: Sha256Hash,
    tree: CompactTree,
    /// The mirrored checkpoint's bytes (only with a trusted key).
    mirror_checkpoint: Option<Vec<u8>>,
    /// The live log's inode at the last good check, and whether the next
    /// check must compare the whole mirrored prefix anyway.
    verified_inode: Option<u64>,
    compare_whole_prefix: bool,
}

impl AuditMirror {
    /// Opens the mirror in `dir` for the live `log` and `checkpoint`,
    /// trusting checkpoints signed by `key`. The mirror itself must verify
    /// (it is read in full once, here); an absent mirror is seeded from the
    /// live files, which must verify.
    pub fn open(dir: &Path, log: &Path, checkpoint: &Path, key: Option<VerifyingKey>) -> Result<Self, MirrorError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut mirror = AuditMirror {
            log: log.to_path_buf(),
            checkpoint: checkpoint.to_path_buf(),
            dir: dir.to_path_buf(),
            key,
            seen: None,
            mirror_len: 0,
            last_line_start: 0,
            mirror_entries: 0,
            last_hash: Sha256Hash::default(),
            tree: CompactTree::new(),
            mirror_checkpoint: None,
            verified_inode: None,
            compare_whole_prefix: true,
        };
        let mirror_log = mirror.dir.join(MIRROR_LOG);
        if !mirror_log.exists() {
            // Seed from the live files, checked in full.
            let candidate_log = mirror.dir.join(CANDIDATE_LOG);
            let candidate_checkpoint = mirror.dir.join(CANDIDATE_CHECKPOINT);
            let has_checkpoint =
                mirror.key.is_some() && copy_if_exists(&mirror.checkpoint, &candidate_checkpoint, CopyExtent::Whole)?;
            if !copy_if_exists(&mirror.log, &candidate_log, CopyExtent::CommittedLines)? {
                atomic_write(&candidate_log, b"", FileMode::OwnerOnly).map_err(io_err(&candidate_log))?;
            }
            if let Judgement::Bad { reason, detail } =
                mirror.judge(&candidate_log, has_checkpoint.then_some(candidate_checkpoint.as_path()))?
            {
                return Err(MirrorError::TamperedWithoutMirror {
                    path: log.to_path_buf(),
                    reason: format!("{reason}: {detail}"),
                });
            }
            if has_checkpoint {
                fs::rename(&candidate_checkpoint, mirror.dir.join(MIRROR_CHECKPOINT)).map_err(io_err(&mirror.dir))?;
            }
            fs::rename(&candidate_log, &mirror_log).map_err(io_err(&mirror_log))?;
            sync_dir(&mirror.dir).map_err(io_err(&mirror.dir))?;
        }
        // A crash while appending to the mirror leaves a torn line: cut it.
        let committed = committed_length(&mirror_log)?;
        let file = OpenOptions::new().write(true).open(&mirror_log).map_err(io_err(&mirror_log))?;
        file.set_len(committed).map_err(io_err(&mirror_log))?;
        let mirror_checkpoint_path = mirror.dir.join(MIRROR_CHECKPOINT);
        let checkpoint_path = mirror_checkpoint_path.exists().then_some(mirror_checkpoint_path.as_path());
        if let Judgement::Bad { reason, detail } = mirror.judge(&mirror_log, checkpoint_path)? {
            return Err(MirrorError::MirrorCorrupt { path: mirror.dir.clone(), reason: format!("{reason}: {detail}") });
        }
        mirror.load()?;
        Ok(mirror)
    }

    /// Reads the mirror log once to learn its length, head and Merkle tree.
    fn load(&mut self) -> Result<(), MirrorError> {
        let path = self.dir.join(MIRROR_LOG);
        // Streamed: the mirror is as large as the log.
        let mut reader = io::BufReader::with_capacity(256 * 1024, File::open(&path).map_err(io_err(&path))?);
        let mut tree = CompactTree::new();
        let (mut line, mut last, mut length, mut last_start) = (Vec::new(), Vec::new(), 0u64, 0u64);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            if !content.is_empty() {
                tree.push(leaf_hash(content));
                last.clear();
                last.extend_from_slice(content);
                last_start = length;
            }
            length += n as u64;
        }
        self.last_hash = if last.is_empty() {
            Sha256Hash::default()
        } else {
            Entry::from_line(&last)
                .map_err(|e| MirrorError::MirrorCorrupt { path: path.clone(), reason: e.to_string() })?
                .hash
        };
        self.mirror_len = length;
        self.last_line_start = last_start;
        self.mirror_entries = tree.size();
        self.tree = tree;
        let checkpoint = self.dir.join(MIRROR_CHECKPOINT);
        self.mirror_checkpoint = if self.key.is_some() && checkpoint.exists() {
            let bytes = signer::fsutil::read_capped(&checkpoint, audit::checkpoint::MAX_CHECKPOINT_BYTES)
                .map_err(|e| MirrorError::MirrorCorrupt { path: checkpoint.clone(), reason: e.to_string() })?;
            Some(bytes)
        } else {
            None
        };
        Ok(())
    }

    pub fn mirror_entries(&self) -> u64 {
        self.mirror_entries
    }

    /// Makes the next [`AuditMirror::check`] compare every mirrored byte with
    /// the live log, not only the last line: what a full scan does.
    pub fn require_full_comparison(&mut self) {
        self.compare_whole_prefix = true;
        self.seen = None;
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint(stamp(&self.log), stamp(&self.checkpoint))
    }

    fn tampered(&self, file: TamperedFile, reason: &str, detail: String) -> AuditCheck {
        AuditCheck::Tampered(AuditTamper {
            file,
            reason: reason.to_string(),
            detail,
            mirror_entries: self.mirror_entries,
        })
    }

    /// Compares the live files with the mirror; see the module docs. Only
    /// what was appended since the last check is parsed and hashed; the
    /// rest is compared byte for byte with the mirror.
    pub fn check(&mut self) -> Result<AuditCheck, MirrorError> {
        let fingerprint = self.fingerprint();
        if self.seen.as_ref() == Some(&fingerprint) {
            return Ok(AuditCheck::Unchanged);
        }
        // The checkpoint first: writers write it after the log, so it never
        // covers entries the log read below lacks.
        let live_checkpoint = if self.key.is_some() {
            match read_checkpoint(&self.checkpoint)? {
                Ok(bytes) => bytes,
                Err(detail) => return Ok(self.tampered(TamperedFile::Checkpoint, "malformed_checkpoint", detail)),
            }
        } else {
            None
        };
        let mut live = match open_live(&self.log)? {
            Live::File(file) => file,
            Live::Missing => {
                if self.mirror_len > 0 {
                    return Ok(self.tampered(TamperedFile::Log, "deleted", format!("{} is gone", self.log.display())));
                }
                self.seen = Some(fingerprint);
                return Ok(AuditCheck::Unchanged);
            }
            Live::NotRegular(detail) => return Ok(self.tampered(TamperedFile::Log, "not_a_regular_file", detail)),
        };
        let live_meta = live.metadata().map_err(io_err(&self.log))?;
        let live_len = live_meta.len();
        let mirror_log = self.dir.join(MIRROR_LOG);
        let compared = self.mirror_len.min(live_len);
        // How much of the mirrored prefix to compare (see the module docs):
        // for the same file grown by appends, its last mirrored line; for the
        // same file not written since, nothing; otherwise (another file, a
        // write that did not grow it, a full scan) all of it.
        let same_file = self.verified_inode == Some(live_meta.ino()) && !self.compare_whole_prefix;
        let log_unwritten = self.seen.as_ref().is_some_and(|seen| seen.0 == fingerprint.0);
        let from = match (same_file, live_len > self.mirror_len, log_unwritten) {
            (true, true, _) => self.last_line_start.min(compared),
            (true, false, true) => compared,
            _ => 0,
        };
        let difference = first_difference(&mirror_log, &self.log, from, compared)?;
        if difference.is_some() || live_len < self.mirror_len {
            let (reason, at) = match difference {
                Some(offset) => ("rewritten", offset),
                None => ("truncated", live_len),
            };
            let mirror_checkpoint = self.dir.join(MIRROR_CHECKPOINT);
            let why =
                match self.judge(&self.log, self.mirror_checkpoint.is_some().then_some(mirror_checkpoint.as_path()))? {
                    Judgement::Bad { reason, detail } => format!("; the audit library finds {reason}: {detail}"),
                    Judgement::Good => String::new(),
                };
            let detail = format!(
                "{} differs from the verified copy at byte {at} of {}{why}",
                self.log.display(),
                self.mirror_len
            );
            return Ok(self.tampered(TamperedFile::Log, reason, detail));
        }

        // The appended tail: complete lines only, each continuing the chain.
        // Streamed one line at a time within the entry size cap, so whatever
        // is appended (600 MB of junk, say) costs one line of memory; the
        // bytes checked are hashed so that the copy into the mirror below can
        // prove it copies exactly them.
        live.seek(SeekFrom::Start(self.mirror_len)).map_err(io_err(&self.log))?;
        let mut reader = io::BufReader::with_capacity(256 * 1024, (&live).take(live_len - self.mirror_len));
        let mut tail_hash = sha2::Sha256::new();
        let mut tail_len = 0u64;
        let mut last_line_start = self.last_line_start;
        let mut line = Vec::new();
        let mut tree = self.tree.clone();
        let (mut next_seq, mut last_hash) = (self.mirror_entries, self.last_hash);
        loop {
            line.clear();
            let read = (&mut reader)
                .take(audit::MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(io_err(&self.log))?;
            if read == 0 || line.last() != Some(&b'\n') {
                if line.len() > audit::MAX_LINE_BYTES {
                    let at = format!("entry {next_seq} appended after the verified {}", self.mirror_entries);
                    let detail = format!("{at}: a line of over {} bytes", audit::MAX_LINE_BYTES);
                    return Ok(self.tampered(TamperedFile::Log, "malformed_line", detail));
                }
                // End of the file, or a torn line still being written.
                break;
            }
            tail_hash.update(&line);
            let line_start = self.mirror_len + tail_len;
            tail_len += line.len() as u64;
            let line = &line[..line.len() - 1];
            if line.is_empty() {
                continue;
            }
            last_line_start = line_start;
            let at = format!("entry {next_seq} appended after the verified {}", self.mirror_entries);
            let entry = match Entry::from_line(line) {
                Ok(entry) => entry,
                Err(e) => return Ok(self.tampered(TamperedFile::Log, "malformed_line", format!("{at}: {e}"))),
            };
            if entry.seq != next_seq || entry.prev != last_hash {
                return Ok(self.tampered(
                    TamperedFile::Log,
                    "forged_append",
                    format!("{at}: seq {} prev {} do not continue the chain", entry.seq, entry.prev.to_hex()),
                ));
            }
            match entry.computed_hash() {
                Ok(hash) if hash == entry.hash => {}
                _ => {
                    return Ok(self.tampered(
                        TamperedFile::Log,
                        "forged_append",
                        format!("{at}: its hash does not match its contents"),
                    ));
                }
            }
            tree.push(leaf_hash(line));
            next_seq += 1;
            last_hash = entry.hash;
        }

        if self.key.is_some()
            && live_checkpoint != self.mirror_checkpoint
            && let Some(finding) = self.check_checkpoint(live_checkpoint.as_deref(), &tree)?
        {
            return Ok(finding);
        }

        // Extend the mirror: append the tail, then the checkpoint.
        if tail_len > 0 {
            self.append_verified_tail(&live, tail_len, &tail_hash.finalize().into())?;
        }
        if live_checkpoint != self.mirror_checkpoint {
            if let Some(bytes) = &live_checkpoint {
                let path = self.dir.join(MIRROR_CHECKPOINT);
                atomic_write(&path, bytes, FileMode::Public).map_err(io_err(&path))?;
            }
            self.mirror_checkpoint = live_checkpoint;
        }
        self.mirror_len += tail_len;
        self.last_line_start = last_line_start;
        self.verified_inode = Some(live_meta.ino());
        self.compare_whole_prefix = false;
        self.mirror_entries = next_seq;
        self.last_hash = last_hash;
        self.tree = tree;
        self.seen = Some(fingerprint);
        Ok(AuditCheck::Extended { entries: next_seq })
    }

    /// Copies the `len` bytes after the mirrored prefix of `live` onto the
    /// mirror, streamed, and checks they hash to `verified` (what was checked
    /// line by line): bytes rewritten between the check and the copy never
    /// reach the mirror. On a mismatch the mirror is cut back.
    fn append_verified_tail(&self, live: &File, len: u64, verified: &[u8; 32]) -> Result<(), MirrorError> {
        let mirror_log = self.dir.join(MIRROR_LOG);
        let mut source = live;
        source.seek(SeekFrom::Start(self.mirror_len)).map_err(io_err(&self.log))?;
        let mut out = OpenOptions::new().append(true).open(&mirror_log).map_err(io_err(&mirror_log))?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut source = source.take(len);
        let mut copied = 0u64;
        loop {
            let n = read_full(&mut source, &mut buffer).map_err(io_err(&self.log))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).map_err(io_err(&mirror_log))?;
            copied += n as u64;
        }
        let copied_hash: [u8; 32] = hasher.finalize().into();
        if copied != len || &copied_hash != verified {
            out.set_len(self.mirror_len).map_err(io_err(&mirror_log))?;
            return Err(MirrorError::Io {
                path: self.log.clone(),
                source: io::Error::other("the appended entries changed while they were being mirrored"),
            });
        }
        out.sync_data().map_err(io_err(&mirror_log))
    }

    /// A changed checkpoint must be signed by the trusted key, must not go
    /// back, and must commit to the entries the log has.
    fn check_checkpoint(&self, live: Option<&[u8]>, tree: &CompactTree) -> Result<Option<AuditCheck>, MirrorError> {
        let file = TamperedFile::Checkpoint;
        let Some(bytes) = live else {
            return Ok(Some(self.tampered(
                file,
                "checkpoint_deleted",
                format!("{} is gone", self.checkpoint.display()),
            )));
        };
        let Some(key) = &self.key else { return Ok(None) };
        let text = String::from_utf8_lossy(bytes);
        let signed = match SignedCheckpoint::parse(&text) {
            Ok(signed) => signed,
            Err(error) => return Ok(Some(self.tampered(file, "malformed_checkpoint", error.to_string()))),
        };
        let checkpoint = match signed.verify(key) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                let reason = match e {
                    audit::CheckpointVerifyError::UnknownKey { .. } => "unknown_checkpoint_key",
                    _ => "forged_checkpoint",
                };
                return Ok(Some(self.tampered(file, reason, e.to_string())));
            }
        };
        let old = self
            .mirror_checkpoint
            .as_deref()
            .and_then(|b| SignedCheckpoint::parse(&String::from_utf8_lossy(b)).ok())
            .map(|c| c.checkpoint.size);
        if let Some(old) = old.filter(|&old| checkpoint.size < old) {
            let detail = format!("the checkpoint covers {} entries, the verified one covered {old}", checkpoint.size);
            return Ok(Some(self.tampered(file, "checkpoint_rolled_back", detail)));
        }
        if checkpoint.size > tree.size() {
            let detail = format!("the checkpoint covers {} entries but the log has {}", checkpoint.size, tree.size());
            return Ok(Some(self.tampered(file, "truncated", detail)));
        }
        let root = if checkpoint.size == tree.size() {
            Some(tree.root())
        } else if checkpoint.size == self.tree.size() {
            Some(self.tree.root())
        } else {
            None
        };
        match root {
            Some(root) if root == checkpoint.root => Ok(None),
            Some(root) => {
                let detail = format!(
                    "the checkpoint signs root {} for {} entries, the log has {}",
                    checkpoint.root.to_hex(),
                    checkpoint.size,
                    root.to_hex()
                );
                Ok(Some(self.tampered(file, "checkpoint_root_mismatch", detail)))
            }
            // A size between the two: rare; let the audit library walk the log.
            None => match self.judge(&self.log, Some(&self.checkpoint))? {
                Judgement::Good => Ok(None),
                Judgement::Bad { reason, detail } => Ok(Some(self.tampered(file, &reason, detail))),
            },
        }
    }

    /// Verifies `log` under `checkpoint` (or none), with the trusted key.
    fn judge(&self, log: &Path, checkpoint: Option<&Path>) -> Result<Judgement, MirrorError> {
        // A key nobody holds stands in when there is no trusted key: with no
        // checkpoint file it is never consulted, and the chain is still walked.
        let fallback = VerifyingKey::from_bytes(&[0; 32]).ok();
        let Some(key) = self.key.or(fallback) else {
            return Ok(Judgement::Good);
        };
        let none = self.dir.join(NO_CHECKPOINT);
        let checkpoint = if self.key.is_some() { checkpoint.unwrap_or(&none) } else { &none };
        Ok(match verify_log(log, checkpoint, &key)? {
            VerifyReport::Intact(_) => Judgement::Good,
            VerifyReport::Tampered(t) => match t.reason {
                // Only reported once the whole chain was walked and found sound.
                TamperReason::CheckpointMissing { .. } if checkpoint == none.as_path() => Judgement::Good,
                ref reason => Judgement::Bad { reason: tamper_code(reason), detail: t.to_string() },
            },
        })
    }

    /// Undoes `tamper`: quarantines the tampered live file(s) and puts the
    /// verified bytes back. Returns the quarantine paths.
    pub fn restore(&mut self, tamper: &AuditTamper, quarantine: &Quarantine) -> Result<Vec<PathBuf>, MirrorError> {
        // Writers append under this lock; holding it means none is mid-write.
        // (A writer that opened the old file before the swap appends to it
        // in quarantine: that is the evidence trail, not the live log.)
        let lock = match OpenOptions::new().read(true).append(true).open(&self.log) {
            Ok(file) => {
                file.lock().map_err(io_err(&self.log))?;
                Some(file)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&self.log)(e)),
        };
        let mut quarantined = Vec::new();
        let mut targets = Vec::new();
        if self.key.is_some() {
            targets.push((self.checkpoint.clone(), MIRROR_CHECKPOINT, "audit-checkpoint"));
        }
        if tamper.file == TamperedFile::Log {
            targets.push((self.log.clone(), MIRROR_LOG, "audit-log"));
        }
        for (live, mirror_name, label) in targets {
            let mirror = self.dir.join(mirror_name);
            let live_exists = fs::symlink_metadata(&live).is_ok();
            let same = live_exists && mirror.exists() && files_equal(&live, &mirror)?;
            if same {
                continue;
            }
            if mirror.exists() {
                let tmp = temp_path_beside(&live);
                copy_if_exists(&mirror, &tmp, CopyExtent::Whole)?;
                if live_exists {
                    quarantined.push(quarantine.take(&live, label)?);
                }
                fs::rename(&tmp, &live).map_err(io_err(&live))?;
            } else if live_exists && tamper.file == TamperedFile::Checkpoint {
                quarantined.push(quarantine.take(&live, label)?);
            }
        }
        if tamper.file == TamperedFile::Log {
            // The Merkle state beside the log describes the log just
            // replaced: kept as evidence, and rebuilt from the restored log by
            // its next writer (recorded there as `audit.tree_rebuilt`).
            let state = [
                (audit::tree::hashes_path(&self.log), "audit-tree-hashes"),
                (audit::tree::index_path(&self.log), "audit-tree-index"),
            ];
            for (live, label) in state {
                if fs::symlink_metadata(&live).is_ok() {
                    quarantined.push(quarantine.take(&live, label)?);
                }
            }
        }
        let dir = live_parent(&self.log);
        sync_dir(&dir).map_err(io_err(&dir))?;
        drop(lock);
        self.seen = None;
        self.compare_whole_prefix = true;
        Ok(quarantined)
    }
}

/// The live checkpoint: `Ok(Ok(None))` when there is none, `Ok(Err(why))`
/// when what is there cannot be a checkpoint (too large, a FIFO, a device,
/// a link), which is tampering; capped, so `/dev/zero` behind a link costs
/// nothing.
fn read_checkpoint(path: &Path) -> Result<Result<Option<Vec<u8>>, String>, MirrorError> {
    use signer::fsutil::{ReadCappedError, read_capped};
    match read_capped(path, audit::checkpoint::MAX_CHECKPOINT_BYTES) {
        Ok(bytes) => Ok(Ok(Some(bytes))),
        Err(ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(Ok(None)),
        Err(ReadCappedError::Io { source, .. }) => Err(io_err(path)(source)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// The live log, opened only if it is a regular file (never blocking on a
/// FIFO, never following a link).
enum Live {
    File(File),
    Missing,
    NotRegular(String),
}

fn open_live(path: &Path) -> Result<Live, MirrorError> {
    use signer::fsutil::{ReadCappedError, open_regular};
    match open_regular(path) {
        Ok((file, _)) => Ok(Live::File(file)),
        Err(ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(Live::Missing),
        Err(ReadCappedError::Io { source, .. }) => Err(io_err(path)(source)),
        Err(e) => Ok(Live::NotRegular(e.to_string())),
    }
}

/// The length of `path` up to and including its last newline, read
/// backwards from the end in chunks (the mirror can be large).
fn committed_length(path: &Path) -> Result<u64, MirrorError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut end = file.metadata().map_err(io_err(path))?.len();
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let piece = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        file.read_exact(piece).map_err(io_err(path))?;
        if let Some(i) = piece.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn live_parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The `reason` tag the audit library gives a finding (`edited_entry`, …).
fn tamper_code(reason: &TamperReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
        .unwrap_or_else(|| "tampered".to_string())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CopyExtent {
    Whole,
    /// Up to and including the last newline: a torn line being written is
    /// not committed and not copied.
    CommittedLines,
}

/// Copies `from` to a fresh `to` (flushed); false if `from` does not exist.
fn copy_if_exists(from: &Path, to: &Path, extent: CopyExtent) -> Result<bool, MirrorError> {
    let mut source = match open_live(from)? {
        Live::File(f) => f,
        Live::Missing => {
            let _ = fs::remove_file(to);
            return Ok(false);
        }
        Live::NotRegular(detail) => return Err(io_err(from)(io::Error::new(io::ErrorKind::InvalidInput, detail))),
    };
    let _ = fs::remove_file(to);
    let mut out = OpenOptions::new().write(true).create_new(true).open(to).map_err(io_err(to))?;
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut written, mut committed) = (0u64, 0u64);
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(from)(e)),
        };
        out.write_all(&buffer[..n]).map_err(io_err(to))?;
        if let Some(i) = buffer[..n].iter().rposition(|&b| b == b'\n') {
            committed = written + i as u64 + 1;
        }
        written += n as u64;
    }
    if extent == CopyExtent::CommittedLines && committed < written {
        out.set_len(committed).map_err(io_err(to))?;
    }
    out.sync_all().map_err(io_err(to))?;
    Ok(true)
}

/// The first offset in `from..len` where `a` and `b` differ, if any.
fn first_difference(a: &Path, b: &Path, from: u64, len: u64) -> Result<Option<u64>, MirrorError> {
    let open = |path: &Path| match open_live(path)? {
        Live::File(mut file) => {
            file.seek(SeekFrom::Start(from)).map_err(io_err(path))?;
            Ok(file.take(len.saturating_sub(from)))
        }
        Live::Missing => Err(io_err(path)(io::ErrorKind::NotFound.into())),
        Live::NotRegular(detail) => Err(io_err(path)(io::Error::new(io::ErrorKind::InvalidInput, detail))),
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
    let mut offset = from;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(io_err(a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(io_err(b))?;
        if let Some(i) = ba[..na.min(nb)].iter().zip(&bb[..na.min(nb)]).position(|(x, y)| x != y) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + na.min(nb) as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += na as u64;
    }
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn files_equal(a: &Path, b: &Path) -> Result<bool, MirrorError> {
    let (la, lb) = (fs::metadata(a).map_err(io_err(a))?.len(), fs::metadata(b).map_err(io_err(b))?.len());
    Ok(la == lb && first_difference(a, b, 0, la)?.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::{Actor, AuditLog, CheckpointSigner, Event, LogOptions};
    use ed25519_dalek::SigningKey;

    struct Fixture {
        dir: tempfile::TempDir,
        key: SigningKey,
    }

    impl Fixture {
        fn new() -> Self {
            Self { dir: tempfile::tempdir().unwrap(), key: SigningKey::from_bytes(&[7; 32]) }
        }
        fn log(&self) -> PathBuf {
            self.dir.path().join("audit.log")
        }
        fn checkpoint(&self) -> PathBuf {
            audit::default_checkpoint_path(&self.log())
        }
        fn append(&self, n: usize) {
            let signer = CheckpointSigner::new("test/log", self.key.clone()).unwrap();
            let mut log =
                AuditLog::open_with(self.log(), LogOptions { checkpoint_signer: Some(signer), checkpoint_path: None })
                    .unwrap();
            for i in 0..n {
                let mut data = serde_json::Map::new();
                data.insert("i".into(), i.into());
                log.append(&Event::new("test.event", Actor::new("t", "h"), data)).unwrap();
            }
        }
        fn mirror(&self) -> AuditMirror {
            AuditMirror::open(
                &self.dir.path().join("mirror"),
                &self.log(),
                &self.checkpoint(),
                Some(self.key.verifying_key()),
            )
            .unwrap()
        }
        fn quarantine(&self) -> Quarantine {
            Quarantine::open(&self.dir.path().join("q")).unwrap()
        }
    }

    #[test]
    fn appends_extend_the_mirror() {
        let f = Fixture::new();
        f.append(3);
        let mut m = f.mirror();
        assert_eq!(m.mirror_entries(), 3);
        // The first check after opening compares; the next one sees nothing moved.
        assert_eq!(m.check().unwrap(), AuditCheck::Extended { entries: 3 });
        assert_eq!(m.check().unwrap(), AuditCheck::Unchanged);
        f.append(2);
        assert_eq!(m.check().unwrap(), AuditCheck::Extended { entries: 5 });
    }

    #[test]
    fn an_edit_in_the_middle_is_found_and_undone() {
        let f = Fixture::new();
        f.append(4);
        let mut m = f.mirror();
        let good = fs::read(f.log()).unwrap();
        let text = String::from_utf8(good.clone()).unwrap().replacen("\"i\":1", "\"i\":7", 1);
        fs::write(f.log(), text).unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Log, "rewritten"));
        assert!(t.detail.contains("edited_entry"), "{}", t.detail);
        let q = f.quarantine();
        let kept = m.restore(&t, &q).unwrap();
        // The log, and the Merkle state that described it.
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(!audit::tree::hashes_path(&f.log()).exists() && !audit::tree::index_path(&f.log()).exists());
        assert_eq!(fs::read(f.log()).unwrap(), good);
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 4 }));
        // The next writer rebuilds the state from the restored log and says so.
        f.append(1);
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 6 }));
        let lines = fs::read_to_string(f.log()).unwrap();
        let rebuilt = Entry::from_line(lines.lines().nth(4).unwrap().as_bytes()).unwrap();
        assert_eq!(
            (rebuilt.kind.as_str(), &rebuilt.data["reason"]),
            (audit::kinds::AUDIT_TREE_REBUILT, &"missing".into())
        );
    }

    /// An edit in place that does not grow the log is compared in full at
    /// once. One that lands together with an append is compared only as far
    /// as the last mirrored line, and waits for the next full comparison.
    #[test]
    fn an_edit_in_place_is_found_at_once_or_by_the_next_full_comparison() {
        use std::os::unix::fs::FileExt;
        let f = Fixture::new();
        f.append(20);
        let mut m = f.mirror();
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 20 }));
        let text = fs::read_to_string(f.log()).unwrap();
        let at = text.find("\"i\":3").unwrap() as u64 + 4;
        let live = OpenOptions::new().write(true).open(f.log()).unwrap();
        live.write_all_at(b"8", at).unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("an edit in place not found") };
        assert!(t.detail.contains(&format!("at byte {at}")), "{}", t.detail);

        let f = Fixture::new();
        f.append(20);
        let mut m = f.mirror();
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 20 }));
        let live = OpenOptions::new().write(true).open(f.log()).unwrap();
        live.write_all_at(b"8", at).unwrap();
        f.append(1);
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 21 }));
        // The last mirrored line is always compared, even as the log grows.
        let text = fs::read_to_string(f.log()).unwrap();
        let last = text.rfind("\"i\":0").unwrap() as u64 + 4;
        live.write_all_at(b"9", last).unwrap();
        OpenOptions::new().append(true).open(f.log()).unwrap().write_all(b"{}\n").unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("an edit of the last line not found") };
        assert_eq!((t.reason.as_str(), t.file), ("rewritten", TamperedFile::Log));
        assert!(t.detail.contains(&format!("at byte {last}")), "{}", t.detail);
        // A full comparison finds the earlier edit too.
        m.require_full_comparison();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("an edit in place not found") };
        assert!(t.detail.contains(&format!("at byte {at}")), "{}", t.detail);
    }

    #[test]
    fn truncation_and_an_older_copy_are_found() {
        let f = Fixture::new();
        f.append(2);
        let older = fs::read(f.log()).unwrap();
        let older_checkpoint = fs::read(f.checkpoint()).unwrap();
        f.append(2);
        let mut m = f.mirror();
        fs::write(f.log(), &older).unwrap();
        fs::write(f.checkpoint(), &older_checkpoint).unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!(t.reason, "truncated");
        m.restore(&t, &f.quarantine()).unwrap();
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 4 }));
        fs::remove_file(f.log()).unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!(t.reason, "deleted");
    }

    #[test]
    fn a_forged_append_and_a_deleted_checkpoint_are_found() {
        let f = Fixture::new();
        f.append(2);
        let mut m = f.mirror();
        let mut file = OpenOptions::new().append(true).open(f.log()).unwrap();
        file.write_all(b"{\"not\":\"an entry\"}\n").unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Log, "malformed_line"));
        m.restore(&t, &f.quarantine()).unwrap();
        fs::remove_file(f.checkpoint()).unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Checkpoint, "checkpoint_deleted"));
        m.restore(&t, &f.quarantine()).unwrap();
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 2 }));
    }

    #[test]
    fn an_older_or_forged_checkpoint_is_found() {
        let f = Fixture::new();
        f.append(2);
        let older = fs::read(f.checkpoint()).unwrap();
        f.append(2);
        let mut m = f.mirror();
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 4 }));
        fs::write(f.checkpoint(), &older).unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Checkpoint, "checkpoint_rolled_back"));
        m.restore(&t, &f.quarantine()).unwrap();
        let good = fs::read_to_string(f.checkpoint()).unwrap();
        let mut lines: Vec<&str> = good.lines().collect();
        lines[1] = "5";
        fs::write(f.checkpoint(), lines.join("\n") + "\n").unwrap();
        let AuditCheck::Tampered(t) = m.check().unwrap() else { panic!("not found") };
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Checkpoint, "forged_checkpoint"), "{t:?}");
        m.restore(&t, &f.quarantine()).unwrap();
        assert_eq!(fs::read_to_string(f.checkpoint()).unwrap(), good);
    }

    #[test]
    fn a_torn_tail_is_not_tampering() {
        let f = Fixture::new();
        f.append(2);
        let mut m = f.mirror();
        let mut file = OpenOptions::new().append(true).open(f.log()).unwrap();
        file.write_all(b"{\"actor\":").unwrap();
        assert!(matches!(m.check().unwrap(), AuditCheck::Extended { entries: 2 }));
    }

    #[test]
    fn a_tampered_log_without_a_mirror_is_refused() {
        let f = Fixture::new();
        f.append(2);
        let text = fs::read_to_string(f.log()).unwrap().replacen("\"i\":0", "\"i\":9", 1);
        fs::write(f.log(), text).unwrap();
        let err =
            AuditMirror::open(&f.dir.path().join("mirror"), &f.log(), &f.checkpoint(), Some(f.key.verifying_key()))
                .unwrap_err();
        assert!(matches!(err, MirrorError::TamperedWithoutMirror { .. }), "{err}");
    }

    fn finding(check: AuditCheck) -> AuditTamper {
        match check {
            AuditCheck::Tampered(t) => t,
            other => panic!("expected tampering, got {other:?}"),
        }
    }

    #[test]
    fn a_checkpoint_linked_to_dev_zero_is_tampering_read_without_exhausting_memory() {
        let f = Fixture::new();
        f.append(3);
        let mut mirror = f.mirror();
        let good = fs::read(f.checkpoint()).unwrap();
        fs::remove_file(f.checkpoint()).unwrap();
        std::os::unix::fs::symlink("/dev/zero", f.checkpoint()).unwrap();
        let t = finding(mirror.check().unwrap());
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Checkpoint, "malformed_checkpoint"), "{t:?}");
        assert!(t.detail.contains("not a regular file"), "{t:?}");
        mirror.restore(&t, &f.quarantine()).unwrap();
        assert_eq!(fs::read(f.checkpoint()).unwrap(), good, "the verified checkpoint is back");
        assert!(matches!(mirror.check().unwrap(), AuditCheck::Unchanged | AuditCheck::Extended { .. }));
    }

    #[test]
    fn a_fifo_in_place_of_the_log_never_blocks_and_is_undone() {
        let f = Fixture::new();
        f.append(3);
        let mut mirror = f.mirror();
        let good = fs::read(f.log()).unwrap();
        fs::remove_file(f.log()).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(f.log()).status().unwrap().success());
        let t = finding(mirror.check().unwrap());
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Log, "not_a_regular_file"), "{t:?}");
        let kept = mirror.restore(&t, &f.quarantine()).unwrap();
        assert_eq!(fs::read(f.log()).unwrap(), good);
        assert!(kept.iter().any(|p| fs::symlink_metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        })));
    }

    #[test]
    fn a_huge_append_is_read_one_capped_line_at_a_time() {
        // 64 MiB without a newline (or with one, past the entry cap) is
        // refused as a malformed line without being read into memory whole.
        let f = Fixture::new();
        f.append(3);
        let mut mirror = f.mirror();
        let mut file = OpenOptions::new().append(true).open(f.log()).unwrap();
        let junk = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            file.write_all(&junk).unwrap();
        }
        file.write_all(b"\n").unwrap();
        let t = finding(mirror.check().unwrap());
        assert_eq!((t.file, t.reason.as_str()), (TamperedFile::Log, "malformed_line"), "{t:?}");
        assert!(t.detail.contains(&format!("a line of over {} bytes", audit::MAX_LINE_BYTES)), "{t:?}");
    }

    #[test]
    fn appended_entries_are_mirrored_exactly_when_streamed() {
        let f = Fixture::new();
        f.append(3);
        let mut mirror = f.mirror();
        f.append(50);
        assert_eq!(mirror.check().unwrap(), AuditCheck::Extended { entries: 53 });
        let live = fs::read(f.log()).unwrap();
        assert_eq!(fs::read(f.dir.path().join("mirror").join(MIRROR_LOG)).unwrap(), live);
        // Reopened, the streamed load agrees with what was mirrored.
        let reopened = f.mirror();
        assert_eq!((reopened.mirror_entries(), reopened.mirror_len), (53, live.len() as u64));
    }
}
