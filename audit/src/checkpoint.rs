//! Signed checkpoints: the log's (size, root) in the C2SP `tlog-checkpoint`
//! format, wrapped in a C2SP `signed-note` with Ed25519 signatures.
//!
//! ```text
//! nightcore.example/audit          ← origin
//! 1234                             ← tree size, decimal
//! 0DaX…=                           ← root hash, standard base64
//!                                  ← blank line ends the signed text
//! — nightcore.example/audit AbCd…= ← base64(4-byte key hash ‖ 64-byte signature)
//! ```
//!
//! The key hash is the first four bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖
//! public key); the signature covers the text before the blank line, each
//! line ending in "\n". Using the published formats means any C2SP tool (a
//! witness, `sumdb/note`) can check our checkpoints.
//!
//! A checkpoint is trusted only through a [`VerifyingKey`] the caller
//! supplies; a key stored beside the log is never consulted.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hash::Sha256Hash;

/// Checkpoint files larger than this are refused unread.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024;
/// The signed-note limit on signature lines.
pub const MAX_SIGNATURES: usize = 100;
/// Signature type byte of Ed25519 keys in C2SP signed notes.
pub const ED25519_ALGORITHM: u8 = 0x01;

const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why checkpoint text is not a well-formed signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint is {length} bytes, over the limit of {limit}")]
    TooLarge { length: u64, limit: u64 },
    #[error("checkpoint is not valid utf-8")]
    NonUtf8,
    #[error("checkpoint has no blank line between its text and its signatures")]
    MissingBlankLine,
    #[error("checkpoint does not end with a newline")]
    MissingFinalNewline,
    #[error("checkpoint text contains a control character at byte {offset}")]
    ControlCharacter { offset: usize },
    #[error("checkpoint line {line} is missing or empty")]
    MissingLine { line: usize },
    #[error("checkpoint tree size {text:?} is not a canonical decimal number")]
    BadSize { text: String },
    #[error("checkpoint root {text:?} is not the base64 of 32 bytes")]
    BadRoot { text: String },
    #[error("signature line {line} is malformed: {reason}")]
    BadSignatureLine { line: usize, reason: &'static str },
    #[error("checkpoint has no signature")]
    NoSignature,
    #[error("checkpoint has more than {limit} signatures")]
    TooManySignatures { limit: usize },
    #[error("key name {name:?} is empty or contains whitespace or '+'")]
    BadKeyName { name: String },
    #[error("verifier key {text:?} is not of the form name+keyid+base64(0x01 and a 32-byte ed25519 key)")]
    BadVerifierKey { text: String },
}

/// Why a well-formed checkpoint is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckpointVerifyError {
    #[error("checkpoint is signed only by keys not trusted here: {}", signers.join(", "))]
    UnknownKey {
        /// `name+keyhash` of every signature present.
        signers: Vec<String>,
    },
    #[error("signature by trusted key {key_name}+{key_id} does not match the checkpoint text")]
    BadSignature { key_name: String, key_id: String },
}

/// The body of a checkpoint: what the signature commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Names the log; also used as the signing key's name.
    pub origin: String,
    /// Number of entries covered.
    pub size: u64,
    /// Merkle root of those entries.
    pub root: Sha256Hash,
    /// Optional extra lines, kept and signed verbatim (we write none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// One signature line of a signed note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteSignature {
    pub key_name: String,
    /// First four bytes of the key's hash, as 8 lower-case hex digits.
    pub key_id: String,
    /// The signature bytes after the key hash, base64.
    pub signature: String,
}

/// A checkpoint with its signature lines, as stored and exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    signatures: Vec<RawSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RawSignature {
    key_name: String,
    key_hash: [u8; 4],
    signature: Vec<u8>,
}

/// The key and name a writer signs checkpoints with. The key name is the
/// log's origin, as C2SP recommends.
#[derive(Clone)]
pub struct CheckpointSigner {
    origin: String,
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret key.
        f.debug_struct("CheckpointSigner")
            .field("origin", &self.origin)
            .field("key_id", &key_id(&self.origin, &self.key.verifying_key()))
            .finish()
    }
}

impl CheckpointSigner {
    /// `origin` must be a valid key name: non-empty, no whitespace, no '+'.
    pub fn new(origin: impl Into<String>, key: SigningKey) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        check_key_name(&origin)?;
        Ok(CheckpointSigner { origin, key })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs a checkpoint of (`size`, `root`) under this signer's origin.
    pub fn sign(&self, size: u64, root: Sha256Hash) -> SignedCheckpoint {
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root, extensions: Vec::new() };
        let signature = self.key.sign(checkpoint.note_text().as_bytes());
        SignedCheckpoint {
            checkpoint,
            signatures: vec![RawSignature {
                key_name: self.origin.clone(),
                key_hash: key_hash(&self.origin, &self.key.verifying_key()),
                signature: signature.to_bytes().to_vec(),
            }],
        }
    }
}

fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(CheckpointError::BadKeyName { name: name.to_owned() });
    }
    Ok(())
}

/// First four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
pub fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519_ALGORITHM]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The key hash as 8 lower-case hex digits, as in `name+c74f20a3+…`.
pub fn key_id(name: &str, key: &VerifyingKey) -> String {
    hex::encode(key_hash(name, key))
}

/// The C2SP signed-note verifier key string `name+keyid+base64(0x01 ‖ key)`.
pub fn verifier_key_string(name: &str, key: &VerifyingKey) -> String {
    let mut material = vec![ED25519_ALGORITHM];
    material.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", key_id(name, key), BASE64.encode(material))
}

/// Parses a C2SP signed-note verifier key string `name+keyid+base64(0x01 ‖
/// key)`, checking that the key id matches the name and key: the form a
/// `--log-key` argument or a trust store can hold.
pub fn parse_verifier_key(text: &str) -> Result<(String, VerifyingKey), CheckpointError> {
    let bad = || CheckpointError::BadVerifierKey { text: text.chars().take(120).collect() };
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    check_key_name(name).map_err(|_| bad())?;
    let material = BASE64.decode(material).map_err(|_| bad())?;
    let [ED25519_ALGORITHM, key @ ..] = material.as_slice() else {
        return Err(bad());
    };
    let key = <[u8; 32]>::try_from(key).ok().and_then(|k| VerifyingKey::from_bytes(&k).ok()).ok_or_else(bad)?;
    if id != key_id(name, &key) {
        return Err(bad());
    }
    Ok((name.to_owned(), key))
}

impl Checkpoint {
    /// The signed text: origin, size, base64 root, extensions, each ending
    /// in "\n".
    pub fn note_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root.as_bytes()));
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

impl SignedCheckpoint {
    /// Parses a signed checkpoint strictly: one spelling of the size and the
    /// root, at least one and at most [`MAX_SIGNATURES`] signature lines.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() as u64 > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge { length: text.len() as u64, limit: MAX_CHECKPOINT_BYTES });
        }
        if !text.ends_with('\n') {
            return Err(CheckpointError::MissingFinalNewline);
        }
        let split = text.rfind("\n\n").ok_or(CheckpointError::MissingBlankLine)?;
        let (body, signature_block) = (&text[..split + 1], &text[split + 2..]);
        if let Some(offset) = body.bytes().position(|c| c != b'\n' && c.is_ascii_control()) {
            return Err(CheckpointError::ControlCharacter { offset });
        }

        let mut lines = body.lines();
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or(CheckpointError::MissingLine { line: 1 })?;
        let size_text = lines.next().filter(|l| !l.is_empty()).ok_or(CheckpointError::MissingLine { line: 2 })?;
        let size = parse_canonical_u64(size_text)
            .ok_or_else(|| CheckpointError::BadSize { text: size_text.chars().take(40).collect() })?;
        let root_text = lines.next().filter(|l| !l.is_empty()).ok_or(CheckpointError::MissingLine { line: 3 })?;
        let root = BASE64
            .decode(root_text)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Sha256Hash)
            .filter(|root| BASE64.encode(root.as_bytes()) == root_text)
            .ok_or_else(|| CheckpointError::BadRoot { text: root_text.chars().take(60).collect() })?;
        let extensions = lines.map(str::to_owned).collect::<Vec<_>>();
        if let Some(index) = extensions.iter().position(String::is_empty) {
            return Err(CheckpointError::MissingLine { line: 4 + index });
        }

        let body_lines = body.lines().count();
        let mut signatures = Vec::new();
        for (i, line) in signature_block.split_terminator('\n').enumerate() {
            let line_number = body_lines + 2 + i;
            if signatures.len() == MAX_SIGNATURES {
                return Err(CheckpointError::TooManySignatures { limit: MAX_SIGNATURES });
            }
            signatures.push(parse_signature_line(line, line_number)?);
        }
        if signatures.is_empty() {
            return Err(CheckpointError::NoSignature);
        }
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint { origin: origin.to_owned(), size, root, extensions },
            signatures,
        })
    }

    /// The full signed note, as written to the checkpoint file.
    pub fn to_signed_note(&self) -> String {
        let mut text = self.checkpoint.note_text();
        text.push('\n');
        for signature in &self.signatures {
            let mut blob = signature.key_hash.to_vec();
            blob.extend_from_slice(&signature.signature);
            text.push_str(SIGNATURE_PREFIX);
            text.push_str(&signature.key_name);
            text.push(' ');
            text.push_str(&BASE64.encode(blob));
            text.push('\n');
        }
        text
    }

    /// The signature lines, for display.
    pub fn signatures(&self) -> Vec<NoteSignature> {
        self.signatures
            .iter()
            .map(|s| NoteSignature {
                key_name: s.key_name.clone(),
                key_id: hex::encode(s.key_hash),
                signature: BASE64.encode(&s.signature),
            })
            .collect()
    }

    /// Checks the signature of `trusted` and returns the checkpoint it vouches
    /// for. A signature line counts as the trusted key's when its key hash,
    /// computed from the line's own name and the trusted key, matches; every
    /// such line must then verify. Signatures by other keys (witnesses) are
    /// ignored.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<&Checkpoint, CheckpointVerifyError> {
        let text = self.checkpoint.note_text();
        let mut vouched = false;
        for candidate in &self.signatures {
            if candidate.key_hash != key_hash(&candidate.key_name, trusted) {
                continue;
            }
            let bad_signature = || CheckpointVerifyError::BadSignature {
                key_name: candidate.key_name.clone(),
                key_id: hex::encode(candidate.key_hash),
            };
            let signature = <[u8; 64]>::try_from(candidate.signature.as_slice())
                .map(|bytes| Signature::from_bytes(&bytes))
                .map_err(|_| bad_signature())?;
            trusted.verify_strict(text.as_bytes(), &signature).map_err(|_| bad_signature())?;
            vouched = true;
        }
        if vouched {
            Ok(&self.checkpoint)
        } else {
            Err(CheckpointVerifyError::UnknownKey {
                signers: self
                    .signatures
                    .iter()
                    .map(|s| format!("{}+{}", s.key_name, hex::encode(s.key_hash)))
                    .collect(),
            })
        }
    }
}

