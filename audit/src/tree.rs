//! The log's Merkle tree kept on disk beside it, so that appends, roots and
//! proofs cost O(log n) reads instead of a walk over the whole log.
//!
//! Two files, both derived from the log and rebuilt from it when missing:
//!
//! - `<log>.hashes`: every hash of a complete subtree, 32 bytes each, in the
//!   order of Go's `golang.org/x/mod/sumdb/tlog` (`StoredHashIndex`): after
//!   leaf `n` come the roots of the subtrees it completes. A tree of `n`
//!   leaves holds `2n - popcount(n)` hashes. C2SP `tlog-tiles` are cut
//!   straight out of this layout (a tile at level `L` holds the stored hashes
//!   of tree level `8L`), and any subtree root or proof needs O(log n) of them.
//! - `<log>.index`: the byte offset of each entry's line in the log, 8 bytes
//!   little-endian per entry, so that the line of any seq is one read away.
//!
//! Neither file is trusted on its own: the writer uses them only as far as a
//! signed checkpoint vouches for them (the root they give at the checkpoint's
//! size must be the signed one), and recomputes everything after that from the
//! log. Neither is flushed on its own either: they are written after the
//! log's lines are durable, so a crash can only leave them shorter than the
//! log (they are then extended from the log), never ahead of it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::hash::Sha256Hash;
use crate::lines::{Line, LineReader};
use crate::merkle::{self, SubtreeRoots, node_hash};
use crate::scan::MAX_LINE_BYTES;

const HASH_BYTES: u64 = 32;
const OFFSET_BYTES: u64 = 8;

/// `<log>.hashes`.
pub fn hashes_path(log: &Path) -> PathBuf {
    with_suffix(log, ".hashes")
}

/// `<log>.index`.
pub fn index_path(log: &Path) -> PathBuf {
    with_suffix(log, ".index")
}

fn with_suffix(log: &Path, suffix: &str) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the `n`-th hash of tree level `level` is stored (Go tlog's
/// `StoredHashIndex`): level `L`'s `n`-th hash follows level `L+1`'s
/// `(2n+1)`-th, and level 0's `n`-th is at `n + n/2 + n/4 + …`.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut index = 0;
    while n > 0 {
        index += n;
        n >>= 1;
    }
    index + u64::from(level)
}

/// How many hashes a tree of `n` leaves stores: `2n - popcount(n)`.
pub fn stored_hash_count(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
}

/// The largest tree size whose stored hashes fit in `hashes`.
fn leaves_for_hash_count(hashes: u64) -> u64 {
    // stored_hash_count(n) is within 64 of 2n.
    let mut n = hashes / 2 + 64;
    while n > 0 && stored_hash_count(n) > hashes {
        n -= 1;
    }
    n
}

/// The tree files of one log, opened for reading or for appending.
#[derive(Debug)]
pub(crate) struct StoredTree {
    hashes: File,
    index: File,
    hashes_path: PathBuf,
    index_path: PathBuf,
    /// Leaves whose hashes and offsets are in the files.
    written: u64,
    /// Hashes and offsets pushed since the last [`StoredTree::flush`].
    pending_hashes: Vec<Sha256Hash>,
    pending_offsets: Vec<u64>,
    /// The roots of the complete subtrees of the whole tree (written and
    /// pending), largest first, with their levels: the right edge that the
    /// next leaf joins.
    frontier: Vec<(u32, Sha256Hash)>,
}

/// How [`StoredTree::open_for_append`] found the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Both were there.
    Existing,
    /// At least one was missing and both now exist (the other emptied).
    Created,
}

impl StoredTree {
    /// Opens the tree files for reading; `None` if either is missing.
    pub(crate) fn open_for_reading(log: &Path) -> io::Result<Option<StoredTree>> {
        let (hashes_path, index_path) = (hashes_path(log), index_path(log));
        let hashes = match open_regular(&hashes_path, false) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let index = match open_regular(&index_path, false) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Self::from_files(hashes, index, hashes_path, index_path).map(Some)
    }

