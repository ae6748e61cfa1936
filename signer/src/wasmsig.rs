//! WebAssembly module signatures in the tool-conventions format
//! (`WebAssembly/tool-conventions`, `Signatures.md`), as the `wasmsign2` command
//! line writes and reads them, so that a module signed by either tool verifies
//! with the other.
//!
//! The format, as `wasmsign2` 0.2.8 implements it:
//!
//! - the signature lives in a custom section named [`SECTION_NAME`] that must be
//!   the **first** section of the module;
//! - its payload is `spec_version (0x01) ‖ content_type (0x01, module) ‖ hash_fn
//!   (0x01, SHA-256) ‖ varuint32 count ‖ count × vec(signed hashes)`, where each
//!   signed-hashes record is `varuint32 n ‖ n × 32-byte hash ‖ varuint32 m ‖ m ×
//!   vec(signature)` and each signature is `vec(key id) ‖ algorithm (0x01,
//!   Ed25519) ‖ vec(signature bytes)`; `vec(x)` is a varuint32 length then the
//!   bytes (the length prefixes around records are what `wasmsign2` writes, although
//!   `Signatures.md` does not draw them);
//! - the hash is SHA-256 over every byte after the signature section: the other
//!   sections exactly as they are in the file, not the 8-byte header;
//! - each signature is Ed25519 over `"wasmsig" ‖ 0x01 ‖ 0x01 ‖ 0x01 ‖ h1 ‖ … ‖ hn`
//!   (the domain tag, the three identifiers, then the set's hashes concatenated).
//!
//! `wasmsign2` can also sign parts of a module separated by `signature_delimiter`
//! sections, one hash per part. This verifier checks whole modules only: a
//! signature counts when the **last** hash of its set is the hash of everything
//! after the signature section, as `Signatures.md` asks of runtimes by default
//! ("partial signatures must be ignored").
//!
//! Keys: `wasmsign2 keygen` writes a public key as `0x01 ‖ 32 bytes` and a key pair
//! as `0x81 ‖ seed ‖ public key`; `wasmsign2 verify -K` reads the former (or an
//! OpenSSH line with `-Z`). When a public key file is given, `wasmsign2` gives the
//! key its *default key id*, `HMAC-SHA256(key = public key, message = "key_id")`
//! truncated to 12 bytes, writes it into signatures and, when verifying, skips
//! signatures whose key id differs. We write that key id too, as `wasmsign2 sign
//! -K` does, so that a verifier finds the signing key without trying every
//! trusted key; a signature without a key id is tried against each trusted key.
//!
//! Minisign key ids are 8 bytes and a wasmsign2 key has none of its own, so an
//! imported key gets the first 8 bytes of its wasmsign2 default key id (see
//! [`derived_key_id`]), stored so that minisign's printing shows them in order:
//! the trust store's id is then the first 16 hex digits of the key id that
//! `wasmsign2 -v show` prints for that key's signatures.
//!
//! A signed module carries no manifest (no name, version, expiry or
//! capabilities): verification says which trusted keys signed these bytes and
//! nothing more, and the runtime still requires a signed bundle to run anything.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::minisign::{KeyId, MAX_KEY_FILE_BYTES, PublicKey, SecretKey, SignatureError};
use crate::sections::read_leb_u32;
use crate::sections::{CustomAt, SectionsError, custom_section, custom_sections};
use crate::trust::{Shortfall, TrustStore};
use crate::verify::VerifyError;

/// Name of the custom section that carries the signatures.
pub const SECTION_NAME: &str = "signature";
/// Domain-separation tag at the start of every signed message.
pub const DOMAIN: &[u8] = b"wasmsig";
pub const SPEC_VERSION: u8 = 0x01;
pub const CONTENT_TYPE_MODULE: u8 = 0x01;
pub const HASH_SHA256: u8 = 0x01;
/// Signature algorithm identifier of Ed25519.
pub const ALG_ED25519: u8 = 0x01;
/// First byte of a raw wasmsign2 Ed25519 public key file.
pub const PUBLIC_KEY_ED25519: u8 = 0x01;
/// `wasmsign2`'s own caps on hash sets and on hashes per set.
pub const MAX_HASH_SETS: usize = 64;
pub const MAX_HASHES_PER_SET: usize = 64;
/// Signatures over all sets together. Each signature without a key id may be
/// tried against every trusted key, so this bounds the work an attacker can ask for.
pub const MAX_SIGNATURES: usize = 32;
pub const MAX_KEY_ID_BYTES: usize = 64;

const WASM_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";
const HASH_BYTES: usize = 32;
const ED25519_SIGNATURE_BYTES: usize = 64;
/// DER `SubjectPublicKeyInfo` prefix of an Ed25519 key (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
const OPENSSH_ED25519: &str = "ssh-ed25519";
/// `TrustStore::threshold_for` and `may_approve` with a name no tenant can have
/// (tenant names are never empty): the global threshold and every approving key,
/// since a signed module names no tenant.
const NO_TENANT: &str = "";

/// Why bytes are not a module signed in this format, or cannot be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WasmsigError {
    #[error("not a WebAssembly module (no \\0asm version 1 header)")]
    NotWasm,
    #[error("section at byte {offset} is truncated or its size is malformed")]
    MalformedSection { offset: usize },
    #[error("the module carries no {SECTION_NAME:?} section")]
    NoSignatureSection,
    #[error("the module has {count} {SECTION_NAME:?} sections; exactly one, the first section, is allowed")]
    DuplicateSignatureSection { count: usize },
    #[error("the {SECTION_NAME:?} section at byte {offset} is not the first section of the module")]
    SignatureSectionNotFirst { offset: usize },
    #[error("the signature data is malformed at byte {offset} of the section: {reason}")]
    MalformedSignatureData { offset: usize, reason: &'static str },
    #[error("the signature data uses unsupported {field} 0x{value:02x}")]
    Unsupported { field: &'static str, value: u8 },
    #[error("the signature data has {count} {what}, over the cap of {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
}

impl WasmsigError {
    /// A stable snake_case code for JSON output.
    pub fn reason_code(&self) -> &'static str {
        match self {
            WasmsigError::NotWasm => "not_wasm",
            WasmsigError::MalformedSection { .. } => "malformed_module",
            WasmsigError::NoSignatureSection => "unsigned",
            WasmsigError::DuplicateSignatureSection { .. } => "duplicate_signature_section",
            WasmsigError::SignatureSectionNotFirst { .. } => "signature_section_not_first",
            WasmsigError::MalformedSignatureData { .. }
            | WasmsigError::Unsupported { .. }
            | WasmsigError::TooMany { .. } => "malformed_signature",
        }
    }
}

