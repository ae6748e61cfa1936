//! The compile cache: only verified bundles get in, only entries this host
//! tagged for this module and engine are loaded, and anything else (planted,
//! copied, corrupt, linked, special) is moved aside and rebuilt.

use runtime::exec::{Determinism, prepare, run};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hmac::{Hmac, Mac};
use runtime::cache::{CacheRejection, CacheSecret, RejectReason};
use runtime::{CacheStatus, CompileCache, EngineOptions, NightEngine, Outcome, wasi_linker};
use sha2::{Digest, Sha256};
use signer::bundle::{BundleBytes, SignatureFile};
use signer::manifest::Manifest;
use signer::minisign::SecretKey;
use signer::trust::TrustStore;
use signer::verify::{VerifiedBundle, verify_bundle};

use crate::support::{fixture, policy};

/// `module` signed with a throwaway key and verified: the cache takes only
/// what the verifier hands back.
fn verified(module: Vec<u8>) -> VerifiedBundle {
    let key = SecretKey::generate();
    let manifest = Manifest {
        schema: signer::manifest::MANIFEST_SCHEMA.into(),
        name: "t".into(),
        version: 1,
        version_label: "1".into(),
        module: signer::manifest::ModuleDigest::of(&module),
        expires: "2999-01-01T00:00:00Z".into(),
        provenance: Default::default(),
        capabilities: Default::default(),
    }
    .to_canonical_bytes()
    .unwrap();
    let signature = key.sign(&manifest, "file:manifest.json").unwrap();
    let signatures = vec![SignatureFile {
        file_name: format!("{}.minisig", signature.key_id),
        bytes: signature.to_file_text().into_bytes(),
    }];
    let trust = TrustStore::from_keys_and_toml(vec![key.public_key()], "threshold = 1\n").unwrap();
    verify_bundle(BundleBytes { module, manifest, signatures }, &trust, time::OffsetDateTime::now_utc()).unwrap()
}

fn run_hello(engine: &NightEngine, module: &wasmtime::Module) -> Outcome {
    let linker = wasi_linker(engine).unwrap();
    let pre = prepare(&linker, module).unwrap();
    run(engine, &pre, &policy(), &[], Determinism::Host).unwrap().outcome
}

fn open(dir: &Path) -> CompileCache {
    CompileCache::open(dir, CacheSecret::generate()).unwrap()
}

/// The entry on disk: `MAGIC ‖ tag ‖ artifact`.
fn entry_parts(bytes: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (magic, rest) = bytes.split_at(8);
    let (tag, artifact) = rest.split_at(32);
    (magic, tag, artifact)
}

fn rejection(status: CacheStatus) -> CacheRejection {
    match status {
        CacheStatus::Rebuilt { rejection } => rejection,
        other => panic!("expected a rejected entry and a rebuild, got {other:?}"),
    }
}

/// A secret whose bytes the test knows, loaded the way the runtime loads
/// its key file.
fn known_secret(dir: &Path, byte: u8) -> CacheSecret {
    let path = dir.join("cache.key");
    std::fs::write(&path, [byte; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    CacheSecret::load_or_create(&path).unwrap()
}

#[test]
fn second_load_is_a_hit_and_runs_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(dir.path().join("cache"), known_secret(dir.path(), 7)).unwrap();
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let bundle = verified(fixture("hello"));
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Compiled);
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    // The recorded tag is HMAC-SHA256 under the secret over the module hash,
    // the engine fingerprint, the wasmtime version and the artifact:
    // recomputed independently here.
    let bytes = std::fs::read(cache.artifact_path(&engine, &bundle)).unwrap();
    let (magic, tag, artifact) = entry_parts(&bytes);
    assert_eq!(magic, b"NCCACHE2");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[7u8; 32]).unwrap();
    for part in [
        &b"nightcore-compile-cache-tag-v2\0"[..],
        bundle.module_sha256().as_bytes(),
        b"\0",
        engine.fingerprint().as_bytes(),
        b"\0",
        runtime::engine::WASMTIME_VERSION.as_bytes(),
        b"\0",
        artifact,
    ] {
        mac.update(part);
    }
    assert_eq!(tag, mac.finalize().into_bytes().as_slice());
}

#[test]
fn another_modules_valid_entry_under_this_key_runs_the_verified_code_instead() {
    // The attack: someone who can write the cache directory puts the entry
    // of another module (compiled and tagged by this very host, so its tag is
    // genuine) under the verified module's key.
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir.path().join("cache"));
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let hello = verified(fixture("hello"));
    let spinner = verified(fixture("loop"));
    cache.load_or_compile(&engine, &hello).unwrap();
    cache.load_or_compile(&engine, &spinner).unwrap();
    let hello_entry = cache.artifact_path(&engine, &hello);
    std::fs::copy(cache.artifact_path(&engine, &spinner), &hello_entry).unwrap();

    let (module, status) = cache.load_or_compile(&engine, &hello).unwrap();
    let rejection = rejection(status);
    assert_eq!(rejection.reason, RejectReason::TagMismatch, "{rejection}");
    assert_eq!(rejection.reason.code(), "tag_mismatch");
    assert!(rejection.detail.contains(hello.module_sha256()), "{rejection}");
    // What runs is hello, compiled from the verified bytes, not the loop.
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    // The planted entry is kept aside as evidence, byte for byte.
    let moved = rejection.moved_to.expect("moved aside");
    assert!(moved.starts_with(dir.path().join("cache").join(runtime::cache::REJECTED_DIR)), "{}", moved.display());
    assert_eq!(std::fs::read(&moved).unwrap(), std::fs::read(cache.artifact_path(&engine, &spinner)).unwrap());
    // The rebuilt entry is hello's own again.
    let (_, status) = cache.load_or_compile(&engine, &hello).unwrap();
    assert_eq!(status, CacheStatus::Hit);
}

