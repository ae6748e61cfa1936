//! Single-file signed modules: a bundle's manifest and signatures carried in a
//! custom section of `module.wasm` itself, for channels that ship one file
//! (registries, OCI layers, CDNs).
//!
//! Layout: the module's own sections, then exactly one custom section named
//! [`SECTION_NAME`], **last**. Its payload is canonical JSON
//! `{"manifest": "<manifest.json text>", "signatures": [{"file": "<KEYID>.minisig", "text": "…"}]}`,
//! in exactly the form [`embed`] writes (anything else is refused, so no byte
//! of the file can change unnoticed, not even the unsigned ones).
//! The manifest's module hash is over the bytes *before* that section, so
//! embedding never changes what was signed, and extraction is a cut at the
//! section's first byte. A file with two such sections, or with one that is not
//! last (it would then sit inside the hashed bytes), is refused.

use serde::{Deserialize, Serialize};

use crate::bundle::{BundleBytes, ReadLimits, SIGNATURE_SUFFIX, SignatureFile};
use crate::canonical::to_canonical_bytes;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::minisign::Signature;
use crate::sections::{CustomAt, SectionsError, custom_section, custom_sections};

/// Name of the custom section that carries the signed manifest.
pub const SECTION_NAME: &str = "nightcore.bundle.v1";

/// Why a single-file module could not be made or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbedError {
    #[error("not a WebAssembly module (no \\0asm header)")]
    NotWasm,
    #[error("section at byte {offset} is truncated or its size is malformed")]
    MalformedSection { offset: usize },
    #[error("the module has {count} {SECTION_NAME} sections; exactly one is allowed")]
    DuplicateSection { count: usize },
    #[error(
        "the {SECTION_NAME} section at byte {offset} is not the last section, so it would be inside the signed bytes"
    )]
    SectionNotLast { offset: usize },
    #[error("the module carries no {SECTION_NAME} section")]
    NoSection,
    #[error("the {SECTION_NAME} section is malformed: {0}")]
    MalformedPayload(String),
    #[error("the module inside the single file is {size} bytes, over the {max}-byte cap")]
    ModuleTooLarge { size: u64, max: u64 },
    #[error("the {SECTION_NAME} section (or the manifest in it) is {size} bytes, over the {max}-byte cap")]
    SectionTooLarge { size: u64, max: u64 },
}

impl EmbedError {
    /// A stable snake_case code, the same wherever a single file is read
    /// (`signer verify`, `runtime exec`, the guardian).
    pub fn reason_code(&self) -> &'static str {
        match self {
            EmbedError::NotWasm => "not_wasm",
            EmbedError::MalformedSection { .. } => "malformed_module",
            EmbedError::DuplicateSection { .. } => "duplicate_bundle_section",
            EmbedError::SectionNotLast { .. } => "bundle_section_not_last",
            EmbedError::NoSection => "no_bundle_section",
            EmbedError::MalformedPayload(_) => "malformed_bundle_section",
            EmbedError::ModuleTooLarge { .. } | EmbedError::SectionTooLarge { .. } => "file_too_large",
        }
    }
}