/// Why a signed module was refused. The reasons shared with bundles (revoked
/// key, bad signature, log key, threshold) are [`VerifyError`]s, so they carry the
/// same reason codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WasmsigVerifyError {
    #[error(transparent)]
    Format(#[from] WasmsigError),
    #[error(transparent)]
    Verify(VerifyError),
    #[error(
        "module hash mismatch: the signatures cover sha256 {signed}, the sections after the signature section hash to {found}"
    )]
    HashMismatch { signed: String, found: String },
    #[error("the {SECTION_NAME:?} section holds no Ed25519 signature")]
    Unsigned,
    #[error("{}", untrusted_message(*.index, .wasmsign2_key_id.as_deref()))]
    UntrustedSignature { index: usize, wasmsign2_key_id: Option<String> },
}

fn untrusted_message(index: usize, wasmsign2_key_id: Option<&str>) -> String {
    match wasmsign2_key_id {
        Some(id) => format!("signature {index} is by wasmsign2 key id {id}, which is not in the trust store"),
        None => format!(
            "signature {index} carries no key id and verifies under no key in the trust store (an untrusted key or a damaged signature)"
        ),
    }
}

impl WasmsigVerifyError {
    /// A stable snake_case code for JSON output, the same as a bundle's where
    /// the meaning is the same.
    pub fn reason_code(&self) -> &'static str {
        match self {
            WasmsigVerifyError::Format(e) => e.reason_code(),
            WasmsigVerifyError::Verify(e) => e.reason_code(),
            WasmsigVerifyError::HashMismatch { .. } => "hash_mismatch",
            WasmsigVerifyError::Unsigned => "unsigned",
            WasmsigVerifyError::UntrustedSignature { .. } => "untrusted_key",
        }
    }
}

/// Why a file is not a public key `wasmsign2` writes or reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyImportError {
    #[error("public key file is {size} bytes, over the {max}-byte cap")]
    TooLarge { size: usize, max: usize },
    #[error(
        "not an Ed25519 public key in a format wasmsign2 uses: raw 0x01 ‖ 32 bytes (wasmsign2 keygen), DER or PEM SubjectPublicKeyInfo, or an OpenSSH ssh-ed25519 line"
    )]
    UnrecognisedFormat,
    #[error("public key bytes are not a valid Ed25519 point")]
    InvalidPoint,
}

impl KeyImportError {
    /// A stable snake_case code for JSON output.
    pub fn reason_code(&self) -> &'static str {
        match self {
            KeyImportError::TooLarge { .. } => "file_too_large",
            KeyImportError::UnrecognisedFormat => "unrecognised_key_format",
            KeyImportError::InvalidPoint => "invalid_key",
        }
    }
}

/// The decoded payload of a `signature` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureData {
    pub hash_sets: Vec<SignedHashes>,
}

/// One set of hashes (one per signed part) and the signatures over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHashes {
    pub hashes: Vec<[u8; HASH_BYTES]>,
    pub signatures: Vec<HashSignature>,
}

/// One signature over a set of hashes. Signatures by algorithms other than
/// Ed25519 are kept but never count, as `wasmsign2` skips them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashSignature {
    pub key_id: Option<Vec<u8>>,
    pub algorithm: u8,
    pub signature: Vec<u8>,
}

