//! Single-file modules (`signer::embed`): every byte of one, flipped in turn,
//! is refused, and with the reason its region calls for.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

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

/// A section size or name length (the walker's own reader).
fn leb_u32(bytes: &[u8]) -> (u32, usize) {
    signer::sections::read_leb_u32(bytes).expect("a well-formed LEB128")
}

/// The one reason a flip of bit 0 of byte `i` must get, computed from what
/// that byte is in the file's structure.
fn expected_reason(file: &[u8], module_len: usize, i: usize) -> &'static str {
    use base64::Engine as _;
    let flipped = file[i] ^ 0x01;
    if i < 4 {
        return "not_wasm";
    }
    if i < 8 {
        return "malformed_module";
    }
    if i < module_len {
        // The module's own sections. The walk reads only section headers, so
        // a changed content byte is the hash's to catch; a changed id or size
        // breaks the walk (ids out of order, sizes past the end), except an
        // id that becomes 0: a custom section, which the walk skips if its
        // content starts with a valid name.
        // Section ids in the order a module must have them.
        const ORDER: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11];
        let rank = |id: u8| ORDER.iter().position(|&o| o == id);
        let mut ids = Vec::new();
        let mut at = 8;
        while at < module_len {
            let (size, size_len) = leb_u32(&file[at + 1..]);
            ids.push((at, file[at]));
            at += 1 + size_len + size as usize;
        }
        let mut at = 8;
        loop {
            let (size, size_len) = leb_u32(&file[at + 1..]);
            let content = at + 1 + size_len..at + 1 + size_len + size as usize;
            if i == at && flipped == 0 {
                let (name_len, name_leb) = leb_u32(&file[content.start..]);
                let name = content.start + name_leb..content.start + name_leb + name_len as usize;
                let valid = name.end <= content.end && std::str::from_utf8(&file[name]).is_ok();
                return if valid { "hash_mismatch" } else { "malformed_module" };
            }
            if i == at {
                // Another known id still in order walks (the walk reads no
                // contents), unless it adds or removes the function or code
                // section, whose counts must agree.
                let index = ids.iter().position(|&(start, _)| start == at).unwrap();
                let before = ids[..index].iter().rev().find_map(|&(_, id)| rank(id));
                let after = ids[index + 1..].iter().find_map(|&(_, id)| rank(id));
                let in_order =
                    rank(flipped).is_some_and(|r| before.is_none_or(|b| b < r) && after.is_none_or(|a| r < a));
                let pairs = [3, 10].contains(&file[at]) || [3, 10].contains(&flipped);
                return if in_order && !pairs { "hash_mismatch" } else { "malformed_module" };
            }
            if i < content.start {
                return "malformed_module";
            }
            // The function and code sections' entry counts must agree, and the
            // parser holds them to it as it walks.
            if matches!(file[at], 3 | 10) && i < content.start + leb_u32(&file[content.start..]).1 {
                return "malformed_module";
            }
            if i < content.end {
                return "hash_mismatch";
            }
            at = content.end;
        }
    }
    // Our section: id, size, then the name. A changed id or size breaks the
    // walk; a changed name (or its length) hides the section.
    let (size, size_len) = leb_u32(&file[module_len + 1..]);
    let name_at = module_len + 1 + size_len;
    let payload_at = name_at + 1 + signer::embed::SECTION_NAME.len();
    assert_eq!(payload_at + size as usize - (1 + signer::embed::SECTION_NAME.len()), file.len());
    if i < name_at {
        return "malformed_module";
    }
    if i < payload_at {
        return "no_bundle_section";
    }
    // The payload: `{"manifest":"…","signatures":[{"file":"…","text":"…"}]}`.
    let payload = std::str::from_utf8(&file[payload_at..]).unwrap();
    let at = i - payload_at;
    let value: serde_json::Value = serde_json::from_str(payload).unwrap();
    let manifest_json = serde_json::to_string(value["manifest"].as_str().unwrap()).unwrap();
    let manifest_at = payload.find(&manifest_json).unwrap() + 1;
    let manifest_end = manifest_at + manifest_json.len() - 2;
    // Inside a JSON string, a byte that is, or becomes, a quote or a
    // backslash breaks the string or an escape: the section no longer parses.
    let breaks_string = |b: u8| matches!(b, b'"' | b'\\') || matches!(b ^ 1, b'"' | b'\\');
    if (manifest_at..manifest_end).contains(&at) {
        // The signed manifest text: any other change is a changed statement.
        return if breaks_string(file[i]) { "malformed_bundle_section" } else { "bad_signature" };
    }
    let text_json = serde_json::to_string(value["signatures"][0]["text"].as_str().unwrap()).unwrap();
    let text_at = payload.find(&text_json).unwrap() + 1;
    let text = value["signatures"][0]["text"].as_str().unwrap();
    if !(text_at..text_at + text_json.len() - 2).contains(&at) {
        // The framing: keys, punctuation, the file name (`KEYID.minisig`,
        // recomputed by the canonical check).
        return "malformed_bundle_section";
    }
    // The signature file text, as escaped in the JSON: its lines are
    // `untrusted comment: …`, the base64 signature, `trusted comment: …`,
    // the base64 global signature. Walk them with their offsets in `payload`.
    let escaped = &payload[text_at..text_at + text_json.len() - 2];
    let mut offset = text_at;
    let lines: Vec<(usize, &str)> = escaped
        .split("\\n")
        .map(|line| {
            let start = offset;
            offset += line.len() + 2;
            (start, line)
        })
        .collect();
    assert_eq!(lines.len(), 5, "{text:?}");
    let (line_at, line) = *lines.iter().rev().find(|(start, _)| *start <= at).unwrap();
    let in_line = at - line_at;
    if in_line >= line.len() {
        return "malformed_bundle_section"; // the escaped newline after it
    }
    let line_index = lines.iter().position(|(start, _)| *start == line_at).unwrap();
    match line_index {
        // The untrusted comment is fixed by the canonical form.
        0 => "malformed_bundle_section",
        1 | 3 => {
            let decode = |t: &str| base64::engine::general_purpose::STANDARD.decode(t).ok();
            let original = decode(line).unwrap();
            let mut changed = line.as_bytes().to_vec();
            changed[in_line] = flipped;
            let Some(decoded) = std::str::from_utf8(&changed).ok().and_then(decode) else {
                return "malformed_bundle_section"; // not base64 any more
            };
            let differs: Vec<usize> = (0..original.len()).filter(|&k| original[k] != decoded[k]).collect();
            match (line_index, differs.first()) {
                // Same bytes from other text: padding bits, which the canonical form fixes.
                (_, None) => "malformed_bundle_section",
                // The algorithm and the key id (which names the file) lead the signature line.
                (1, Some(&k)) if k < 10 => "malformed_bundle_section",
                _ => "bad_signature",
            }
        }
        // `trusted comment: ` is syntax; what follows is signed by the global signature.
        2 if in_line < "trusted comment: ".len() => "malformed_bundle_section",
        2 => "bad_signature",
        _ => unreachable!("a fifth line of a signature file"),
    }
}

#[test]
fn every_flipped_byte_is_refused_with_the_reason_of_its_region() {
    let s = signed();
    assert_eq!(reason(&s.file, &s.trust), Ok(()));
    let mut seen = std::collections::BTreeMap::<&'static str, usize>::new();
    for i in 0..s.file.len() {
        let mut flipped = s.file.clone();
        flipped[i] ^= 0x01;
        let code = reason(&flipped, &s.trust).expect_err(&format!("a flip at byte {i} still verifies"));
        let expected = expected_reason(&s.file, s.module.len(), i);
        assert_eq!(code, expected, "flip at byte {i} of {} ({:?})", s.file.len(), s.file[i] as char);
        *seen.entry(code).or_default() += 1;
    }
    // The sweep reached every kind of region.
    for code in [
        "not_wasm",
        "malformed_module",
        "hash_mismatch",
        "no_bundle_section",
        "malformed_bundle_section",
        "bad_signature",
    ] {
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
