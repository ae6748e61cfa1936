//! Single-file modules (`signer::embed`): every byte of one, flipped in turn,
//! is refused, and with the reason its region calls for.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::ops::Range;

use signer::bundle::{BundleBytes, ReadLimits, SignatureFile};
use signer::embed::{embed, extract};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::{PublicKey, SecretKey};
use signer::trust::{TrustStore, write_trust_store};
use signer::verify::verify_bundle;

const DATA: &str = "night core data segment, flipped byte by byte";

fn module() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (data (i32.const 16) "{DATA}")
             (func (export "_start")
               (drop (i64.add (i64.const 0x0123456789abcdef) (i64.const 42)))))"#
    ))
    .unwrap()
}

struct Signed {
    _dir: tempfile::TempDir,
    trust: TrustStore,
    module: Vec<u8>,
    file: Vec<u8>,
}

fn signed() -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let public: PublicKey = key.public_key();
    write_trust_store(&dir.path().join("trust"), &[("k", &public)], "threshold = 1\n").unwrap();
    let module = module();
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        name: "flip".into(),
        version: 1,
        version_label: "1.0.0".into(),
        module: ModuleDigest::of(&module),
        expires: "2999-01-01T00:00:00Z".into(),
        provenance: Provenance::default(),
        capabilities: Capabilities::default(),
    }
    .to_canonical_bytes()
    .unwrap();
    let signature = key.sign(&manifest, "file:manifest.json").unwrap();
    let bundle = BundleBytes {
        module: module.clone(),
        manifest,
        signatures: vec![SignatureFile {
            file_name: format!("{}.minisig", signature.key_id),
            bytes: signature.to_file_text().into_bytes(),
        }],
    };
    let file = embed(&bundle).unwrap();
    assert_eq!(extract(file.clone(), &ReadLimits::default()).unwrap(), bundle, "the round trip is byte-identical");
    let trust = TrustStore::load(&dir.path().join("trust")).unwrap();
    Signed { _dir: dir, trust, module, file }
}

/// The reason code a single file gets, whatever step refuses it.
fn reason(file: &[u8], trust: &TrustStore) -> Result<(), &'static str> {
    let bundle = extract(file.to_vec(), &ReadLimits::default()).map_err(|e| e.reason_code())?;
    verify_bundle(bundle, trust, time::OffsetDateTime::now_utc()).map(|_| ()).map_err(|e| e.reason_code())
}

/// Byte ranges of the function bodies and of the data segment's bytes.
fn code_and_data(module: &[u8]) -> (Vec<Range<usize>>, Range<usize>) {
    let mut bodies = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            bodies.push(body.range());
        }
    }
    let at = module.windows(DATA.len()).position(|w| w == DATA.as_bytes()).unwrap();
    (bodies, at..at + DATA.len())
}

#[test]
fn every_flipped_byte_is_refused_with_the_reason_of_its_region() {
    let s = signed();
    assert_eq!(reason(&s.file, &s.trust), Ok(()));
    let (bodies, data) = code_and_data(&s.module);
    assert!(!bodies.is_empty());
    let manifest_text = {
        let needle = b"\\\"name\\\":\\\"flip\\\"";
        let at = s.file.windows(needle.len()).position(|w| w == needle).unwrap();
        at..at + needle.len()
    };
    let mut seen = std::collections::BTreeMap::<&'static str, usize>::new();
    for i in 0..s.file.len() {
        let mut flipped = s.file.clone();
        flipped[i] ^= 0x01;
        let code = reason(&flipped, &s.trust).expect_err(&format!("a flip at byte {i} still verifies"));
        *seen.entry(code).or_default() += 1;
        let expected: &[&str] = if i < 4 {
            &["not_wasm"]
        } else if data.contains(&i) || bodies.iter().any(|b| b.contains(&i)) {
            // Content bytes: the structure holds, the signed hash does not.
            &["hash_mismatch"]
        } else if i < s.module.len() {
            // Headers and sizes: the hash, or the section walk itself.
            &["hash_mismatch", "malformed_module", "no_bundle_section", "bundle_section_not_last"]
        } else if manifest_text.contains(&i) {
            // Inside the signed manifest text.
            &["bad_signature", "malformed_bundle_section"]
        } else {
            // The section header, its name, the JSON around the texts, the signature file.
            &[
                "malformed_module",
                "no_bundle_section",
                "bundle_section_not_last",
                "malformed_bundle_section",
                "malformed_signature",
                "bad_signature",
                "untrusted_key",
                "unsigned",
            ]
        };
        assert!(expected.contains(&code), "flip at byte {i} of {}: {code}, expected one of {expected:?}", s.file.len());
    }
    // The sweep reached every kind of region.
    for code in ["not_wasm", "hash_mismatch", "no_bundle_section", "malformed_bundle_section", "bad_signature"] {
        assert!(seen.contains_key(code), "no flip produced {code}: {seen:?}");
    }
}

#[test]
fn truncated_and_oversized_single_files_are_refused_without_panicking() {
    let s = signed();
    for cut in 0..s.file.len() {
        assert!(reason(&s.file[..cut], &s.trust).is_err(), "a file cut at {cut} verifies");
    }
    let tight = ReadLimits { max_module_bytes: s.module.len() as u64 - 1, ..ReadLimits::default() };
    assert_eq!(extract(s.file.clone(), &tight).unwrap_err().reason_code(), "file_too_large");
    // A section larger than any manifest and signatures could be is refused
    // before its JSON is parsed, as a directory bundle's files are capped.
    let limits = ReadLimits { max_signatures: 1, ..ReadLimits::default() };
    let mut huge = s.module.clone();
    let filler = vec![b' '; signer::embed::section_allowance(1) as usize + 1];
    huge.extend_from_slice(&signer::sections::custom_section(signer::embed::SECTION_NAME, &filler));
    let err = extract(huge, &limits).unwrap_err();
    assert!(matches!(err, signer::embed::EmbedError::SectionTooLarge { .. }), "{err}");
    assert_eq!(err.reason_code(), "file_too_large");
}

#[test]
fn a_directory_holding_only_the_single_file_reads_as_its_bundle() {
    let s = signed();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("module.wasm"), &s.file).unwrap();
    let from_dir = BundleBytes::read(dir.path(), &ReadLimits::default()).unwrap();
    assert_eq!(from_dir, extract(s.file.clone(), &ReadLimits::default()).unwrap());
    assert_eq!(from_dir.module, s.module);
    // A signature file beside it means a directory bundle, whose manifest is missing.
    std::fs::create_dir(dir.path().join("signatures")).unwrap();
    std::fs::write(dir.path().join("signatures/x.minisig"), b"x").unwrap();
    let err = BundleBytes::read(dir.path(), &ReadLimits::default()).unwrap_err();
    assert_eq!(err.reason_code(), "bundle_incomplete", "{err}");
    // A plain module alone is a bundle missing its manifest, not a single file.
    std::fs::remove_dir_all(dir.path().join("signatures")).unwrap();
    std::fs::write(dir.path().join("module.wasm"), &s.module).unwrap();
    let err = BundleBytes::read(dir.path(), &ReadLimits::default()).unwrap_err();
    assert!(err.to_string().contains("manifest.json is missing"), "{err}");
}