    /// Opens (creating if needed, with permission bits `mode`: the log's, so
    /// that whoever may append to the log may extend its state) the tree
    /// files for appending. Called under the log's lock, so no other writer
    /// races the creation.
    pub(crate) fn open_for_append(log: &Path, mode: u32) -> io::Result<(StoredTree, Found)> {
        let (hashes_path, index_path) = (hashes_path(log), index_path(log));
        let (hashes, hashes_found) = open_or_create(&hashes_path, mode)?;
        let (index, index_found) = open_or_create(&index_path, mode)?;
        let mut tree = Self::from_files(hashes, index, hashes_path, index_path)?;
        if hashes_found == Found::Created || index_found == Found::Created {
            // Half a pair is worth nothing: start both from empty.
            tree.truncate(0)?;
            return Ok((tree, Found::Created));
        }
        // Cut what a crash left past the last whole leaf of both, so that
        // appends land on exact ends.
        tree.truncate(tree.written)?;
        Ok((tree, Found::Existing))
    }

    fn from_files(hashes: File, index: File, hashes_path: PathBuf, index_path: PathBuf) -> io::Result<StoredTree> {
        let hash_count = hashes.metadata()?.len() / HASH_BYTES;
        let offset_count = index.metadata()?.len() / OFFSET_BYTES;
        let written = leaves_for_hash_count(hash_count).min(offset_count);
        let mut tree = StoredTree {
            hashes,
            index,
            hashes_path,
            index_path,
            written,
            pending_hashes: Vec::new(),
            pending_offsets: Vec::new(),
            frontier: Vec::new(),
        };
        tree.frontier = tree.frontier_at(written)?;
        Ok(tree)
    }

    pub(crate) fn hashes_path(&self) -> &Path {
        &self.hashes_path
    }

    /// Leaves in the tree, written or pending.
    pub(crate) fn size(&self) -> u64 {
        self.written + self.pending_offsets.len() as u64
    }

    /// The root of the whole tree, from the frontier (no reads).
    pub(crate) fn root(&self) -> Sha256Hash {
        fold_subtree_roots(self.frontier.iter().map(|(_, hash)| *hash))
    }

    /// The root of the first `size` leaves (`size <= self.size()`).
    pub(crate) fn root_at(&self, size: u64) -> io::Result<Sha256Hash> {
        if size == self.size() {
            return Ok(self.root());
        }
        self.range_root(0, size)
    }

    /// The hash of leaf `seq`.
    pub(crate) fn leaf(&self, seq: u64) -> io::Result<Sha256Hash> {
        self.stored(stored_hash_index(0, seq))
    }

    /// The `n`-th hash of tree level `level` (the root of leaves
    /// `n << level .. (n + 1) << level`, which must be complete).
    pub(crate) fn stored_at(&self, level: u32, n: u64) -> io::Result<Sha256Hash> {
        self.stored(stored_hash_index(level, n))
    }

    /// Where entry `seq`'s line starts in the log.
    pub(crate) fn offset_of(&self, seq: u64) -> io::Result<u64> {
        if seq >= self.written {
            let pending = usize::try_from(seq - self.written).ok().and_then(|i| self.pending_offsets.get(i));
            return pending.copied().ok_or_else(|| out_of_range(&self.index_path, seq));
        }
        let mut bytes = [0; OFFSET_BYTES as usize];
        self.index.read_exact_at(&mut bytes, seq * OFFSET_BYTES)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Adds the next leaf, whose line starts at `offset` in the log. Kept in
    /// memory until [`StoredTree::flush`].
    pub(crate) fn push(&mut self, leaf: Sha256Hash, offset: u64) {
        self.pending_offsets.push(offset);
        self.pending_hashes.push(leaf);
        let (mut level, mut hash) = (0, leaf);
        // Each subtree of the same height on the right edge is completed by
        // this leaf: the new roots are stored right after it.
        while let Some(&(left_level, left)) = self.frontier.last()
            && left_level == level
        {
            self.frontier.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            self.pending_hashes.push(hash);
        }
        self.frontier.push((level, hash));
    }

    /// Writes what was pushed. Not flushed to disk: the log's own fsync is
    /// what makes entries durable, and these files are rebuilt from it.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.pending_offsets.is_empty() {
            return Ok(());
        }
        let hashes: Vec<u8> = self.pending_hashes.iter().flat_map(|h| *h.as_bytes()).collect();
        let offsets: Vec<u8> = self.pending_offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        self.hashes.write_all_at(&hashes, stored_hash_count(self.written) * HASH_BYTES)?;
        self.index.write_all_at(&offsets, self.written * OFFSET_BYTES)?;
        self.written += self.pending_offsets.len() as u64;
        self.pending_hashes.clear();
        self.pending_offsets.clear();
        Ok(())
    }

    /// Keeps only the first `size` leaves (`size <= self.size()`), in memory
    /// and on disk.
    pub(crate) fn truncate(&mut self, size: u64) -> io::Result<()> {
        self.pending_hashes.clear();
        self.pending_offsets.clear();
        let size = size.min(self.written);
        self.hashes.set_len(stored_hash_count(size) * HASH_BYTES)?;
        self.index.set_len(size * OFFSET_BYTES)?;
        self.written = size;
        self.frontier = self.frontier_at(size)?;
        Ok(())
    }

    /// The roots of the complete subtrees of the first `size` leaves, read
    /// from the files: one per bit of `size`.
    fn frontier_at(&self, size: u64) -> io::Result<Vec<(u32, Sha256Hash)>> {
        let mut frontier = Vec::new();
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            if size & (1 << level) != 0 {
                frontier.push((level, self.stored(stored_hash_index(level, start >> level))?));
                start += 1 << level;
            }
        }
        Ok(frontier)
    }

    fn stored(&self, index: u64) -> io::Result<Sha256Hash> {
        let on_disk = stored_hash_count(self.written);
        if index >= on_disk {
            let pending = usize::try_from(index - on_disk).ok().and_then(|i| self.pending_hashes.get(i));
            return pending.copied().ok_or_else(|| out_of_range(&self.hashes_path, index));
        }
        let mut bytes = [0; HASH_BYTES as usize];
        self.hashes.read_exact_at(&mut bytes, index * HASH_BYTES)?;
        Ok(Sha256Hash(bytes))
    }
}

