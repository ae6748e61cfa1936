//! Bundle verification cost next to SHA-256 of the same bytes, for 100 KiB,
//! 1 MiB and 10 MiB modules. Verification should be hashing-bound: the two
//! Ed25519 checks of a 2-of-2 bundle cost ~80 µs whatever the module size.
//! The single-file form (`signer embed`) is read and verified beside the
//! directory form: finding and checking its section should add little.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use std::hint::black_box;

use signer::bundle::{BundleBytes, ReadLimits, write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::SecretKey;
use signer::trust::{TrustStore, write_trust_store};
use signer::verify::verify_bundle;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = [SecretKey::generate(), SecretKey::generate()];
    let pubs = [keys[0].public_key(), keys[1].public_key()];
    write_trust_store(&dir.path().join("trust"), &[("a", &pubs[0]), ("b", &pubs[1])], "threshold = 2\n")
        .expect("trust");
    let trust = TrustStore::load(&dir.path().join("trust")).expect("trust");
    let now = time::OffsetDateTime::now_utc();

    let mut group = c.benchmark_group("verify_bundle");
    for (label, size) in [("100KiB", 100 * 1024), ("1MiB", 1 << 20), ("10MiB", 10 << 20)] {
        // A module of `size` bytes: the wasm header and one custom section,
        // so that the single-file form can be made from it.
        let filler: Vec<u8> = (0..size - 32).map(|i| (i * 31 % 251) as u8).collect();
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend_from_slice(&signer::sections::custom_section("filler", &filler));
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: "bench".into(),
            version: 1,
            version_label: "1".into(),
            module: ModuleDigest::of(&module),
            expires: "2999-01-01T00:00:00Z".into(),
            provenance: Provenance::default(),
            capabilities: Capabilities::default(),
        };
        let path = dir.path().join(label);
        write_unsigned(&path, &module, &manifest).expect("bundle");
        let manifest_bytes = manifest.to_canonical_bytes().expect("manifest");
        for key in &keys {
            write_signature(&path, &key.sign(&manifest_bytes, "bench").expect("sign")).expect("sig");
        }
        let bytes = BundleBytes::read(&path, &ReadLimits::default()).expect("read");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("sha256_only", label), &bytes, |b, bytes| {
            b.iter(|| black_box(Sha256::digest(black_box(&bytes.module))))
        });
        // The clone is the price of handing verify_bundle owned bytes; it is
        // measured separately so that it can be subtracted.
        group.bench_with_input(BenchmarkId::new("clone_only", label), &bytes, |b, bytes| {
            b.iter(|| black_box(bytes.clone()))
        });
        group.bench_with_input(BenchmarkId::new("verify_bundle", label), &bytes, |b, bytes| {
            b.iter(|| verify_bundle(black_box(bytes.clone()), &trust, now).expect("verifies"))
        });
        group.bench_with_input(BenchmarkId::new("read_and_verify", label), &path, |b, path| {
            b.iter(|| {
                verify_bundle(BundleBytes::read(path, &ReadLimits::default()).expect("read"), &trust, now)
                    .expect("verifies")
            })
        });
        let single = dir.path().join(format!("{label}.wasm"));
        std::fs::write(&single, signer::embed::embed(&bytes).expect("embed")).expect("write");
        group.bench_with_input(BenchmarkId::new("read_and_verify_single_file", label), &single, |b, path| {
            b.iter(|| {
                verify_bundle(BundleBytes::read_any(path, &ReadLimits::default()).expect("read"), &trust, now)
                    .expect("verifies")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
