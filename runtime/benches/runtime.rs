//! Runtime benchmarks: instantiate + run of a hello module, compiling a module
//! versus loading its cached artifact, tenants per second for `--all` over
//! 100 trivial signed bundles, and what our validation (imports, structure,
//! compile-cost caps) costs next to wasmparser's own validation alone.
//!
//! Run with `cargo bench -p runtime --bench runtime`; add `-- --sample-size 10`
//! for a quick pass.
// Benchmark setup is test code: a failed step should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runtime::cache::compile;
use runtime::exec::{Determinism, prepare, run};
use runtime::{
    Allocation, CompileCache, EffectivePolicy, EngineOptions, ExecOptions, HostPolicies, NightEngine, PoolingOptions,
    Verification, run_all, wasi_linker,
};
use signer::bundle::{BundleBytes, write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::SecretKey;
use signer::trust::{TrustStore, write_trust_store};
use signer::verify::{VerifiedBundle, danger_accept_unsigned};

const HELLO: &str = include_str!("../tests/fixtures/hello.wat");

fn policy() -> EffectivePolicy {
    EffectivePolicy {
        tenant: "bench".into(),
        fuel: 1_000_000_000,
        memory_mib: 16,
        timeout: Duration::from_secs(10),
        max_output_bytes: 64 * 1024,
        env: BTreeMap::new(),
        preopens: Vec::new(),
        network: Vec::new(),
    }
}

/// A module with enough code for compilation time to matter: 400 functions
/// of arithmetic and control flow.
fn big_module() -> Vec<u8> {
    module_of(400)
}

/// `functions` functions of arithmetic and control flow, and `_start`.
fn module_of(functions: usize) -> Vec<u8> {
    let mut text = String::from("(module (memory (export \"memory\") 1)\n");
    for i in 0..functions {
        text.push_str(&format!(
            "(func $f{i} (param i32) (result i32) (local i32)
               (block (loop
                 (local.set 1 (i32.add (local.get 1) (i32.mul (local.get 0) (i32.const {i}))))
                 (i32.store (i32.and (local.get 1) (i32.const 0xfff0)) (local.get 1))
                 (br_if 1 (i32.gt_u (local.get 1) (i32.const 1000000)))
                 (local.set 0 (i32.add (local.get 0) (i32.const 1)))
                 (br 0)))
               (local.get 1))\n"
        ));
    }
    text.push_str("(func (export \"_start\") (drop (call $f1 (i32.const 1)))))");
    wat::parse_str(text).unwrap()
}

/// What the cache is given: the bench measures compiling and loading, not
/// signature checks, so the bundle is accepted unsigned.
fn verified(module: Vec<u8>) -> VerifiedBundle {
    let manifest = manifest("bench", &module).to_canonical_bytes().unwrap();
    danger_accept_unsigned(BundleBytes { module, manifest, signatures: Vec::new() }).unwrap()
}

fn manifest(name: &str, module: &[u8]) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA.into(),
        name: name.into(),
        version: 1,
        version_label: "1".into(),
        module: ModuleDigest::of(module),
        expires: "2099-01-01T00:00:00Z".into(),
        provenance: Provenance::default(),
        capabilities: Capabilities::default(),
    }
}

fn instantiate_and_run(c: &mut Criterion) {
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let module = compile(&engine, &wat::parse_str(HELLO).unwrap()).unwrap();
    let pre = prepare(&linker, &module).unwrap();
    let policy = policy();
    c.bench_function("hello/instantiate_and_run", |b| {
        b.iter(|| black_box(run(&engine, &pre, &policy, &[], Determinism::Host).unwrap()));
    });
}

fn compile_versus_cache(c: &mut Criterion) {
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    // hello is what a cached `runtime exec` of hello loads; the large module
    // shows how the tag's cost grows with the artifact.
    for module in [wat::parse_str(HELLO).unwrap(), big_module()] {
        let bundle = verified(module);
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path(), runtime::cache::CacheSecret::generate()).unwrap();
        cache.load_or_compile(&engine, &bundle).unwrap();
        let entry = std::fs::read(cache.artifact_path(&engine, &bundle)).unwrap();
        let mut group = c.benchmark_group(format!("cache_{}b_module_{}b_entry", bundle.module().len(), entry.len()));
        group.bench_function("compile_uncached", |b| b.iter(|| black_box(compile(&engine, bundle.module()).unwrap())));
        group.bench_function("load_cached", |b| b.iter(|| black_box(cache.load_or_compile(&engine, &bundle).unwrap())));
        // What authenticating an entry adds to a cache hit: HMAC-SHA256 over
        // the whole entry, side by side with the hit that includes it.
        group.bench_function("entry_hmac_only", |b| {
            b.iter(|| {
                let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&[7; 32]).unwrap();
                hmac::Mac::update(&mut mac, black_box(&entry));
                black_box(hmac::Mac::finalize(mac))
            })
        });
        group.finish();
    }
}

fn deploy_all(c: &mut Criterion) {
    const TENANTS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let trust_dir = dir.path().join("trust");
    write_trust_store(&trust_dir, &[("bench", &key.public_key())], "threshold = 1\n").unwrap();
    let trust = TrustStore::load(&trust_dir).unwrap();
    let deploy = dir.path().join("deploy");
    std::fs::create_dir_all(&deploy).unwrap();
    let hello = wat::parse_str(HELLO).unwrap();
    for i in 0..TENANTS {
        let name = format!("tenant-{i:03}");
        let out = deploy.join(&name);
        write_unsigned(&out, &hello, &manifest(&name, &hello)).unwrap();
        let signature = key.sign(&std::fs::read(out.join("manifest.json")).unwrap(), "bench").unwrap();
        write_signature(&out, &signature).unwrap();
    }
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pooling =
        PoolingOptions { concurrent_instances: parallel as u32, max_memory_mib: 64, max_table_elements: 10_000 };
    let engine =
        NightEngine::new(EngineOptions { allocation: Allocation::Pooling(pooling), ..EngineOptions::default() })
            .unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let policies = HostPolicies::default();
    let cache = CompileCache::open(dir.path().join("cache"), runtime::cache::CacheSecret::generate()).unwrap();
    let mut options = ExecOptions::new(Verification::Required(&trust), &policies);
    options.cache = Some(&cache);

    let mut group = c.benchmark_group("deploy_all");
    group.throughput(Throughput::Elements(TENANTS as u64));
    group.bench_function(format!("{TENANTS}_tenants_parallel_{parallel}"), |b| {
        b.iter(|| {
            let report = run_all(&engine, &linker, &deploy, &[], &options, parallel).unwrap();
            assert_eq!(report.tenants.len(), TENANTS);
            black_box(report)
        });
    });
    group.finish();
}

fn validation(c: &mut Criterion) {
    let module = module_of(20_000);
    let mut group = c.benchmark_group(format!("validate_{}kb", module.len() / 1024));
    group.throughput(Throughput::Bytes(module.len() as u64));
    group.bench_function("wasmparser_validate_all", |b| {
        b.iter(|| wasmparser::Validator::new().validate_all(black_box(&module)).unwrap())
    });
    let imports = policy().import_policy();
    group.bench_function("validate_module", |b| {
        b.iter(|| runtime::validate_module(black_box(&module), imports, 64 << 20).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = instantiate_and_run, compile_versus_cache, deploy_all, validation
}
criterion_main!(benches);
