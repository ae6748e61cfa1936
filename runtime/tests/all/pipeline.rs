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