/// Room a bundle section may take on top of the module cap: the manifest and
/// the signature files, JSON-escaped.
pub fn section_allowance(max_signatures: usize) -> u64 {
    let escaped = |bytes: usize| bytes as u64 * 2;
    escaped(crate::manifest::MAX_MANIFEST_BYTES)
        + escaped(crate::minisign::MAX_SIGNATURE_FILE_BYTES) * max_signatures as u64
        + 4096
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    manifest: String,
    signatures: Vec<EmbeddedSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddedSignature {
    file: String,
    text: String,
}

/// Finds our section, after checking that there is at most one and that it
/// is last.
fn find_section(file: &[u8]) -> Result<Option<CustomAt>, EmbedError> {
    let found = custom_sections(file, SECTION_NAME).map_err(|e| match e {
        SectionsError::NotWasm => EmbedError::NotWasm,
        SectionsError::Malformed { offset } => EmbedError::MalformedSection { offset },
    })?;
    match (found.count, found.last) {
        (0, _) | (_, None) => Ok(None),
        (1, Some(only)) if only.end != file.len() => Err(EmbedError::SectionNotLast { offset: only.start }),
        (1, Some(only)) => Ok(Some(only)),
        (count, Some(_)) => Err(EmbedError::DuplicateSection { count }),
    }
}

/// The untrusted comment every embedded signature carries. minisign does not
/// sign that line, so the single-file form fixes it rather than let it vary.
pub const EMBEDDED_UNTRUSTED_COMMENT: &str = "signature from minisign secret key";

/// Writes the single-file form of a bundle. A module that already carries our
/// section (re-embedding) has it replaced, never a second one appended.
///
/// Signature files are normalised: each is named after its key id and carries
/// [`EMBEDDED_UNTRUSTED_COMMENT`]. Neither the name nor that comment is
/// signed, so fixing them is what lets [`extract`] refuse *every* changed
/// byte: a file whose section is not exactly what `embed` writes is refused.
pub fn embed(bundle: &BundleBytes) -> Result<Vec<u8>, EmbedError> {
    let module = match find_section(&bundle.module)? {
        Some(found) => &bundle.module[..found.start],
        None => &bundle.module[..],
    };
    let section = encode_section(&bundle.manifest, &bundle.signatures)?;
    let mut out = Vec::with_capacity(module.len() + section.len());
    out.extend_from_slice(module);
    out.extend_from_slice(&section);
    Ok(out)
}

/// The whole custom section (id, size, name, payload) for these parts, in
/// the one canonical form.
fn encode_section(manifest: &[u8], signatures: &[SignatureFile]) -> Result<Vec<u8>, EmbedError> {
    let manifest = String::from_utf8(manifest.to_vec())
        .map_err(|_| EmbedError::MalformedPayload("manifest is not UTF-8".into()))?;
    let mut embedded = signatures
        .iter()
        .map(|s| {
            let mut signature = Signature::from_file_bytes(&s.bytes)
                .map_err(|e| EmbedError::MalformedPayload(format!("{}: {e}", s.file_name)))?;
            signature.untrusted_comment = EMBEDDED_UNTRUSTED_COMMENT.to_string();
            Ok(EmbeddedSignature {
                file: format!("{}{SIGNATURE_SUFFIX}", signature.key_id),
                text: signature.to_file_text(),
            })
        })
        .collect::<Result<Vec<_>, EmbedError>>()?;
    embedded.sort_by(|a, b| (&a.file, &a.text).cmp(&(&b.file, &b.text)));
    let payload = to_canonical_bytes(&Payload { manifest, signatures: embedded })
        .map_err(|e| EmbedError::MalformedPayload(e.to_string()))?;
    if u32::try_from(payload.len()).is_err() {
        return Err(EmbedError::MalformedPayload("section over 4 GiB".into()));
    }
    Ok(custom_section(SECTION_NAME, &payload))
}

/// Splits a single-file module back into the bundle it carries (taking the
/// file's buffer, which becomes the module's): the module
/// bytes before the section, the manifest and the signature files. The result
/// goes through the same [`crate::verify::verify_bundle`] as a directory bundle.
///
/// The section must be byte for byte what [`embed`] writes for the parts it
/// holds, so the bytes no signature covers (file names, untrusted comments,
/// JSON spacing and escapes, base64 padding bits) cannot be altered either.
pub fn extract(file: Vec<u8>, limits: &ReadLimits) -> Result<BundleBytes, EmbedError> {
    let found = find_section(&file)?.ok_or(EmbedError::NoSection)?;
    if found.start as u64 > limits.max_module_bytes {
        return Err(EmbedError::ModuleTooLarge { size: found.start as u64, max: limits.max_module_bytes });
    }
    // Caps before parsing: the section can hold no more than a manifest and
    // the signature files, as a directory bundle's files are capped.
    let allowance = section_allowance(limits.max_signatures);
    if found.data.len() as u64 > allowance {
        return Err(EmbedError::SectionTooLarge { size: found.data.len() as u64, max: allowance });
    }
    let payload: Payload =
        serde_json::from_slice(&file[found.data.clone()]).map_err(|e| EmbedError::MalformedPayload(e.to_string()))?;
    if payload.manifest.len() > MAX_MANIFEST_BYTES {
        return Err(EmbedError::SectionTooLarge {
            size: payload.manifest.len() as u64,
            max: MAX_MANIFEST_BYTES as u64,
        });
    }
    if payload.signatures.len() > limits.max_signatures {
        return Err(EmbedError::MalformedPayload(format!(
            "{} signatures, over the cap of {}",
            payload.signatures.len(),
            limits.max_signatures
        )));
    }
    let signatures: Vec<SignatureFile> = payload
        .signatures
        .into_iter()
        .map(|s| SignatureFile { file_name: s.file, bytes: s.text.into_bytes() })
        .collect();
    let manifest = payload.manifest.into_bytes();
    if encode_section(&manifest, &signatures)? != file[found.start..] {
        return Err(EmbedError::MalformedPayload(
            "the section is not in the canonical form signer embed writes".into(),
        ));
    }
    // The module is the file cut at the section: no copy of a large module.
    let mut module = file;
    module.truncate(found.start);
    Ok(BundleBytes { module, manifest, signatures })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> BundleBytes {
        let key = crate::minisign::SecretKey::from_seed(&[7; 32], crate::minisign::KeyId([1; 8]));
        let signature = key.sign(b"{\"k\":1}", "file:manifest.json").unwrap();
        BundleBytes {
            // A module with a type section and an unrelated custom section.
            module: b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\0\x06\x04note\x01".to_vec(),
            manifest: b"{\"k\":1}".to_vec(),
            signatures: vec![SignatureFile {
                file_name: format!("{}.minisig", signature.key_id),
                bytes: signature.to_file_text().into_bytes(),
            }],
        }
    }

    #[test]
    fn signature_names_and_untrusted_comments_are_normalised_and_then_fixed() {
        let mut b = bundle();
        let text = String::from_utf8(b.signatures[0].bytes.clone()).unwrap();
        b.signatures[0].bytes = text.replace(EMBEDDED_UNTRUSTED_COMMENT, "anything at all").into_bytes();
        b.signatures[0].file_name = "manifest.json.minisig".into();
        let file = embed(&b).unwrap();
        assert_eq!(file, embed(&bundle()).unwrap());
        assert_eq!(extract(file.clone(), &ReadLimits::default()).unwrap(), bundle());
        // The same JSON value spelled differently is not what embed writes.
        let module_len = bundle().module.len();
        let payload_at = file.windows(2).position(|w| w == b"{\"").unwrap();
        let payload = String::from_utf8(file[payload_at..].to_vec()).unwrap();
        for respelled in
            [payload.replacen("{\"manifest\":", "{ \"manifest\":", 1), payload.replacen(":1}", ":\\u0031}", 1)]
        {
            assert_ne!(respelled, payload);
            let mut forged = file[..module_len].to_vec();
            forged.extend_from_slice(&custom_section(SECTION_NAME, respelled.as_bytes()));
            let err = extract(forged.clone(), &ReadLimits::default()).unwrap_err();
            assert!(matches!(err, EmbedError::MalformedPayload(ref m) if m.contains("canonical")), "{err}");
        }
    }

    #[test]
    fn round_trip_is_byte_identical_and_re_embedding_replaces() {
        let b = bundle();
        let file = embed(&b).unwrap();
        assert!(file.starts_with(&b.module));
        assert_eq!(extract(file.clone(), &ReadLimits::default()).unwrap(), b);
        let mut with_file_as_module = b.clone();
        with_file_as_module.module = file.clone();
        assert_eq!(embed(&with_file_as_module).unwrap(), file, "re-embedding replaces the section");
    }

    #[test]
    fn two_sections_or_a_section_not_last_are_refused() {
        let file = embed(&bundle()).unwrap();
        let section = file[bundle().module.len()..].to_vec();
        let mut twice = file.clone();
        twice.extend_from_slice(&section);
        assert_eq!(
            extract(twice.clone(), &ReadLimits::default()).unwrap_err(),
            EmbedError::DuplicateSection { count: 2 }
        );
        let mut not_last = file.clone();
        not_last.extend_from_slice(b"\x00\x02\x01x");
        assert_eq!(
            extract(not_last.clone(), &ReadLimits::default()).unwrap_err(),
            EmbedError::SectionNotLast { offset: bundle().module.len() }
        );
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        assert_eq!(extract(b"nope".to_vec(), &ReadLimits::default()).unwrap_err(), EmbedError::NotWasm);
        assert_eq!(extract(bundle().module.clone(), &ReadLimits::default()).unwrap_err(), EmbedError::NoSection);
        let file = embed(&bundle()).unwrap();
        // Every cut loses part of the last section, or all of it: a cut
        // between two sections leaves a module without ours, any other cut a
        // section that runs past the end.
        let mut ends: Vec<usize> = crate::sections::section_ranges(&file).into_iter().map(|(_, r)| r.end).collect();
        ends.push(8);
        for cut in 0..file.len() {
            let err = extract(file[..cut].to_vec(), &ReadLimits::default()).unwrap_err();
            let expected = match cut {
                0..4 => "not_wasm",
                // `\0asm` without a whole version.
                4..8 => "malformed_module",
                _ if ends.contains(&cut) => "no_bundle_section",
                _ => "malformed_module",
            };
            assert_eq!(err.reason_code(), expected, "cut at byte {cut}: {err}");
        }
        let mut bad_size = bundle().module;
        bad_size.extend_from_slice(b"\x00\xff\xff\xff\xff\x7f");
        assert!(matches!(
            extract(bad_size.clone(), &ReadLimits::default()).unwrap_err(),
            EmbedError::MalformedSection { .. }
        ));
    }
}