/// Bounds-checked reading of the signature payload; every failure names the offset.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes` within the section payload, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: &'static str) -> WasmsigError {
        WasmsigError::MalformedSignatureData { offset: self.base + self.pos, reason }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, WasmsigError> {
        let byte = *self.bytes.get(self.pos).ok_or_else(|| self.error(what))?;
        self.pos += 1;
        Ok(byte)
    }

    fn leb(&mut self, what: &'static str) -> Result<usize, WasmsigError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (value, len) = read_leb_u32(rest).ok_or_else(|| self.error(what))?;
        self.pos += len;
        Ok(value as usize)
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], WasmsigError> {
        let end = self.pos.checked_add(len).filter(|end| *end <= self.bytes.len()).ok_or_else(|| self.error(what))?;
        let bytes = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A length-prefixed record, read by its own reader.
    fn record(&mut self, what: &'static str) -> Result<Reader<'a>, WasmsigError> {
        let len = self.leb(what)?;
        let base = self.base + self.pos;
        let bytes = self.take(len, what)?;
        Ok(Reader { bytes, pos: 0, base })
    }

    /// `Signatures.md`: the data ends where its last signature ends.
    fn finish(&self, what: &'static str) -> Result<(), WasmsigError> {
        if self.pos == self.bytes.len() { Ok(()) } else { Err(self.error(what)) }
    }
}

impl SignatureData {
    /// Decodes a section payload, refusing anything `wasmsign2` would not write.
    pub fn from_bytes(payload: &[u8]) -> Result<Self, WasmsigError> {
        let mut r = Reader { bytes: payload, pos: 0, base: 0 };
        for (field, expected) in [
            ("specification version", SPEC_VERSION),
            ("content type", CONTENT_TYPE_MODULE),
            ("hash function", HASH_SHA256),
        ] {
            let value = r.byte("truncated header")?;
            if value != expected {
                return Err(WasmsigError::Unsupported { field, value });
            }
        }
        let set_count = r.leb("malformed hash set count")?;
        if set_count > MAX_HASH_SETS {
            return Err(WasmsigError::TooMany { what: "hash sets", count: set_count, max: MAX_HASH_SETS });
        }
        let mut hash_sets = Vec::with_capacity(set_count);
        let mut signature_total = 0usize;
        for _ in 0..set_count {
            let mut set = r.record("truncated hash set")?;
            let hash_count = set.leb("malformed hash count")?;
            if hash_count == 0 {
                return Err(set.error("a hash set with no hashes"));
            }
            if hash_count > MAX_HASHES_PER_SET {
                return Err(WasmsigError::TooMany {
                    what: "hashes in a set",
                    count: hash_count,
                    max: MAX_HASHES_PER_SET,
                });
            }
            let hash_bytes = set.take(hash_count * HASH_BYTES, "truncated hashes")?;
            let hashes = hash_bytes.chunks_exact(HASH_BYTES).map(|h| h.try_into().unwrap_or([0; HASH_BYTES])).collect();
            let signature_count = set.leb("malformed signature count")?;
            signature_total = signature_total.saturating_add(signature_count);
            if signature_total > MAX_SIGNATURES {
                return Err(WasmsigError::TooMany { what: "signatures", count: signature_total, max: MAX_SIGNATURES });
            }
            let mut signatures = Vec::with_capacity(signature_count);
            for _ in 0..signature_count {
                let mut sig = set.record("truncated signature")?;
                let key_id_len = sig.leb("malformed key id length")?;
                if key_id_len > MAX_KEY_ID_BYTES {
                    return Err(WasmsigError::TooMany {
                        what: "key id bytes",
                        count: key_id_len,
                        max: MAX_KEY_ID_BYTES,
                    });
                }
                let key_id = sig.take(key_id_len, "truncated key id")?;
                let algorithm = sig.byte("missing algorithm identifier")?;
                let signature_len = sig.leb("malformed signature length")?;
                if algorithm == ALG_ED25519 && signature_len != ED25519_SIGNATURE_BYTES {
                    return Err(sig.error("an Ed25519 signature that is not 64 bytes"));
                }
                let signature = sig.take(signature_len, "truncated signature bytes")?;
                sig.finish("trailing bytes after a signature")?;
                signatures.push(HashSignature {
                    key_id: if key_id.is_empty() { None } else { Some(key_id.to_vec()) },
                    algorithm,
                    signature: signature.to_vec(),
                });
            }
            set.finish("trailing bytes after a hash set")?;
            hash_sets.push(SignedHashes { hashes, signatures });
        }
        r.finish("trailing bytes after the last hash set")?;
        Ok(Self { hash_sets })
    }

    /// Encodes the payload exactly as `wasmsign2` does.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256];
        write_leb(self.hash_sets.len(), &mut out);
        for set in &self.hash_sets {
            let mut record = Vec::new();
            write_leb(set.hashes.len(), &mut record);
            for hash in &set.hashes {
                record.extend_from_slice(hash);
            }
            write_leb(set.signatures.len(), &mut record);
            for signature in &set.signatures {
                let mut sig = Vec::new();
                let key_id = signature.key_id.as_deref().unwrap_or_default();
                write_leb(key_id.len(), &mut sig);
                sig.extend_from_slice(key_id);
                sig.push(signature.algorithm);
                write_leb(signature.signature.len(), &mut sig);
                sig.extend_from_slice(&signature.signature);
                write_leb(sig.len(), &mut record);
                record.extend_from_slice(&sig);
            }
            write_leb(record.len(), &mut out);
            out.extend_from_slice(&record);
        }
        out
    }
}

/// Unsigned LEB128 as `wasmsign2` writes it (shortest form).
fn write_leb(value: usize, out: &mut Vec<u8>) {
    let mut value = value as u64;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The message an Ed25519 signature over `hashes` signs.
pub fn signed_message(hashes: &[[u8; HASH_BYTES]]) -> Vec<u8> {
    let mut message = Vec::with_capacity(DOMAIN.len() + 3 + hashes.len() * HASH_BYTES);
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(&[SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256]);
    for hash in hashes {
        message.extend_from_slice(hash);
    }
    message
}

/// Finds the signature section, after checking that there is at most one and
/// that it is the first section.
fn find_signature_section(file: &[u8]) -> Result<Option<CustomAt>, WasmsigError> {
    if file.len() < WASM_HEADER.len() || file[..WASM_HEADER.len()] != WASM_HEADER {
        return Err(WasmsigError::NotWasm);
    }
    let found = custom_sections(file, SECTION_NAME).map_err(|e| match e {
        SectionsError::NotWasm => WasmsigError::NotWasm,
        SectionsError::Malformed { offset } => WasmsigError::MalformedSection { offset },
    })?;
    match (found.count, found.first) {
        (0, _) | (_, None) => Ok(None),
        (1, Some(only)) if only.start != WASM_HEADER.len() => {
            Err(WasmsigError::SignatureSectionNotFirst { offset: only.start })
        }
        (1, Some(only)) => Ok(Some(only)),
        (count, Some(_)) => Err(WasmsigError::DuplicateSignatureSection { count }),
    }
}

/// Whether `prefix` (the first 32 bytes of a file are enough) starts like a module
/// signed in this format: the wasm header, then a custom section named
/// `signature`. This is how `signer verify` tells such a module from a bundle;
/// the full checks happen in [`SignedModule::parse`].
pub fn starts_with_signature_section(prefix: &[u8]) -> bool {
    let Some(rest) = prefix.strip_prefix(&WASM_HEADER[..]) else { return false };
    let Some((&0, rest)) = rest.split_first() else { return false };
    let Some((_, size_len)) = read_leb_u32(rest) else { return false };
    let rest = &rest[size_len..];
    let Some((name_len, name_leb)) = read_leb_u32(rest) else { return false };
    name_len as usize == SECTION_NAME.len() && rest[name_leb..].starts_with(SECTION_NAME.as_bytes())
}

/// A module with a well-formed signature section, not yet verified.
#[derive(Debug, Clone)]
pub struct SignedModule<'a> {
    file: &'a [u8],
    /// Where the sections after the signature section start.
    body_start: usize,
    pub data: SignatureData,
}

