//! The verify-then-execute pipeline through the library API.

use runtime::{
    CacheStatus, CompileCache, EngineOptions, ExecOptions, HostPolicies, NightEngine, Outcome, Verification,
    exec_bundle, wasi_linker,
};
use signer::manifest::Capabilities;
use signer::trust::TrustStore;

use crate::support::{Signer, fixture, unsigned_bundle};

#[test]
fn an_oversized_module_is_refused_before_it_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let bundle = signer.bundle(&dir.path().join("b"), "big", &fixture("hello"), Capabilities::default());
    let trust = TrustStore::load(&signer.trust_dir).unwrap();
    let policies = HostPolicies::default();
    let mut options = ExecOptions::new(Verification::Required(&trust), &policies);
    options.max_module_bytes = 16;
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let refusal = exec_bundle(&engine, &linker, &bundle, &[], &options).unwrap_err();
    assert_eq!(refusal.reason_code(), "file_too_large");
    assert_eq!(refusal.stage(), "read");
    assert!(!refusal.is_host_io());
    assert!(refusal.to_string().contains("over the 16-byte cap"), "{refusal}");
}

#[test]
fn unverified_runs_never_touch_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = unsigned_bundle(&dir.path().join("b"), "hello", &fixture("hello"), Capabilities::default());
    let cache = CompileCache::open(dir.path().join("cache"), runtime::cache::CacheSecret::generate()).unwrap();
    let policies = HostPolicies::default();
    let mut options = ExecOptions::new(Verification::DangerAllowUnsigned, &policies);
    options.cache = Some(&cache);
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let report = exec_bundle(&engine, &linker, &bundle, &[], &options).unwrap();
    assert_eq!(report.run.outcome, Outcome::Exited { code: 0 });
    assert_eq!(report.cache, CacheStatus::Bypassed);
    assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 0, "nothing was stored");
}

#[test]
fn the_expected_tenant_must_match_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let bundle = signer.bundle(&dir.path().join("b"), "mallory", &fixture("hello"), Capabilities::default());
    let trust = TrustStore::load(&signer.trust_dir).unwrap();
    let policies = HostPolicies::default();
    let mut options = ExecOptions::new(Verification::Required(&trust), &policies);
    options.expected_tenant = Some("alice");
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let refusal = exec_bundle(&engine, &linker, &bundle, &[], &options).unwrap_err();
    assert_eq!(refusal.to_string(), "bundle in the directory of tenant alice is signed for tenant mallory");
}

#[test]
fn an_expired_bundle_is_refused_with_the_signer_reason() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let bundle = signer.bundle(&dir.path().join("b"), "hello", &fixture("hello"), Capabilities::default());
    let trust = TrustStore::load(&signer.trust_dir).unwrap();
    let policies = HostPolicies::default();
    let mut options = ExecOptions::new(Verification::Required(&trust), &policies);
    options.now = time::macros::datetime!(2100-01-01 00:00 UTC);
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let refusal = exec_bundle(&engine, &linker, &bundle, &[], &options).unwrap_err();
    assert_eq!(refusal.reason_code(), "expired");
    assert_eq!(refusal.stage(), "verify");
}

#[test]
fn what_runs_is_what_was_verified_not_what_is_on_disk_later() {
    // The attack: between verification and the run, whoever can write the
    // bundle directory swaps in another signed tenant module. The run must
    // execute the verified bytes, so nothing may read the module again.
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let bundle = signer.bundle(&dir.path().join("b"), "t", &fixture("hello"), Capabilities::default());
    let other =
        signer.bundle(&dir.path().join("other"), "t", &crate::support::exit_module(42), Capabilities::default());
    let trust = TrustStore::load(&signer.trust_dir).unwrap();
    let cache = CompileCache::open(dir.path().join("cache"), runtime::cache::CacheSecret::generate()).unwrap();
    let policies = HostPolicies::default();
    let mut options = ExecOptions::new(Verification::Required(&trust), &policies);
    options.cache = Some(&cache);
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let hello_sha256 = signer::manifest::ModuleDigest::of(&fixture("hello")).sha256;
    for round in ["compiled", "cached"] {
        let ready = runtime::prepare_bundle(&engine, &linker, &bundle, &options).unwrap();
        // Every file of the directory becomes the other, validly signed, bundle's.
        let signature = format!("signatures/{}.minisig", signer.key.key_id());
        let saved: Vec<(std::path::PathBuf, Vec<u8>)> = ["module.wasm", "manifest.json", signature.as_str()]
            .iter()
            .map(|f| (bundle.join(f), std::fs::read(bundle.join(f)).unwrap()))
            .collect();
        for (f, (path, _)) in ["module.wasm", "manifest.json", signature.as_str()].iter().zip(&saved) {
            std::fs::write(path, std::fs::read(other.join(f)).unwrap()).unwrap();
        }
        let report = runtime::run_ready(&engine, &ready, &[], options.determinism).unwrap();
        assert_eq!(report.run.outcome, Outcome::Exited { code: 0 }, "{round}");
        assert_eq!(report.run.stdout, b"hello\n", "{round}");
        assert_eq!(report.facts.module_sha256, hello_sha256, "{round}");
        for (path, bytes) in saved {
            std::fs::write(path, bytes).unwrap();
        }
    }
}
