//! The log as C2SP tlog-tiles, audited by Go's `golang.org/x/mod/sumdb/tlog`
//! and `sumdb/note` (`tests/go/tilecheck.go`), an implementation we did not
//! write; and the exporter's refusals, each performed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use audit::tiles::{TilesError, TilesReport, export_tiles};

use crate::support::{Fixture, event, signer};

/// Debian's golang-golang-x-mod-dev (installed by `cargo xtask test`).
const GOPATH: &str = "/usr/share/gocode";

/// The Go checker, built once per test run.
fn tilecheck() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tilecheck");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/tilecheck.go");
        let built = go().arg("build").arg("-o").arg(&out).arg(&source).output().unwrap_or_else(|e| {
            panic!("the Go toolchain is required for the tiles interop test; `cargo xtask test` installs it (golang-go, golang-golang-x-mod-dev): {e}")
        });
        assert!(built.status.success(), "go build: {}", String::from_utf8_lossy(&built.stderr));
        out
    })
}

fn go() -> Command {
    let mut command = Command::new("go");
    // GOPATH mode: golang.org/x/mod comes from Debian's package, nothing is fetched.
    command
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOFLAGS", "")
        .env("GOCACHE", Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache"));
    command
}

/// Runs the Go checker over `dir`: `Ok(entries proved)` or its error line.
fn go_audit(dir: &Path, step: u64) -> Result<(u64, u64), String> {
    let key = audit::verifier_key_string(crate::support::ORIGIN, &signer(1).verifying_key());
    let output = Command::new(tilecheck()).arg(dir).arg(key).arg(step.to_string()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() {
        return Err(stdout);
    }
    let fields: Vec<u64> = stdout.strip_prefix("ok ").unwrap().split(' ').map(|f| f.parse().unwrap()).collect();
    Ok((fields[0], fields[1]))
}

fn grow(fixture: &Fixture, to: u64) {
    let mut log = fixture.open_signed();
    let from = crate::support::lines_of(&fixture.log).len() as u64;
    let events: Vec<_> = (from..to).map(event).collect();
    for batch in events.chunks(1000) {
        log.append_batch(batch).unwrap();
    }
}

fn export(fixture: &Fixture, out: &Path) -> Result<TilesReport, TilesError> {
    export_tiles(&fixture.log, &fixture.checkpoint, out)
}

#[test]
fn go_tlog_audits_the_tiles_as_the_log_grows() {
    let fixture = Fixture::with_entries(1);
    let out = tempfile::tempdir().unwrap();
    let report = export(&fixture, out.path()).unwrap();
    assert_eq!(report, TilesReport { size: 1, previous_size: 0, hash_tiles: 1, entry_bundles: 1 });
    assert_eq!(go_audit(out.path(), 1), Ok((1, 1)));

    // One full level-0 tile and the level-1 tile of its root.
    grow(&fixture, 256);
    let report = export(&fixture, out.path()).unwrap();
    assert_eq!(report, TilesReport { size: 256, previous_size: 1, hash_tiles: 2, entry_bundles: 1 });
    assert_eq!(go_audit(out.path(), 1), Ok((256, 256)));
    let first_tile = std::fs::read(out.path().join("tile/0/000")).unwrap();
    assert_eq!(first_tile.len(), 256 * 32);

    // Incremental: the full tiles stay; the right edge is new.
    grow(&fixture, 300);
    let report = export(&fixture, out.path()).unwrap();
    assert_eq!(report, TilesReport { size: 300, previous_size: 256, hash_tiles: 2, entry_bundles: 1 });
    assert!(out.path().join("tile/0/001.p/44").is_file());
    assert!(out.path().join("tile/1/000.p/1").is_file());
    assert!(out.path().join("tile/entries/001.p/44").is_file());
    assert_eq!(go_audit(out.path(), 1), Ok((300, 300)));

    // Three levels of tiles (65,536 entries fill a level-1 tile).
    grow(&fixture, 65_536 + 300);
    let report = export(&fixture, out.path()).unwrap();
    // Level 0: tiles 1..=257 (256 full from 1, then 257.p/44); level 1:
    // tile 0 (full) and 1.p/1; level 2: 0.p/1. Bundles as level 0.
    assert_eq!(report, TilesReport { size: 65_836, previous_size: 300, hash_tiles: 257 + 2 + 1, entry_bundles: 257 });
    assert!(out.path().join("tile/2/000.p/1").is_file());
    assert_eq!(std::fs::read(out.path().join("tile/0/000")).unwrap(), first_tile, "full tiles never change");
    let (size, proved) = go_audit(out.path(), 97).unwrap();
    assert_eq!((size, proved), (65_836, 65_836_u64.div_ceil(97) + 1));
    // The checkpoint served is the log's, byte for byte.
    assert_eq!(std::fs::read(out.path().join("checkpoint")).unwrap(), std::fs::read(&fixture.checkpoint).unwrap());
}

#[test]
fn go_tlog_catches_a_changed_tile_entry_or_checkpoint() {
    let fixture = Fixture::with_entries(0);
    grow(&fixture, 600);
    let out = tempfile::tempdir().unwrap();
    export(&fixture, out.path()).unwrap();
    assert_eq!(go_audit(out.path(), 1), Ok((600, 600)));

    let flip = |rel: &str, at: usize| {
        let path = out.path().join(rel);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    };
    // A hash in a full tile (entry 259's): Go's proofs through that tile
    // fail from its first entry on.
    flip("tile/0/001", 3 * 32 + 4);
    let err = go_audit(out.path(), 1).unwrap_err();
    assert_eq!(err.split(':').next(), Some("entry 256 is not in the signed tree"), "{err}");
    flip("tile/0/001", 100);
    assert_eq!(go_audit(out.path(), 1), Ok((600, 600)));

    // A byte of the first entry (past its length prefix).
    flip("tile/entries/000", 10);
    let err = go_audit(out.path(), 1).unwrap_err();
    assert_eq!(err.split(':').next(), Some("entry 0 is not in the signed tree"), "{err}");
    flip("tile/entries/000", 10);

    // A checkpoint signed by another key.
    let other =
        audit::CheckpointSigner::new(crate::support::ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap();
    let signed = audit::load_checkpoint(&fixture.checkpoint).unwrap().checkpoint;
    std::fs::write(out.path().join("checkpoint"), other.sign(signed.size, signed.root).to_signed_note()).unwrap();
    let err = go_audit(out.path(), 1).unwrap_err();
    assert!(err.starts_with("checkpoint signature:"), "{err}");
}

#[test]
fn a_published_history_is_never_rewritten() {
    let published = Fixture::with_entries(0);
    grow(&published, 300);
    let out = tempfile::tempdir().unwrap();
    export(&published, out.path()).unwrap();
    let served = std::fs::read(out.path().join("checkpoint")).unwrap();

    // Another history of the same size (a rewritten log, freshly signed).
    let forked = Fixture::new();
    let mut log = forked.open_signed();
    let events: Vec<_> = (1000..1300).map(event).collect();
    log.append_batch(&events).unwrap();
    match export(&forked, out.path()) {
        Err(e @ TilesError::PublishedForked { published: 300, .. }) => assert_eq!(e.reason_code(), "published_forked"),
        other => panic!("{other:?}"),
    }
    // A shorter one.
    let shorter = Fixture::with_entries(10);
    match export(&shorter, out.path()) {
        Err(e @ TilesError::PublishedAhead { published: 300, size: 10, .. }) => {
            assert_eq!(e.reason_code(), "published_ahead");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(out.path().join("checkpoint")).unwrap(), served, "nothing was replaced");
    assert_eq!(go_audit(out.path(), 1), Ok((300, 300)));
}

#[test]
fn tiles_are_cut_only_from_a_state_and_log_the_checkpoint_vouches_for() {
    let out = tempfile::tempdir().unwrap();
    // No checkpoint.
    let empty = Fixture::new();
    assert!(matches!(export(&empty, out.path()), Err(TilesError::NoCheckpoint { .. })));

    // An entry edited in place after it was checkpointed (same length, so
    // the index still points at it).
    let fixture = Fixture::with_entries(0);
    grow(&fixture, 20);
    let text = std::fs::read_to_string(&fixture.log).unwrap();
    std::fs::write(&fixture.log, text.replacen("tenant-7\"", "tenant-X\"", 1)).unwrap();
    match export(&fixture, out.path()) {
        Err(e @ TilesError::EntryMismatch { seq: 7, .. }) => assert_eq!(e.reason_code(), "entry_mismatch"),
        other => panic!("{other:?}"),
    }
    std::fs::write(&fixture.log, text).unwrap();

    // A leaf hash changed: the state no longer holds the log's entry.
    let hashes = audit::tree::hashes_path(&fixture.log);
    let original = std::fs::read(&hashes).unwrap();
    let mut edited = original.clone();
    edited[0] ^= 1;
    std::fs::write(&hashes, &edited).unwrap();
    assert!(matches!(export(&fixture, out.path()), Err(TilesError::EntryMismatch { seq: 0, .. })));
    // The last stored hash (the root of leaves 16..20) changed: the state
    // no longer gives the signed root.
    let mut edited = original.clone();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    std::fs::write(&hashes, &edited).unwrap();
    match export(&fixture, out.path()) {
        Err(e @ TilesError::TreeStateMismatch { size: 20, .. }) => assert_eq!(e.reason_code(), "tree_state_mismatch"),
        other => panic!("{other:?}"),
    }
    // A leaf hash inside a full tile changed: the tile no longer hashes to
    // the stored root of its 256 leaves.
    let full = Fixture::with_entries(0);
    grow(&full, 300);
    let full_hashes = audit::tree::hashes_path(&full.log);
    let mut edited = std::fs::read(&full_hashes).unwrap();
    let leaf_5 = audit::tree::stored_hash_index(0, 5) as usize * 32;
    edited[leaf_5] ^= 1;
    std::fs::write(&full_hashes, &edited).unwrap();
    match export(&full, out.path()) {
        Err(e @ TilesError::TileMismatch { level: 0, index: 0, .. }) => assert_eq!(e.reason_code(), "tile_mismatch"),
        other => panic!("{other:?}"),
    }
    // No state at all.
    std::fs::remove_file(&hashes).unwrap();
    match export(&fixture, out.path()) {
        Err(TilesError::TreeStateBehind { have: 0, size: 20, .. }) => {}
        other => panic!("{other:?}"),
    }
    std::fs::write(&hashes, &original).unwrap();
    assert_eq!(export(&fixture, out.path()).unwrap().size, 20);
    assert_eq!(go_audit(out.path(), 1), Ok((20, 20)));
}

/// Whoever can write the published tree cannot turn the guardian's writes
/// elsewhere: a directory of it replaced by a symlink is refused by name.
#[test]
fn a_symlink_in_the_published_tree_is_refused_not_followed() {
    let fixture = Fixture::with_entries(0);
    grow(&fixture, 300);
    let out = tempfile::tempdir().unwrap();
    export(&fixture, out.path()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(out.path().join("tile/entries")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), out.path().join("tile/entries")).unwrap();
    grow(&fixture, 600);
    match export(&fixture, out.path()) {
        Err(e @ TilesError::NotADirectory { kind: "a symlink", .. }) => assert_eq!(e.reason_code(), "not_a_directory"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing written through the link");
}