impl SubtreeRoots for StoredTree {
    type Error = io::Error;

    /// The root of leaves `lo..hi`, where `lo` is a multiple of a power of
    /// two at least `hi - lo` (as every range of RFC 6962's proofs is): the
    /// complete subtrees of its binary decomposition, folded from the right.
    fn range_root(&self, lo: u64, hi: u64) -> io::Result<Sha256Hash> {
        if hi > self.size() || lo > hi {
            return Err(out_of_range(&self.hashes_path, hi));
        }
        let mut roots = Vec::new();
        let mut start = lo;
        while start < hi {
            let mut level = (hi - start).ilog2();
            while start & ((1u64 << level) - 1) != 0 {
                level -= 1;
            }
            roots.push(self.stored(stored_hash_index(level, start >> level))?);
            start += 1 << level;
        }
        Ok(fold_subtree_roots(roots.into_iter()))
    }
}

/// The root of a tree from the roots of its complete subtrees, largest
/// (leftmost) first: folded from the right, as RFC 6962's MTH splits.
fn fold_subtree_roots(roots: impl DoubleEndedIterator<Item = Sha256Hash>) -> Sha256Hash {
    let mut from_right = roots.rev();
    match from_right.next() {
        None => merkle::empty_root(),
        Some(last) => from_right.fold(last, |right, left| node_hash(&left, &right)),
    }
}

fn out_of_range(path: &Path, at: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} holds nothing at {at}", path.display()))
}

/// Opens `path` (for writing too if `write`), not through a symlink and
/// without blocking on a FIFO, and refuses anything but a regular file.
fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new().read(true).write(write).custom_flags(flags.bits() as i32).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let kind = signer::fsutil::kind_of(&meta);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {kind}, not a regular file", path.display()),
        ));
    }
    Ok(file)
}

