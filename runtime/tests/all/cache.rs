//! The compile cache: only verified bundles get in, valid artifacts are hits,
//! and anything corrupt is rebuilt rather than loaded.

use runtime::exec::{Determinism, prepare, run};
use runtime::{CacheStatus, CompileCache, EngineOptions, NightEngine, Outcome, wasi_linker};
use sha2::{Digest, Sha256};
use signer::manifest::Manifest;
use signer::verify::VerifiedBundle;

use crate::support::{fixture, policy};

fn verified(module: Vec<u8>) -> VerifiedBundle {
    // The cache takes a `VerifiedBundle`; the fields are what verification
    // would hand back for this module.
    let sha = hex::encode(Sha256::digest(&module));
    let manifest_bytes = b"{}".to_vec();
    VerifiedBundle {
        module,
        manifest: dummy_manifest(),
        manifest_sha256: hex::encode(Sha256::digest(&manifest_bytes)),
        manifest_bytes,
        module_sha256: sha,
        signers: Vec::new(),
    }
}

fn dummy_manifest() -> Manifest {
    Manifest {
        schema: signer::manifest::MANIFEST_SCHEMA.into(),
        name: "t".into(),
        version: 1,
        version_label: "1".into(),
        module: signer::manifest::ModuleDigest::of(b""),
        expires: "2099-01-01T00:00:00Z".into(),
        provenance: Default::default(),
        capabilities: Default::default(),
    }
}

fn run_hello(engine: &NightEngine, module: &wasmtime::Module) -> Outcome {
    let linker = wasi_linker(engine).unwrap();
    let pre = prepare(&linker, module).unwrap();
    run(engine, &pre, &policy(), &[], Determinism::Host).unwrap().outcome
}

#[test]
fn second_load_is_a_hit_and_runs_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("cache"));
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let bundle = verified(fixture("hello"));
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Compiled);
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    // The artifact's own hash is recorded beside it.
    let artifact = cache.artifact_path(&engine, &bundle);
    let recorded = std::fs::read_to_string(format!("{}.sha256", artifact.display())).unwrap();
    assert_eq!(recorded.trim().len(), 64);
}

#[test]
fn a_corrupted_artifact_is_rebuilt_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path());
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let bundle = verified(fixture("hello"));
    cache.load_or_compile(&engine, &bundle).unwrap();
    let artifact = cache.artifact_path(&engine, &bundle);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let (module, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    match status {
        CacheStatus::Rebuilt { reason } => assert!(reason.contains("does not match the recorded"), "{reason}"),
        other => panic!("expected a rebuild, got {other:?}"),
    }
    assert_eq!(run_hello(&engine, &module), Outcome::Exited { code: 0 });
    let (_, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Hit);
}

#[test]
fn a_truncated_artifact_and_a_lost_hash_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path());
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let bundle = verified(fixture("hello"));
    cache.load_or_compile(&engine, &bundle).unwrap();
    let artifact = cache.artifact_path(&engine, &bundle);
    std::fs::write(&artifact, b"").unwrap();
    let (_, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status.kind(), "rebuilt");
    // Without its recorded hash an artifact is treated as absent.
    std::fs::remove_file(format!("{}.sha256", artifact.display())).unwrap();
    let (_, status) = cache.load_or_compile(&engine, &bundle).unwrap();
    assert_eq!(status, CacheStatus::Compiled);
}

#[test]
fn different_modules_have_different_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path());
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let a = cache.artifact_path(&engine, &verified(fixture("hello")));
    let b = cache.artifact_path(&engine, &verified(fixture("loop")));
    assert_ne!(a, b);
}
