//! The log written out as static C2SP `tlog-tiles` files, so that any static
//! file server or object store can serve it and any tlog-tiles client can
//! audit it without our code (<https://c2sp.org/tlog-tiles>):
//!
//! - `tile/<L>/<N>[.p/<W>]`: hash tiles. Tile `N` of level `L` holds the
//!   hashes of tree level `8L` from index `256N`: 256 of them when full, `W`
//!   in the partial tile on the tree's right edge. They are the stored hashes
//!   of [`crate::tree`], read in O(1) each.
//! - `tile/entries/<N>[.p/<W>]`: entry bundles, each entry (the log line
//!   without its newline, whose RFC 6962 leaf hash is in the level-0 tile) as
//!   a big-endian `u16` length and its bytes.
//! - `checkpoint`: the log's signed checkpoint, byte for byte; written last,
//!   so a client never sees a checkpoint whose tiles are not there yet.
//!
//! `N` is written in 3-digit path elements, all but the last prefixed with
//! `x` (`1234067` is `x001/x234/067`).
//!
//! Export is incremental: full tiles never change, so only those the
//! previously exported checkpoint did not cover are written, plus the right
//! edge's partial tiles. A published history is never rewritten: an export
//! whose tree does not contain the previously published one (a smaller tree,
//! or another root at the old size) is refused. Every entry written is
//! checked against its leaf hash, every full tile against the stored hash of
//! its subtree, and the tree against the checkpoint's root. Readers still
//! check everything against the signed root themselves; these checks keep a
//! damaged Merkle state from being published at all.
//!
//! Not Cloudflare's `tlog_tiles` crate: the tree state is already kept in this
//! layout (Go tlog's stored-hash order), so cutting tiles is a few index
//! computations, and the crate's own tile reader would be a second copy of
//! code we have; interoperability is tested against Go's
//! `golang.org/x/mod/sumdb/tlog` instead, an implementation we did not write.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use signer::fsutil::{FileMode, atomic_write, atomic_write_unflushed_rename, sync_dir};

use crate::checkpoint::{parse_checkpoint_bytes, read_checkpoint_file};
use crate::hash::Sha256Hash;
use crate::merkle::{leaf_hash, node_hash};
use crate::tree::StoredTree;

/// Hashes per full tile (C2SP: tile height 8).
pub const TILE_WIDTH: u64 = 256;
const TILE_HEIGHT: u32 = 8;
/// The longest entry an entry bundle can hold (its `u16` length prefix).
pub const MAX_TILE_ENTRY_BYTES: usize = u16::MAX as usize;
/// The checkpoint's name among the tiles.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TilesReport {
    /// Entries in the exported tree (the checkpoint's size).
    pub size: u64,
    /// The size the previous export published (0 if none).
    pub previous_size: u64,
    /// Hash tiles written, full and partial.
    pub hash_tiles: u64,
    /// Entry bundles written, full and partial.
    pub entry_bundles: u64,
}

/// Why the tiles could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TilesError {
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is {kind}, not a directory: refusing to write tiles through it")]
    NotADirectory { path: PathBuf, kind: &'static str },
    #[error("{path}: no checkpoint: nothing is signed yet, so there is nothing to publish")]
    NoCheckpoint { path: PathBuf },
    #[error("{path}: {reason}")]
    MalformedCheckpoint { path: PathBuf, reason: String },
    #[error(
        "the Merkle state of {log} is missing or covers {have} entries, fewer than the checkpoint's {size}: append once (or run `guardian audit checkpoint`) to rebuild it"
    )]
    TreeStateBehind { log: PathBuf, have: u64, size: u64 },
    #[error("the Merkle state of {log} gives another root at {size} entries than the signed checkpoint")]
    TreeStateMismatch { log: PathBuf, size: u64 },
    #[error("tile {level}/{index} of the Merkle state of {log} does not hash to the state's own hash above it")]
    TileMismatch { log: PathBuf, level: u32, index: u64 },
    #[error("entry {seq} of {log} is not the entry the Merkle state holds (its line is missing or was edited)")]
    EntryMismatch { log: PathBuf, seq: u64 },
    #[error("entry {seq} is {length} bytes; a tlog-tiles entry bundle holds at most {MAX_TILE_ENTRY_BYTES}")]
    EntryTooLarge { seq: u64, length: usize },
    #[error(
        "{path} publishes {published} entries, more than this log's checkpoint ({size}): refusing to replace a published history with a shorter one"
    )]
    PublishedAhead { path: PathBuf, published: u64, size: u64 },
    #[error(
        "{path} publishes a tree of {published} entries that this log does not contain (another root at that size): refusing to rewrite a published history"
    )]
    PublishedForked { path: PathBuf, published: u64 },
}