fn open_or_create(path: &Path, mode: u32) -> io::Result<(File, Found)> {
    match open_regular(path, true) {
        Ok(file) => return Ok((file, Found::Existing)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    // The umask may have narrowed the mode; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok((file, Found::Created))
}

/// Reads the line that starts at `offset` of `file`, which must end with a
/// newline before `end`; `None` if it does not.
pub(crate) fn read_line_at(file: &File, offset: u64, end: u64) -> io::Result<Option<Vec<u8>>> {
    if offset >= end {
        return Ok(None);
    }
    let window = (end - offset).min(MAX_LINE_BYTES as u64 + 1);
    let mut reader = LineReader::new(PositionedReader { file, at: offset }.take(window), offset);
    Ok(match reader.next_line()? {
        Line::Complete(line) => Some(line.to_vec()),
        _ => None,
    })
}

/// Reads `file` from a position without moving a shared cursor.
pub(crate) struct PositionedReader<'a> {
    pub file: &'a File,
    pub at: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_path, consistency_path_in, inclusion_path, inclusion_path_in, leaf_hash, root};

    fn leaves(n: u64) -> Vec<Sha256Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    #[test]
    fn index_and_count_match_go_tlog() {
        // Values from golang.org/x/mod/sumdb/tlog's layout: level-0 hashes of
        // leaves 0..8 and the level-1..3 roots interleaved after them.
        let level0: Vec<u64> = (0..8).map(|n| stored_hash_index(0, n)).collect();
        assert_eq!(level0, [0, 1, 3, 4, 7, 8, 10, 11]);
        assert_eq!([stored_hash_index(1, 0), stored_hash_index(1, 1), stored_hash_index(2, 0)], [2, 5, 6]);
        assert_eq!(stored_hash_index(3, 0), 14);
        let counts: Vec<u64> = (0..9).map(stored_hash_count).collect();
        assert_eq!(counts, [0, 1, 3, 4, 7, 8, 10, 11, 15]);
        for n in 0..5000 {
            assert_eq!(leaves_for_hash_count(stored_hash_count(n)), n);
            assert_eq!(leaves_for_hash_count(stored_hash_count(n + 1) - 1), n);
        }
    }

    #[test]
    fn stored_roots_and_proofs_equal_the_in_memory_ones() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let all = leaves(300);
        let (mut tree, found) = StoredTree::open_for_append(&log, 0o644).unwrap();
        assert_eq!(found, Found::Created);
        for (i, leaf) in all.iter().enumerate() {
            tree.push(*leaf, i as u64 * 10);
            // Flush at uneven points so that reads cross written and pending.
            if i % 7 == 3 {
                tree.flush().unwrap();
            }
            let size = i as u64 + 1;
            assert_eq!(tree.root(), root(&all[..=i]), "size {size}");
        }
        tree.flush().unwrap();
        drop(tree);
        let tree = StoredTree::open_for_reading(&log).unwrap().unwrap();
        assert_eq!(tree.size(), 300);
        assert_eq!(tree.offset_of(123).unwrap(), 1230);
        for size in [1u64, 2, 3, 5, 8, 13, 64, 100, 255, 256, 257, 299, 300] {
            let prefix = &all[..size as usize];
            assert_eq!(tree.root_at(size).unwrap(), root(prefix), "root at {size}");
            for index in [0, size / 3, size / 2, size - 1] {
                assert_eq!(
                    inclusion_path_in(&tree, size, index).unwrap(),
                    inclusion_path(prefix, index).unwrap(),
                    "inclusion of {index} in {size}"
                );
            }
            for old in [0, 1, size / 2, size.saturating_sub(1), size] {
                assert_eq!(
                    consistency_path_in(&tree, size, old).unwrap(),
                    consistency_path(prefix, old).unwrap(),
                    "consistency {old} -> {size}"
                );
            }
        }
    }

    #[test]
    fn a_torn_pair_reopens_at_the_shorter_one_and_truncates_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let all = leaves(20);
        let (mut tree, _) = StoredTree::open_for_append(&log, 0o644).unwrap();
        for (i, leaf) in all.iter().enumerate() {
            tree.push(*leaf, i as u64);
        }
        tree.flush().unwrap();
        drop(tree);
        // A crash kept 17 offsets and half a hash past leaf 19's.
        let index = OpenOptions::new().write(true).open(index_path(&log)).unwrap();
        index.set_len(17 * OFFSET_BYTES).unwrap();
        let hashes = OpenOptions::new().write(true).open(hashes_path(&log)).unwrap();
        hashes.set_len(stored_hash_count(19) * HASH_BYTES + 16).unwrap();
        let (mut tree, found) = StoredTree::open_for_append(&log, 0o644).unwrap();
        assert_eq!((tree.size(), found), (17, Found::Existing));
        assert_eq!(tree.root(), root(&all[..17]));
        tree.truncate(12).unwrap();
        assert_eq!(tree.root(), root(&all[..12]));
        tree.push(all[12], 12);
        tree.flush().unwrap();
        assert_eq!(tree.root_at(13).unwrap(), root(&all[..13]));
        assert_eq!(hashes.metadata().unwrap().len(), stored_hash_count(13) * HASH_BYTES);
    }

    #[test]
    fn a_fifo_or_a_symlink_in_place_of_a_tree_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        rustix::fs::mkfifoat(rustix::fs::CWD, hashes_path(&log), rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
        let error = StoredTree::open_for_append(&log, 0o644).unwrap_err();
        assert!(error.to_string().contains("is a FIFO, not a regular file"), "{error}");
        std::fs::remove_file(hashes_path(&log)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", hashes_path(&log)).unwrap();
        let error = StoredTree::open_for_reading(&log).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(rustix::io::Errno::LOOP.raw_os_error()), "{error}");
    }
}