impl<'a> SignedModule<'a> {
    pub fn parse(file: &'a [u8]) -> Result<Self, WasmsigError> {
        let section = find_signature_section(file)?.ok_or(WasmsigError::NoSignatureSection)?;
        let data = SignatureData::from_bytes(&file[section.data.clone()])?;
        Ok(Self { file, body_start: section.end, data })
    }

    /// The bytes the signatures cover: every section after the signature section.
    pub fn signed_bytes(&self) -> &'a [u8] {
        &self.file[self.body_start..]
    }

    /// SHA-256 of [`Self::signed_bytes`], the hash a whole-module signature names.
    pub fn module_hash(&self) -> [u8; HASH_BYTES] {
        Sha256::digest(self.signed_bytes()).into()
    }

    /// The module without its signature section: what was signed, as a file
    /// (`wasmsign2 detach` writes the same bytes).
    pub fn unsigned_module(&self) -> Vec<u8> {
        let mut module = Vec::with_capacity(WASM_HEADER.len() + self.signed_bytes().len());
        module.extend_from_slice(&WASM_HEADER);
        module.extend_from_slice(self.signed_bytes());
        module
    }
}

/// Signs `module` with `key` the way `wasmsign2 sign -k SK -K PK` does: one hash
/// over all its sections, one Ed25519 signature carrying the key's wasmsign2
/// default key id, in a `signature` section put first. A signature section the
/// module already has is replaced, never added to (`wasmsign2 sign` would add
/// our signature to it when the hashes agree).
pub fn sign(module: &[u8], key: &SecretKey) -> Result<Vec<u8>, WasmsigError> {
    let body_start = match find_signature_section(module)? {
        Some(section) => section.end,
        None => WASM_HEADER.len(),
    };
    let body = &module[body_start..];
    let hash: [u8; HASH_BYTES] = Sha256::digest(body).into();
    let signature = key.signing_key().sign(&signed_message(&[hash])).to_bytes();
    let data = SignatureData {
        hash_sets: vec![SignedHashes {
            hashes: vec![hash],
            signatures: vec![HashSignature {
                key_id: Some(wasmsign2_key_id(key.public_key().verifying_key()).to_vec()),
                algorithm: ALG_ED25519,
                signature: signature.to_vec(),
            }],
        }],
    };
    let section = custom_section(SECTION_NAME, &data.to_bytes());
    let mut out = Vec::with_capacity(WASM_HEADER.len() + section.len() + body.len());
    out.extend_from_slice(&WASM_HEADER);
    out.extend_from_slice(&section);
    out.extend_from_slice(body);
    Ok(out)
}

/// A signed module that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWasmsig {
    /// Lower-case hex SHA-256 of the module without its signature section: the
    /// hash a bundle's manifest would name for the same module.
    pub module_sha256: String,
    /// Lower-case hex SHA-256 the signatures cover (the sections after the
    /// signature section, without the header), as `wasmsign2 -v show` prints it.
    pub signed_sha256: String,
    /// The distinct trusted keys whose signatures counted, sorted.
    pub signers: Vec<KeyId>,
}

struct TrustedKey<'a> {
    key: &'a PublicKey,
    wasmsign2_key_id: [u8; 12],
}