#[test]
fn an_entry_tagged_under_another_secret_is_rejected() {
    // An attacker who compiles the module themselves and tags it with a
    // secret of their own (or recomputes an unkeyed hash) gets nowhere.
    let dir = tempfile::tempdir().unwrap();
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let hello = verified(fixture("hello"));
    let attacker = CompileCache::open(dir.path().join("cache"), CacheSecret::generate()).unwrap();
    attacker.load_or_compile(&engine, &hello).unwrap();
    let victim = CompileCache::open(dir.path().join("cache"), CacheSecret::generate()).unwrap();
    let (_, status) = victim.load_or_compile(&engine, &hello).unwrap();
    assert_eq!(rejection(status).reason, RejectReason::TagMismatch);
}

#[test]
fn a_corrupted_artifact_is_rebuilt_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let bundle = verified(fixture("hello"));
    cache.load_or_compile(&engine, &bundle).unwrap();
    let artifact = cache.artifact_path(&engine, &bundle);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(rejection(status).reason, RejectReason::TagMismatch);
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    let (_, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Hit);
}

#[test]
fn truncated_linked_and_special_entries_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let bundle = verified(fixture("hello"));
    let artifact = cache.artifact_path(&engine, &bundle);

    std::fs::write(&artifact, b"NCCACHE2short").unwrap();
    let (_, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(rejection(status).reason, RejectReason::Malformed);

    // A link to a valid-looking entry elsewhere is not followed.
    let elsewhere = dir.path().join("elsewhere.cwasm");
    std::fs::copy(&artifact, &elsewhere).unwrap();
    std::fs::remove_file(&artifact).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &artifact).unwrap();
    let (_, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(rejection(status).reason, RejectReason::NotARegularFile);
    assert!(std::fs::symlink_metadata(&artifact).unwrap().is_file(), "replaced by a real entry");

    // A FIFO in its place neither blocks nor is renamed over in place.
    std::fs::remove_file(&artifact).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&artifact).status().unwrap();
    assert!(status.success());
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(rejection(status).reason, RejectReason::NotARegularFile);
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
}

#[test]
fn a_cache_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = CompileCache::open(&shared, CacheSecret::generate()).unwrap_err();
    assert!(err.to_string().contains("group or others may write to it"), "{err}");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(4242), Some(4242)).unwrap();
    let err = CompileCache::open(&foreign, CacheSecret::generate()).unwrap_err();
    assert!(err.to_string().contains("owned by uid 4242"), "{err}");
}

#[test]
fn a_cache_secret_others_can_read_or_replace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/cache.key");
    let first = CacheSecret::load_or_create(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
    // Loaded again, it is the same secret: an entry tagged under the first
    // verifies under the second.
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let hello = verified(fixture("hello"));
    CompileCache::open(dir.path().join("cache"), first).unwrap().load_or_compile(&engine, &hello).unwrap();
    // Loading an existing secret writes nothing (no candidate, no fsync):
    // the directory is not touched. (Compiling above took far longer than
    // one tick of the file system clock.)
    let state_dir = path.parent().unwrap();
    let before = std::fs::metadata(state_dir).unwrap().modified().unwrap();
    let again = CacheSecret::load_or_create(&path).unwrap();
    assert_eq!(std::fs::metadata(state_dir).unwrap().modified().unwrap(), before, "loading wrote to the directory");
    let (_, status) =
        CompileCache::open(dir.path().join("cache"), again).unwrap().load_or_compile(&engine, &hello).unwrap();
    assert_eq!(status, CacheStatus::Hit);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = CacheSecret::load_or_create(&path).unwrap_err();
    assert!(err.to_string().contains("group or others may read it"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
    let err = CacheSecret::load_or_create(&path).unwrap_err();
    assert!(err.to_string().contains("owned by uid 4242"), "{err}");
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let err = CacheSecret::load_or_create(&path).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    // A secret inside the cache could be replaced by whoever writes the cache.
    let cache = dir.path().join("cache");
    let err = CompileCache::open_with_secret_file(&cache, &cache.join("cache.key")).unwrap_err();
    assert!(err.to_string().contains("inside the cache directory"), "{err}");
    assert!(!cache.join("cache.key").exists(), "refused before it was created");
}

#[test]
fn the_entry_name_is_keyed_on_the_module_hash_the_engine_and_wasmtime() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    // Recomputed here from the verifier's hash, the engine's fingerprint
    // (which follows the code-generation settings: the engine's unit tests)
    // and the wasmtime version.
    let expected = |bundle: &VerifiedBundle| {
        let mut key = Sha256::new();
        for part in [
            &b"nightcore-compile-cache-key-v2\0"[..],
            bundle.module_sha256().as_bytes(),
            b"\0",
            engine.fingerprint().as_bytes(),
            b"\0",
            runtime::engine::WASMTIME_VERSION.as_bytes(),
        ] {
            key.update(part);
        }
        cache.dir().join(format!("{}.cwasm", hex::encode(key.finalize())))
    };
    let (hello, spinner) = (verified(fixture("hello")), verified(fixture("loop")));
    assert_eq!(cache.artifact_path(&engine, &hello), expected(&hello));
    assert_eq!(cache.artifact_path(&engine, &spinner), expected(&spinner));
    assert_ne!(expected(&hello), expected(&spinner));
}