impl TilesError {
    /// A stable name for each failure.
    pub fn reason_code(&self) -> &'static str {
        match self {
            TilesError::Io { .. } => "io",
            TilesError::NotADirectory { .. } => "not_a_directory",
            TilesError::NoCheckpoint { .. } => "no_checkpoint",
            TilesError::MalformedCheckpoint { .. } => "malformed_checkpoint",
            TilesError::TreeStateBehind { .. } => "tree_state_behind",
            TilesError::TreeStateMismatch { .. } => "tree_state_mismatch",
            TilesError::TileMismatch { .. } => "tile_mismatch",
            TilesError::EntryMismatch { .. } => "entry_mismatch",
            TilesError::EntryTooLarge { .. } => "entry_too_large_for_tiles",
            TilesError::PublishedAhead { .. } => "published_ahead",
            TilesError::PublishedForked { .. } => "published_forked",
        }
    }
}

/// `tile/<L>/<N>` or `tile/<L>/<N>.p/<W>` (`level` = "entries" for bundles),
/// relative to the tiles directory.
pub fn tile_path(level: &str, index: u64, width: u64) -> String {
    let mut groups = vec![index % 1000];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let elements: Vec<String> = groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, group)| if i + 1 < groups.len() { format!("x{group:03}") } else { format!("{group:03}") })
        .collect();
    let mut path = format!("tile/{level}/{}", elements.join("/"));
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// Writes the tiles of `log` as of its signed checkpoint `checkpoint` into
/// `out` (see the module documentation).
pub fn export_tiles(log: &Path, checkpoint: &Path, out: &Path) -> Result<TilesReport, TilesError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TilesError::Io { what, path, source }
    };
    let checkpoint_bytes = read_checkpoint_file(checkpoint)
        .map_err(io("read", checkpoint))?
        .ok_or_else(|| TilesError::NoCheckpoint { path: checkpoint.to_path_buf() })?;
    let signed = parse_checkpoint_bytes(&checkpoint_bytes)
        .map_err(|e| TilesError::MalformedCheckpoint { path: checkpoint.to_path_buf(), reason: e.to_string() })?;
    let (size, root) = (signed.checkpoint.size, signed.checkpoint.root);

    let tree = StoredTree::open_for_reading(log).map_err(io("open the Merkle state of", log))?;
    let tree = match tree {
        Some(tree) if tree.size() >= size => tree,
        other => {
            let have = other.map_or(0, |t| t.size());
            return Err(TilesError::TreeStateBehind { log: log.to_path_buf(), have, size });
        }
    };
    if tree.root_at(size).map_err(io("read the Merkle state of", log))? != root {
        return Err(TilesError::TreeStateMismatch { log: log.to_path_buf(), size });
    }

    let published_path = out.join(CHECKPOINT_FILE);
    let previous_size = published_size(&published_path, &tree, size)?;

    let mut report = TilesReport { size, previous_size, hash_tiles: 0, entry_bundles: 0 };
    // Each tile's data is flushed as it is written, each directory once at
    // the end, before the checkpoint that points at them.
    let mut dirs = BTreeSet::new();
    let mut write = |rel: String, bytes: &[u8]| -> Result<(), TilesError> {
        let path = out.join(rel);
        let dir = path.parent().unwrap_or(out).to_path_buf();
        if dirs.insert(dir.clone()) {
            make_tile_dir(out, &dir)?;
        }
        atomic_write_unflushed_rename(&path, bytes, FileMode::Public).map_err(io("write", &path))
    };

    // Hash tiles, level by level, from the first full tile the previous
    // export did not cover.
    let mut level = 0u32;
    loop {
        let hashes = size >> (TILE_HEIGHT * level);
        if hashes == 0 {
            break;
        }
        let tree_level = TILE_HEIGHT * level;
        let first = (previous_size >> tree_level) / TILE_WIDTH;
        for index in first..hashes.div_ceil(TILE_WIDTH) {
            let width = (hashes - index * TILE_WIDTH).min(TILE_WIDTH);
            let hashes: Vec<Sha256Hash> = (0..width)
                .map(|i| tree.stored_at(tree_level, index * TILE_WIDTH + i))
                .collect::<Result<_, _>>()
                .map_err(io("read the Merkle state of", log))?;
            // A full tile is a complete subtree: its root is stored too, and
            // the two must agree (the root check above reads only the hashes
            // of the highest complete subtrees).
            if width == TILE_WIDTH {
                let parent =
                    tree.stored_at(tree_level + TILE_HEIGHT, index).map_err(io("read the Merkle state of", log))?;
                if subtree_root(&hashes) != parent {
                    return Err(TilesError::TileMismatch { log: log.to_path_buf(), level, index });
                }
            }
            let bytes: Vec<u8> = hashes.iter().flat_map(|h| *h.as_bytes()).collect();
            write(tile_path(&level.to_string(), index, width), &bytes)?;
            report.hash_tiles += 1;
        }
        level += 1;
    }

    // Entry bundles, each entry checked against its leaf hash.
    let log_file = crate::checkpoint::open_for_reading(log).map_err(io("open", log))?;
    let log_end = log_file.metadata().map_err(io("read", log))?.len();
    for index in previous_size / TILE_WIDTH..size.div_ceil(TILE_WIDTH) {
        let width = (size - index * TILE_WIDTH).min(TILE_WIDTH);
        let mut bundle = Vec::new();
        for seq in index * TILE_WIDTH..index * TILE_WIDTH + width {
            let expected = tree.leaf(seq).map_err(io("read the Merkle state of", log))?;
            let line = entry_line(&tree, &log_file, log_end, seq)
                .map_err(io("read", log))?
                .filter(|line| leaf_hash(line) == expected)
                .ok_or_else(|| TilesError::EntryMismatch { log: log.to_path_buf(), seq })?;
            let length =
                u16::try_from(line.len()).map_err(|_| TilesError::EntryTooLarge { seq, length: line.len() })?;
            bundle.extend_from_slice(&length.to_be_bytes());
            bundle.extend_from_slice(&line);
        }
        write(tile_path("entries", index, width), &bundle)?;
        report.entry_bundles += 1;
    }

    // Every tile the new checkpoint points at is on disk before it is: a
    // crash before this leaves the previous checkpoint, whose tiles were
    // flushed before it was, and the next export rewrites everything past it.
    for dir in &dirs {
        sync_dir(dir).map_err(io("flush", dir))?;
    }
    atomic_write(&published_path, &checkpoint_bytes, FileMode::Public).map_err(io("write", &published_path))?;
    Ok(report)
}