/// Verifies a module signed in this format against `trust`, with the same rules
/// as a bundle: the global threshold of distinct approving keys (log keys never
/// count; a signed module names no tenant), a signature by a revoked key or an
/// invalid one by a key it names refuses the module at once, signatures by
/// unknown keys are ignored but remembered for the error message.
///
/// Order of checks: the section's structure; each signature over its hash set;
/// the threshold; then whether the counted signatures cover this module's hash,
/// so that a changed byte is reported as a hash mismatch, not a bad signature.
pub fn verify_module(file: &[u8], trust: &TrustStore) -> Result<VerifiedWasmsig, WasmsigVerifyError> {
    let module = SignedModule::parse(file)?;
    let keys: Vec<TrustedKey<'_>> =
        trust.keys().map(|key| TrustedKey { key, wasmsign2_key_id: wasmsign2_key_id(key.verifying_key()) }).collect();
    // The trust store refuses one Ed25519 key under two ids, so a key found
    // here stands for exactly one key id.
    let mut any_ed25519 = false;
    let mut first_untrusted: Option<WasmsigVerifyError> = None;
    let mut valid: BTreeMap<KeyId, Vec<usize>> = BTreeMap::new();
    let mut index = 0usize;
    for (set_index, set) in module.data.hash_sets.iter().enumerate() {
        let message = signed_message(&set.hashes);
        for hash_signature in &set.signatures {
            index += 1;
            if hash_signature.algorithm != ALG_ED25519 {
                continue;
            }
            any_ed25519 = true;
            // `SignatureData::from_bytes` already refused Ed25519 signatures of another length.
            let bytes: [u8; ED25519_SIGNATURE_BYTES] =
                hash_signature.signature.as_slice().try_into().map_err(|_| WasmsigError::MalformedSignatureData {
                    offset: 0,
                    reason: "an Ed25519 signature that is not 64 bytes",
                })?;
            let signature = ed25519_dalek::Signature::from_bytes(&bytes);
            let verifies = |k: &&TrustedKey<'_>| k.key.verifying_key().verify_strict(&message, &signature).is_ok();
            let signer = match &hash_signature.key_id {
                Some(key_id) => {
                    let named: Vec<&TrustedKey<'_>> =
                        keys.iter().filter(|k| k.wasmsign2_key_id[..] == key_id[..]).collect();
                    let Some(first) = named.first() else {
                        first_untrusted.get_or_insert(WasmsigVerifyError::UntrustedSignature {
                            index,
                            wasmsign2_key_id: Some(hex::encode(key_id)),
                        });
                        continue;
                    };
                    if let Some(revoked) = named.iter().find(|k| trust.is_revoked(k.key.key_id())) {
                        return Err(WasmsigVerifyError::Verify(VerifyError::RevokedKey {
                            key_id: revoked.key.key_id(),
                        }));
                    }
                    match named.iter().copied().find(|k| verifies(k)) {
                        Some(signer) => signer,
                        None => {
                            return Err(WasmsigVerifyError::Verify(VerifyError::BadSignature(
                                SignatureError::Invalid { key_id: first.key.key_id() },
                            )));
                        }
                    }
                }
                None => match keys.iter().find(|k| verifies(k)) {
                    Some(signer) => signer,
                    None => {
                        first_untrusted
                            .get_or_insert(WasmsigVerifyError::UntrustedSignature { index, wasmsign2_key_id: None });
                        continue;
                    }
                },
            };
            if trust.is_revoked(signer.key.key_id()) {
                return Err(WasmsigVerifyError::Verify(VerifyError::RevokedKey { key_id: signer.key.key_id() }));
            }
            valid.entry(signer.key.key_id()).or_default().push(set_index);
        }
    }
    if !any_ed25519 {
        return Err(WasmsigVerifyError::Unsigned);
    }

    let counted =
        trust.approvals(valid.keys().copied(), NO_TENANT, first_untrusted).map_err(|shortfall| match shortfall {
            Shortfall::LogKeyCannotApprove { key_id } => {
                WasmsigVerifyError::Verify(VerifyError::LogKeyCannotApprove { key_id })
            }
            // A module names no tenant, so no key is another tenant's.
            Shortfall::KeyNotAllowedForTenant { key_id } => {
                WasmsigVerifyError::Verify(VerifyError::KeyNotAllowedForTenant { key_id, tenant: NO_TENANT.to_owned() })
            }
            Shortfall::Untrusted(untrusted) => untrusted,
            Shortfall::ThresholdNotMet { required, valid } => {
                WasmsigVerifyError::Verify(VerifyError::ThresholdNotMet { required, valid })
            }
        })?;
    let required = trust.threshold_for(NO_TENANT);
    let approving: BTreeMap<KeyId, Vec<usize>> = valid.into_iter().filter(|(id, _)| counted.contains(id)).collect();

    let found = module.module_hash();
    let covers = |set: &usize| module.data.hash_sets.get(*set).and_then(|s| s.hashes.last()) == Some(&found);
    let signers: Vec<KeyId> = approving.iter().filter(|(_, sets)| sets.iter().any(covers)).map(|(id, _)| *id).collect();
    if signers.len() < required {
        let signed = approving
            .values()
            .flatten()
            .filter_map(|set| module.data.hash_sets.get(*set).and_then(|s| s.hashes.last()))
            .find(|hash| **hash != found)
            .unwrap_or(&found);
        return Err(WasmsigVerifyError::HashMismatch { signed: hex::encode(signed), found: hex::encode(found) });
    }
    Ok(VerifiedWasmsig {
        module_sha256: hex::encode(Sha256::digest(module.unsigned_module())),
        signed_sha256: hex::encode(found),
        signers,
    })
}

/// HMAC-SHA256 (RFC 2104), for wasmsign2's key ids; one use, so no extra crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The key id `wasmsign2` gives a public key read from a file
/// (`PublicKey::attach_default_key_id`): `HMAC-SHA256(key = the 32 key bytes,
/// message = "key_id")`, first 12 bytes.
pub fn wasmsign2_key_id(key: &VerifyingKey) -> [u8; 12] {
    let mac = hmac_sha256(key.as_bytes(), b"key_id");
    let mut id = [0u8; 12];
    id.copy_from_slice(&mac[..12]);
    id
}

/// The minisign key id given to an imported wasmsign2 key: the first 8 bytes of
/// its wasmsign2 default key id, reversed so that minisign's printing (the 8
/// bytes as a little-endian integer) shows them in their original order.
pub fn derived_key_id(key: &VerifyingKey) -> KeyId {
    let wasmsign2 = wasmsign2_key_id(key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&wasmsign2[..8]);
    id.reverse();
    KeyId(id)
}

/// Our public key as a raw wasmsign2 public key file (`0x01 ‖ 32 bytes`), the
/// format `wasmsign2 verify -K` reads.
pub fn wasmsign2_public_key(key: &PublicKey) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = PUBLIC_KEY_ED25519;
    out[1..].copy_from_slice(key.verifying_key().as_bytes());
    out
}

/// Reads an Ed25519 public key in any format `wasmsign2` reads (its
/// `PublicKey::from_any` plus OpenSSH lines) and makes it a minisign public key
/// with the id from [`derived_key_id`], ready for a trust store.
pub fn import_public_key(bytes: &[u8]) -> Result<PublicKey, KeyImportError> {
    if bytes.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyImportError::TooLarge { size: bytes.len(), max: MAX_KEY_FILE_BYTES });
    }
    let raw = raw_public_key(bytes).ok_or(KeyImportError::UnrecognisedFormat)?;
    let verifying_key = VerifyingKey::from_bytes(&raw).map_err(|_| KeyImportError::InvalidPoint)?;
    let mut minisign = Vec::with_capacity(42);
    minisign.extend_from_slice(b"Ed");
    minisign.extend_from_slice(&derived_key_id(&verifying_key).0);
    minisign.extend_from_slice(&raw);
    PublicKey::from_base64(&BASE64.encode(minisign)).map_err(|_| KeyImportError::InvalidPoint)
}

/// The `.pub` file text for an imported key; the comment says where it came from.
pub fn imported_key_file_text(key: &PublicKey) -> String {
    format!(
        "untrusted comment: minisign public key {} imported from a wasmsign2 key (id: its wasmsign2 key id, first 8 bytes)\n{}\n",
        key.key_id(),
        key.to_base64()
    )
}