fn parse_signature_line(line: &str, line_number: usize) -> Result<RawSignature, CheckpointError> {
    let bad = |reason| CheckpointError::BadSignatureLine { line: line_number, reason };
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(bad("does not start with an em dash and a space"))?;
    let (name, blob) = rest.split_once(' ').ok_or(bad("has no space between key name and signature"))?;
    check_key_name(name).map_err(|_| bad("key name is empty or contains whitespace or '+'"))?;
    let blob = BASE64.decode(blob).map_err(|_| bad("signature is not standard base64"))?;
    if blob.len() < 5 {
        return Err(bad("signature is shorter than a key hash and one byte"));
    }
    Ok(RawSignature {
        key_name: name.to_owned(),
        key_hash: [blob[0], blob[1], blob[2], blob[3]],
        signature: blob[4..].to_vec(),
    })
}

/// `0` or digits without a leading zero, within u64.
fn parse_canonical_u64(text: &str) -> Option<u64> {
    let canonical = text == "0" || (!text.starts_with('0') && text.bytes().all(|c| c.is_ascii_digit()));
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// `<log>.checkpoint`: where a log's checkpoint lives unless told otherwise.
pub fn default_checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".checkpoint");
    log.with_file_name(name)
}

/// Opens a log or checkpoint for reading only if it is a regular file (not a
/// symlink, FIFO or device: see [`signer::fsutil::open_regular`]), so that a
/// FIFO put in its place cannot hang a reader and `/dev/zero` cannot feed
/// one forever. A missing file keeps [`io::ErrorKind::NotFound`].
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    use signer::fsutil::{ReadCappedError, open_regular};
    match open_regular(path) {
        Ok((file, _)) => Ok(file),
        Err(ReadCappedError::Io { source, .. }) => Err(source),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())),
    }
}

/// Reads a checkpoint file, capped at [`MAX_CHECKPOINT_BYTES`]. `Ok(None)`
/// when the file does not exist; the bytes are returned unparsed.
pub(crate) fn read_checkpoint_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match open_for_reading(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CHECKPOINT_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Parses checkpoint file bytes (size cap, UTF-8, then the note).
pub(crate) fn parse_checkpoint_bytes(bytes: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
    if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLarge { length: bytes.len() as u64, limit: MAX_CHECKPOINT_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CheckpointError::NonUtf8)?;
    SignedCheckpoint::parse(text)
}

/// Replaces the checkpoint at `path` with `contents` atomically: a reader
/// sees the old file or the new one, never a mix, even across a crash; a path
/// that is not a regular file is refused, never renamed over. The rename is
/// not flushed (see [`signer::fsutil::atomic_write_unflushed_rename`]): a
/// crash may bring the previous checkpoint back, which covers fewer entries,
/// all still in the log, and the next append signs them again.
pub(crate) fn write_checkpoint_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    signer::fsutil::atomic_write_unflushed_rename(path, contents, signer::fsutil::FileMode::Public)
}

pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) use signer::fsutil::sync_dir;

#[cfg(test)]
mod tests {
    use super::*;

    /// The example key and note of golang.org/x/mod `sumdb/note/note_test.go`
    /// (golang/mod commit 02c991387e35f9e4c0a9b7ce137717055f8d716d):
    /// skey `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`,
    /// vkey `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW`.
    /// Ed25519 is deterministic, so our signer must reproduce the published
    /// signature line byte for byte.
    #[test]
    fn signed_note_matches_go_reference_vector() {
        let seed: [u8; 32] = hex::decode("810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173")
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key();
        assert_eq!(
            verifier_key_string("PeterNeumann", &public),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        assert_eq!(key_id("PeterNeumann", &public), "c74f20a3");
        let (name, parsed) =
            parse_verifier_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        assert_eq!((name.as_str(), parsed), ("PeterNeumann", public));
        for bad in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+AhpcSomethingElse",
            "PeterNeumann+c74f20a3",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(parse_verifier_key(bad).is_err(), "{bad}");
        }
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let mut blob = key_hash("PeterNeumann", &public).to_vec();
        blob.extend_from_slice(&key.sign(text.as_bytes()).to_bytes());
        assert_eq!(
            format!("\u{2014} PeterNeumann {}\n", BASE64.encode(blob)),
            "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
    }

    fn signer(seed: u8) -> CheckpointSigner {
        CheckpointSigner::new("nightcore.test/audit", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn round_trip_and_verify() {
        let signed = signer(1).sign(42, Sha256Hash([9; 32]));
        let text = signed.to_signed_note();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "nightcore.test/audit");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[2], BASE64.encode([9u8; 32]));
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} nightcore.test/audit "));
        let parsed = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(parsed, signed);
        assert_eq!(parsed.to_signed_note(), text);
        let checkpoint = parsed.verify(&signer(1).verifying_key()).unwrap();
        assert_eq!((checkpoint.size, checkpoint.root), (42, Sha256Hash([9; 32])));
    }

    #[test]
    fn unknown_key_and_forged_text_are_told_apart() {
        let text = signer(1).sign(42, Sha256Hash([9; 32])).to_signed_note();
        let parsed = SignedCheckpoint::parse(&text).unwrap();
        assert!(matches!(parsed.verify(&signer(2).verifying_key()), Err(CheckpointVerifyError::UnknownKey { .. })));
        let forged = SignedCheckpoint::parse(&text.replacen("\n42\n", "\n43\n", 1)).unwrap();
        assert!(matches!(forged.verify(&signer(1).verifying_key()), Err(CheckpointVerifyError::BadSignature { .. })));
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let good = signer(1).sign(42, Sha256Hash([9; 32])).to_signed_note();
        let root_line = BASE64.encode([9u8; 32]);
        let cases: Vec<(String, &str)> = vec![
            (good.trim_end().to_owned(), "no final newline"),
            (good.replacen("\n\n", "\n", 1), "no blank line"),
            (good.replacen("\n42\n", "\n042\n", 1), "leading zero"),
            (good.replacen("\n42\n", "\n-1\n", 1), "negative size"),
            (good.replacen("\n42\n", "\n18446744073709551616\n", 1), "size overflow"),
            (good.replacen(&root_line, &root_line[..40], 1), "short root"),
            (good.replacen(&root_line, root_line.trim_end_matches('='), 1), "unpadded root"),
            (good.replacen("\u{2014} ", "- ", 1), "ascii dash"),
            (good.split("\n\n").next().unwrap().to_owned() + "\n\n", "no signature"),
            (good.replacen("nightcore.test/audit\n", "night\u{7}core\n", 1), "control character"),
            (format!("{}\n\u{2014} a AAAA\n", good.trim_end()), "blob too short"),
        ];
        for (text, what) in cases {
            assert!(SignedCheckpoint::parse(&text).is_err(), "accepted {what}: {text:?}");
        }
        let signature_line = good.lines().last().unwrap();
        let many = good.clone() + &format!("{signature_line}\n").repeat(MAX_SIGNATURES);
        assert!(matches!(SignedCheckpoint::parse(&many), Err(CheckpointError::TooManySignatures { .. })));
    }

    #[test]
    fn default_path_appends_suffix() {
        assert_eq!(
            default_checkpoint_path(Path::new("/var/log/nightcore/audit.jsonl")),
            PathBuf::from("/var/log/nightcore/audit.jsonl.checkpoint")
        );
    }
}