/// Creates `dir` below `out` one name at a time, refusing any that is not a
/// real directory: whoever can write the published tree must not redirect
/// the guardian's writes elsewhere through a symlink. (`out` itself is the
/// operator's to name.)
fn make_tile_dir(out: &Path, dir: &Path) -> Result<(), TilesError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TilesError::Io { what: "create", path, source }
    };
    fs::create_dir_all(out).map_err(io(out))?;
    let mut at = out.to_path_buf();
    for name in dir.strip_prefix(out).unwrap_or(Path::new("")).components() {
        at.push(name);
        match fs::DirBuilder::new().create(&at) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&at)(e)),
        }
        let meta = fs::symlink_metadata(&at).map_err(io(&at))?;
        if !meta.is_dir() {
            return Err(TilesError::NotADirectory { path: at, kind: signer::fsutil::kind_of(&meta) });
        }
    }
    Ok(())
}

/// Entry `seq`'s line without its newline, read in one piece: its length
/// comes from the next entry's offset (the last one's is found by scanning,
/// within the line cap). `None` if it is not a whole line there.
fn entry_line(tree: &StoredTree, log: &File, log_end: u64, seq: u64) -> io::Result<Option<Vec<u8>>> {
    let offset = tree.offset_of(seq)?;
    if seq + 1 >= tree.size() {
        return crate::tree::read_line_at(log, offset, log_end);
    }
    let next = tree.offset_of(seq + 1)?;
    let length = match next.checked_sub(offset) {
        Some(length) if (1..=crate::scan::MAX_LINE_BYTES as u64 + 1).contains(&length) && next <= log_end => length,
        _ => return Ok(None),
    };
    let mut line = vec![0; length as usize];
    log.read_exact_at(&mut line, offset)?;
    if line.pop() != Some(b'\n') || line.contains(&b'\n') {
        return Ok(None);
    }
    Ok(Some(line))
}

/// The root of a complete subtree from its leaves (a power of two of them).
fn subtree_root(hashes: &[Sha256Hash]) -> Sha256Hash {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
    }
    level[0]
}

/// The size of the tree the previous export published at `path`, after
/// checking that the tree being exported contains it; 0 if there is none.
fn published_size(path: &Path, tree: &StoredTree, size: u64) -> Result<u64, TilesError> {
    let bytes = match read_checkpoint_file(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(0),
        Err(source) => return Err(TilesError::Io { what: "read", path: path.to_path_buf(), source }),
    };
    let published = parse_checkpoint_bytes(&bytes)
        .map_err(|e| TilesError::MalformedCheckpoint { path: path.to_path_buf(), reason: e.to_string() })?
        .checkpoint;
    if published.size > size {
        return Err(TilesError::PublishedAhead { path: path.to_path_buf(), published: published.size, size });
    }
    let ours = tree.root_at(published.size).map_err(|source| TilesError::Io {
        what: "read the Merkle state for",
        path: path.to_path_buf(),
        source,
    })?;
    if ours != published.root {
        return Err(TilesError::PublishedForked { path: path.to_path_buf(), published: published.size });
    }
    Ok(published.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_the_spec() {
        assert_eq!(tile_path("0", 0, 256), "tile/0/000");
        assert_eq!(tile_path("0", 5, 17), "tile/0/005.p/17");
        assert_eq!(tile_path("2", 1000, 256), "tile/2/x001/000");
        assert_eq!(tile_path("entries", 1_234_067, 256), "tile/entries/x001/x234/067");
        assert_eq!(tile_path("1", 999, 1), "tile/1/999.p/1");
    }
}