fn raw_public_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if let [PUBLIC_KEY_ED25519, rest @ ..] = bytes
        && let Ok(raw) = <[u8; 32]>::try_from(rest)
    {
        return Some(raw);
    }
    if let Some(raw) = bytes.strip_prefix(&ED25519_SPKI_PREFIX[..]).and_then(|rest| <[u8; 32]>::try_from(rest).ok()) {
        return Some(raw);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    pem_public_key(text).or_else(|| openssh_public_key(text))
}

fn pem_public_key(text: &str) -> Option<[u8; 32]> {
    let body = text.trim().strip_prefix("-----BEGIN PUBLIC KEY-----")?.strip_suffix("-----END PUBLIC KEY-----")?;
    let base64: String = body.split_whitespace().collect();
    let der = BASE64.decode(base64).ok()?;
    der.strip_prefix(&ED25519_SPKI_PREFIX[..]).and_then(|rest| rest.try_into().ok())
}

/// The first `ssh-ed25519 <base64> [comment]` line whose blob is
/// `string "ssh-ed25519" ‖ string key` (RFC 8709).
fn openssh_public_key(text: &str) -> Option<[u8; 32]> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next()? != OPENSSH_ED25519 {
            return None;
        }
        let blob = BASE64.decode(fields.next()?).ok()?;
        let mut expected = Vec::with_capacity(19);
        expected.extend_from_slice(&(OPENSSH_ED25519.len() as u32).to_be_bytes());
        expected.extend_from_slice(OPENSSH_ED25519.as_bytes());
        expected.extend_from_slice(&32u32.to_be_bytes());
        blob.strip_prefix(&expected[..]).and_then(|rest| rest.try_into().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = include_bytes!("../tests/fixtures/wasmsig/module.wasm");
    const SIGNED: &[u8] = include_bytes!("../tests/fixtures/wasmsig/signed.wasm");
    const SIGNED_NO_KEY_ID: &[u8] = include_bytes!("../tests/fixtures/wasmsig/signed-no-key-id.wasm");
    const SIGNED_TWICE: &[u8] = include_bytes!("../tests/fixtures/wasmsig/signed-twice.wasm");
    const WASMSIGN2_PK: &[u8] = include_bytes!("../tests/fixtures/wasmsig/wasmsign2.pk");
    const WASMSIGN2_PK_2: &[u8] = include_bytes!("../tests/fixtures/wasmsig/wasmsign2-2.pk");
    /// What `wasmsign2 -v show -i signed.wasm` printed (see the fixtures' README).
    const KAT_HASH: &str = "637e7aa9cb98fe4955cb0a2c2202aa4a03136e18325544aa1a9ee05682593020";
    const KAT_KEY_ID: &str = "12b44b9fd1afe0751cd1f961";

    fn store(keys: &[&PublicKey], trust_toml: &str) -> TrustStore {
        TrustStore::from_keys_and_toml(keys.iter().map(|k| (*k).clone()).collect(), trust_toml).unwrap()
    }

    fn wasmsign2_key() -> PublicKey {
        import_public_key(WASMSIGN2_PK).unwrap()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn wasmsign2_cli_output_parses_to_the_known_answers() {
        let module = SignedModule::parse(SIGNED).unwrap();
        assert_eq!(module.unsigned_module(), MODULE);
        assert_eq!(hex::encode(module.module_hash()), KAT_HASH);
        let [set] = &module.data.hash_sets[..] else { panic!("one hash set") };
        assert_eq!(set.hashes.iter().map(hex::encode).collect::<Vec<_>>(), [KAT_HASH]);
        let [signature] = &set.signatures[..] else { panic!("one signature") };
        assert_eq!(signature.algorithm, ALG_ED25519);
        assert_eq!(signature.key_id.as_deref().map(hex::encode).as_deref(), Some(KAT_KEY_ID));
        // Our derivation of wasmsign2's default key id agrees with the CLI's.
        assert_eq!(hex::encode(wasmsign2_key_id(wasmsign2_key().verifying_key())), KAT_KEY_ID);
        // The trust store id is the first 16 hex digits of that key id.
        assert_eq!(wasmsign2_key().key_id().to_string(), KAT_KEY_ID[..16].to_uppercase());
        // Re-encoding gives the CLI's bytes back.
        let section = find_signature_section(SIGNED).unwrap().unwrap();
        assert_eq!(module.data.to_bytes(), &SIGNED[section.data]);
        assert!(starts_with_signature_section(&SIGNED[..32]));
        assert!(!starts_with_signature_section(MODULE));
    }

    #[test]
    fn signing_replaces_an_existing_signature_section() {
        // (Byte identity with `wasmsign2 sign` is checked end to end in
        // tests/all/wasmsig.rs, with a key the real CLI generates there.)
        let key = SecretKey::generate();
        let ours = sign(MODULE, &key).unwrap();
        assert_eq!(sign(SIGNED_TWICE, &key).unwrap(), ours);
        assert_eq!(sign(SIGNED_NO_KEY_ID, &key).unwrap(), ours);
        assert_eq!(SignedModule::parse(&ours).unwrap().unsigned_module(), MODULE);
    }

    #[test]
    fn wasmsign2_signatures_verify_with_and_without_key_id() {
        let key = wasmsign2_key();
        let trust = store(&[&key], "threshold = 1\n");
        for file in [SIGNED, SIGNED_NO_KEY_ID, SIGNED_TWICE] {
            let verified = verify_module(file, &trust).unwrap();
            assert_eq!(verified.signers, [key.key_id()]);
            assert_eq!(verified.signed_sha256, KAT_HASH);
            assert_eq!(verified.module_sha256, hex::encode(Sha256::digest(MODULE)));
        }
    }

    #[test]
    fn threshold_counts_distinct_keys() {
        let (one, two) = (wasmsign2_key(), import_public_key(WASMSIGN2_PK_2).unwrap());
        let trust = store(&[&one, &two], "threshold = 2\n");
        let mut signers = vec![one.key_id(), two.key_id()];
        signers.sort();
        assert_eq!(verify_module(SIGNED_TWICE, &trust).unwrap().signers, signers);
        assert_eq!(
            verify_module(SIGNED, &trust).unwrap_err(),
            WasmsigVerifyError::Verify(VerifyError::ThresholdNotMet { required: 2, valid: 1 })
        );
        // The same signature copied into the set still counts once.
        let mut data = SignedModule::parse(SIGNED).unwrap().data;
        let copy = data.hash_sets[0].signatures[0].clone();
        data.hash_sets[0].signatures.push(copy);
        let copied = with_data(SIGNED, &data);
        assert_eq!(
            verify_module(&copied, &trust).unwrap_err(),
            WasmsigVerifyError::Verify(VerifyError::ThresholdNotMet { required: 2, valid: 1 })
        );
    }

    /// `file` with its signature payload replaced by `data`.
    fn with_data(file: &[u8], data: &SignatureData) -> Vec<u8> {
        let section = find_signature_section(file).unwrap().unwrap();
        let mut out = WASM_HEADER.to_vec();
        out.extend_from_slice(&custom_section(SECTION_NAME, &data.to_bytes()));
        out.extend_from_slice(&file[section.end..]);
        out
    }

    #[test]
    fn round_trip_with_a_minisign_key() {
        let key = SecretKey::generate();
        let signed = sign(MODULE, &key).unwrap();
        let trust = store(&[&key.public_key()], "threshold = 1\n");
        let verified = verify_module(&signed, &trust).unwrap();
        assert_eq!(verified.signers, [key.key_id()]);
        assert_eq!(SignedModule::parse(&signed).unwrap().unsigned_module(), MODULE);
    }

    #[test]
    fn a_flipped_byte_in_the_code_is_a_hash_mismatch() {
        let key = wasmsign2_key();
        let trust = store(&[&key], "threshold = 1\n");
        let mut file = SIGNED.to_vec();
        let at = file.windows(2).rposition(|w| w == [0x41, 42]).unwrap() + 1; // i32.const 42
        file[at] = 43;
        let found = hex::encode(Sha256::digest(&file[SIGNED.len() - (MODULE.len() - 8)..]));
        assert_eq!(
            verify_module(&file, &trust).unwrap_err(),
            WasmsigVerifyError::HashMismatch { signed: KAT_HASH.into(), found }
        );
    }

    #[test]
    fn a_flipped_signature_byte_is_a_bad_signature() {
        let key = wasmsign2_key();
        let trust = store(&[&key], "threshold = 1\n");
        let mut data = SignedModule::parse(SIGNED).unwrap().data;
        data.hash_sets[0].signatures[0].signature[10] ^= 0x01;
        assert_eq!(
            verify_module(&with_data(SIGNED, &data), &trust).unwrap_err(),
            WasmsigVerifyError::Verify(VerifyError::BadSignature(SignatureError::Invalid { key_id: key.key_id() }))
        );
        // Without a key id to name the signer, a damaged signature cannot be told
        // from one by an unknown key.
        let mut data = SignedModule::parse(SIGNED_NO_KEY_ID).unwrap().data;
        data.hash_sets[0].signatures[0].signature[10] ^= 0x01;
        assert_eq!(
            verify_module(&with_data(SIGNED, &data), &trust).unwrap_err(),
            WasmsigVerifyError::UntrustedSignature { index: 1, wasmsign2_key_id: None }
        );
        // A flipped hash in the section: the signature no longer covers it.
        let mut data = SignedModule::parse(SIGNED).unwrap().data;
        data.hash_sets[0].hashes[0][0] ^= 0x01;
        assert_eq!(verify_module(&with_data(SIGNED, &data), &trust).unwrap_err().reason_code(), "bad_signature");
    }

    #[test]
    fn untrusted_revoked_and_log_keys() {
        let wasmsign2 = wasmsign2_key();
        let other = SecretKey::generate().public_key();
        let trust = store(&[&other], "threshold = 1\n");
        assert_eq!(
            verify_module(SIGNED, &trust).unwrap_err(),
            WasmsigVerifyError::UntrustedSignature { index: 1, wasmsign2_key_id: Some(KAT_KEY_ID.into()) }
        );
        assert_eq!(verify_module(SIGNED_NO_KEY_ID, &trust).unwrap_err().reason_code(), "untrusted_key");
        let revoked = store(&[&wasmsign2, &other], &format!("threshold = 1\nrevoked = [\"{}\"]\n", wasmsign2.key_id()));
        for file in [SIGNED, SIGNED_NO_KEY_ID] {
            assert_eq!(
                verify_module(file, &revoked).unwrap_err(),
                WasmsigVerifyError::Verify(VerifyError::RevokedKey { key_id: wasmsign2.key_id() })
            );
        }
        let log = store(
            &[&wasmsign2, &other],
            &format!("threshold = 1\n[log_keys]\n\"{}\" = [\"example/node\"]\n", wasmsign2.key_id()),
        );
        assert_eq!(
            verify_module(SIGNED, &log).unwrap_err(),
            WasmsigVerifyError::Verify(VerifyError::LogKeyCannotApprove { key_id: wasmsign2.key_id() })
        );
    }

    #[test]
    fn two_signature_sections_or_one_not_first_are_refused() {
        let section = find_signature_section(SIGNED).unwrap().unwrap();
        let whole_section = &SIGNED[8..section.end];
        let mut twice = SIGNED.to_vec();
        twice.extend_from_slice(whole_section);
        assert_eq!(SignedModule::parse(&twice).unwrap_err(), WasmsigError::DuplicateSignatureSection { count: 2 });
        assert_eq!(
            sign(&twice, &SecretKey::generate()).unwrap_err(),
            WasmsigError::DuplicateSignatureSection { count: 2 }
        );
        let mut not_first = MODULE.to_vec();
        not_first.extend_from_slice(whole_section);
        let err = SignedModule::parse(&not_first).unwrap_err();
        assert_eq!(err, WasmsigError::SignatureSectionNotFirst { offset: MODULE.len() });
        assert_eq!(err.reason_code(), "signature_section_not_first");
        assert!(!starts_with_signature_section(&not_first));
        assert_eq!(SignedModule::parse(MODULE).unwrap_err(), WasmsigError::NoSignatureSection);
        assert_eq!(SignedModule::parse(b"\0asm\x0d\0\x01\0").unwrap_err(), WasmsigError::NotWasm);
    }

    #[test]
    fn malformed_signature_data_is_named() {
        let data = SignedModule::parse(SIGNED).unwrap().data.to_bytes();
        let mut version = data.clone();
        version[0] = 2;
        assert_eq!(
            SignatureData::from_bytes(&version).unwrap_err(),
            WasmsigError::Unsupported { field: "specification version", value: 2 }
        );
        let mut hash = data.clone();
        hash[2] = 2;
        assert_eq!(
            SignatureData::from_bytes(&hash).unwrap_err(),
            WasmsigError::Unsupported { field: "hash function", value: 2 }
        );
        let mut trailing = data.clone();
        trailing.push(0);
        assert_eq!(SignatureData::from_bytes(&trailing).unwrap_err().reason_code(), "malformed_signature");
        let mut many = vec![1, 1, 1];
        write_leb(MAX_HASH_SETS + 1, &mut many);
        assert!(matches!(SignatureData::from_bytes(&many), Err(WasmsigError::TooMany { what: "hash sets", .. })));
        // A huge length prefix is refused without allocating it.
        assert!(matches!(
            SignatureData::from_bytes(&[1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(WasmsigError::MalformedSignatureData { reason: "truncated hash set", .. })
        ));
        // An unsupported algorithm is skipped, as wasmsign2 does; with nothing else the module is unsigned.
        let mut other_alg = SignedModule::parse(SIGNED).unwrap().data;
        other_alg.hash_sets[0].signatures[0].algorithm = 0x02;
        let trust = store(&[&wasmsign2_key()], "threshold = 1\n");
        assert_eq!(verify_module(&with_data(SIGNED, &other_alg), &trust).unwrap_err(), WasmsigVerifyError::Unsigned);
    }

    #[test]
    fn truncations_and_flips_never_panic() {
        let trust = store(&[&wasmsign2_key()], "threshold = 1\n");
        let both = store(&[&wasmsign2_key(), &import_public_key(WASMSIGN2_PK_2).unwrap()], "threshold = 2\n");
        let key = SecretKey::generate();
        let ours = store(&[&key.public_key()], "threshold = 1\n");
        for (file, trust) in [(SIGNED, &trust), (SIGNED_TWICE, &both)] {
            // A prefix of whole sections is a module, except one that has the
            // function section but not yet the code section (their counts must match).
            let sections = crate::sections::section_ranges(file);
            let end_of = |id: u8| sections.iter().find(|(i, _)| *i == id).map(|(_, r)| r.end).unwrap();
            let (functions_end, code_end) = (end_of(3), end_of(10));
            let whole: Vec<usize> = std::iter::once(WASM_HEADER.len())
                .chain(sections.iter().map(|(_, r)| r.end))
                .filter(|&end| !(functions_end..code_end).contains(&end))
                .collect();
            let name_end = file.windows(SECTION_NAME.len()).position(|w| w == SECTION_NAME.as_bytes()).unwrap()
                + SECTION_NAME.len();
            for cut in 0..file.len() {
                let prefix = &file[..cut];
                assert!(verify_module(prefix, trust).is_err(), "a cut at byte {cut} still verifies");
                assert_eq!(starts_with_signature_section(prefix), cut >= name_end, "cut at byte {cut}");
                // Signing needs a module: a cut inside a section is refused, a cut
                // that leaves a module signs what is left, and that verifies.
                match sign(prefix, &key) {
                    Ok(signed) => {
                        assert!(whole.contains(&cut), "signed a module cut inside a section at byte {cut}");
                        assert!(verify_module(&signed, &ours).is_ok(), "cut at byte {cut}");
                    }
                    Err(e) => assert!(!whole.contains(&cut), "cut at byte {cut} is a module, refused: {e}"),
                }
            }
            for at in 0..file.len() {
                for bit in [0x01, 0x80] {
                    let mut flipped = file.to_vec();
                    flipped[at] ^= bit;
                    assert!(verify_module(&flipped, trust).is_err(), "flipping byte {at} went unnoticed");
                }
            }
        }
    }

    #[test]
    fn public_keys_in_every_wasmsign2_format_import_the_same() {
        let key = wasmsign2_key();
        assert_eq!(wasmsign2_public_key(&key)[..], WASMSIGN2_PK[..]);
        let raw = &WASMSIGN2_PK[1..];
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(raw);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", BASE64.encode(&der));
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(raw);
        let openssh = format!("ssh-ed25519 {} someone@example\n", BASE64.encode(&blob));
        for bytes in [&der[..], pem.as_bytes(), openssh.as_bytes()] {
            assert_eq!(import_public_key(bytes).unwrap(), key);
        }
        let text = imported_key_file_text(&key);
        assert_eq!(PublicKey::from_file_bytes(text.as_bytes()).unwrap(), key);
        assert_eq!(import_public_key(b"\x02abc").unwrap_err(), KeyImportError::UnrecognisedFormat);
        // A wasmsign2 secret key file (`0x81 ‖ seed ‖ public key`) is not a public key.
        let mut secret = vec![0x81];
        secret.extend_from_slice(&[7; 32]);
        secret.extend_from_slice(key.verifying_key().as_bytes());
        assert_eq!(import_public_key(&secret).unwrap_err(), KeyImportError::UnrecognisedFormat);
        assert!(matches!(import_public_key(&[1; 5000]), Err(KeyImportError::TooLarge { .. })));
    }
}
