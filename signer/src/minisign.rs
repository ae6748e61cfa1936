//! Ed25519 keys and signatures in minisign's file formats.
//!
//! We speak minisign's formats rather than inventing our own so that operators
//! can check every signature with a tool they already trust (`minisign -V`), and
//! can sign with keys made by it. The formats, as minisign writes them:
//!
//! - public key: `untrusted comment: …` line, then base64 of
//!   `"Ed" ‖ key id (8 bytes) ‖ Ed25519 public key (32 bytes)`;
//! - secret key: `untrusted comment: …` line, then base64 of
//!   `"Ed" ‖ kdf ("Sc" or 0,0) ‖ "B2" ‖ salt (32) ‖ opslimit (8, LE) ‖ memlimit (8, LE)
//!   ‖ [key id (8) ‖ seed+public key (64) ‖ BLAKE2b-256 checksum (32)]`, the
//!   bracketed part XORed with an scrypt (libsodium `scryptsalsa208sha256`) stream
//!   derived from the password when the kdf is `"Sc"`;
//! - signature: untrusted comment line, base64 of `"ED" ‖ key id ‖ Ed25519
//!   signature of BLAKE2b-512(message)`, a `trusted comment: …` line, and base64 of
//!   the Ed25519 signature of `signature ‖ trusted comment text` (the "global"
//!   signature, which makes the trusted comment tamper-evident).
//!
//! Key ids are printed as minisign prints them: the 8 bytes read as a
//! little-endian integer, in 16 upper-case hex digits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2b512, Digest};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use std::fmt;
use std::str::FromStr;
use zeroize::{Zeroize, Zeroizing};

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
const ALG_ED25519: [u8; 2] = *b"Ed";
const ALG_PREHASHED: [u8; 2] = *b"ED";
const KDF_SCRYPT: [u8; 2] = *b"Sc";
const KDF_NONE: [u8; 2] = [0, 0];
const CHK_BLAKE2B: [u8; 2] = *b"B2";
const SECRET_KEY_BYTES: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;

/// libsodium's `OPSLIMIT_SENSITIVE` / `MEMLIMIT_SENSITIVE`, which the minisign
/// command line uses for new keys: about a second of scrypt and 1 GiB of memory
/// per unlock, acceptable for an offline signing key.
pub const KDF_OPSLIMIT_SENSITIVE: u64 = 33_554_432;
pub const KDF_MEMLIMIT_SENSITIVE: u64 = 1_073_741_824;

/// Files in these formats are tiny; anything larger is not one of them.
pub const MAX_KEY_FILE_BYTES: usize = 4096;
pub const MAX_SIGNATURE_FILE_BYTES: usize = 8192;
/// Passwords longer than this are refused, as minisign does.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// An 8-byte minisign key identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FormatError::KeyId(s.chars().take(32).collect()));
        }
        let n = u64::from_str_radix(s, 16).map_err(|_| FormatError::KeyId(s.to_string()))?;
        Ok(KeyId(n.to_le_bytes()))
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why bytes are not a well-formed key or signature file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    #[error("{what} file is {size} bytes, over the {max}-byte cap")]
    TooLarge { what: &'static str, size: usize, max: usize },
    #[error("{what} file is not valid UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("{what} file is missing its {line} line")]
    MissingLine { what: &'static str, line: &'static str },
    #[error("{what} file has a {line} line that does not start with {prefix:?}")]
    BadPrefix { what: &'static str, line: &'static str, prefix: &'static str },
    #[error("{what} file has unexpected content after its last line")]
    TrailingContent { what: &'static str },
    #[error("{what} file has invalid base64 in its {line} line")]
    Base64 { what: &'static str, line: &'static str },
    #[error("{what} is {found} bytes after base64 decoding, expected {expected}")]
    Length { what: &'static str, found: usize, expected: usize },
    #[error("{what} uses unsupported algorithm {found:?}")]
    Algorithm { what: &'static str, found: String },
    #[error("public key bytes are not a valid Ed25519 point")]
    InvalidPoint,
    #[error("{0:?} is not a 16-digit hex key id")]
    KeyId(String),
    #[error("comment contains a line break or is over 1024 bytes")]
    BadComment,
}

/// Why a secret key could not be unlocked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnlockError {
    #[error(transparent)]
    Format(#[from] FormatError),
    // The key id is encrypted along with the key, so a wrong password cannot name it.
    #[error("wrong password for the secret key")]
    WrongPassword,
    #[error("secret key is encrypted but no password was given")]
    PasswordRequired,
    #[error("password is over {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error(
        "secret key asks for scrypt parameters (opslimit {opslimit}, memlimit {memlimit}) above the accepted maximum"
    )]
    KdfTooExpensive { opslimit: u64, memlimit: u64 },
    #[error("secret key {key_id} is inconsistent: its public half does not match its seed")]
    Inconsistent { key_id: String },
}

/// Why a signature did not verify. Each reason is kept apart because users need
/// to know which happened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("signature is by key {found}, not by key {expected}")]
    KeyIdMismatch { expected: KeyId, found: KeyId },
    #[error("signature by key {key_id} uses the legacy non-prehashed algorithm, which is refused")]
    LegacyRefused { key_id: KeyId },
    #[error("signature by key {key_id} does not match the signed bytes")]
    Invalid { key_id: KeyId },
    #[error("trusted comment of the signature by key {key_id} was altered")]
    TrustedCommentAltered { key_id: KeyId },
}

/// Whether signatures over the raw message (minisign's pre-2019 default) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySignatures {
    Accept,
    Refuse,
}

/// A minisign Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    verifying_key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id)
    }
}

impl PublicKey {
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// Parses the base64 line of a public key (`RWQ…`).
    pub fn from_base64(line: &str) -> Result<Self, FormatError> {
        let bytes = decode_base64(line.trim_end_matches('\r'), "public key", "key")?;
        if bytes.len() != 42 {
            return Err(FormatError::Length { what: "public key", found: bytes.len(), expected: 42 });
        }
        if bytes[..2] != ALG_ED25519 {
            return Err(FormatError::Algorithm {
                what: "public key",
                found: String::from_utf8_lossy(&bytes[..2]).into(),
            });
        }
        let key_id = KeyId(array(&bytes[2..10]));
        let verifying_key = VerifyingKey::from_bytes(&array(&bytes[10..42])).map_err(|_| FormatError::InvalidPoint)?;
        Ok(Self { key_id, verifying_key })
    }

    /// Parses a `.pub` file: an untrusted comment line and the base64 line.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let text = text_of(bytes, "public key", MAX_KEY_FILE_BYTES)?;
        let mut lines = Lines::new(text, "public key");
        lines.expect_prefixed("untrusted comment", UNTRUSTED_PREFIX)?;
        let key = Self::from_base64(lines.next("key")?)?;
        lines.expect_end()?;
        Ok(key)
    }

    /// The base64 line.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(42);
        bytes.extend_from_slice(&ALG_ED25519);
        bytes.extend_from_slice(&self.key_id.0);
        bytes.extend_from_slice(self.verifying_key.as_bytes());
        BASE64.encode(bytes)
    }

    /// The `.pub` file text, as minisign writes it.
    pub fn to_file_text(&self) -> String {
        format!("{UNTRUSTED_PREFIX}minisign public key {}\n{}\n", self.key_id, self.to_base64())
    }

    /// Verifies a minisign signature over `message`, including its trusted comment.
    pub fn verify(
        &self,
        message: &[u8],
        signature: &Signature,
        legacy: LegacySignatures,
    ) -> Result<(), SignatureError> {
        if signature.key_id != self.key_id {
            return Err(SignatureError::KeyIdMismatch { expected: self.key_id, found: signature.key_id });
        }
        let key_id = self.key_id;
        let prehash;
        let signed: &[u8] = match signature.algorithm {
            SignatureAlgorithm::Prehashed => {
                prehash = Blake2b512::digest(message);
                &prehash
            }
            SignatureAlgorithm::Legacy if legacy == LegacySignatures::Accept => message,
            SignatureAlgorithm::Legacy => return Err(SignatureError::LegacyRefused { key_id }),
        };
        let sig = ed25519_dalek::Signature::from_bytes(&signature.signature);
        self.verifying_key.verify_strict(signed, &sig).map_err(|_| SignatureError::Invalid { key_id })?;
        let global = ed25519_dalek::Signature::from_bytes(&signature.global_signature);
        self.verifying_key
            .verify_strict(&signature.global_message(), &global)
            .map_err(|_| SignatureError::TrustedCommentAltered { key_id })
    }
}

/// A minisign secret key, unlocked. The key material is zeroized on drop
/// (every clone's too: `SigningKey` zeroizes itself).
#[derive(Clone)]
pub struct SecretKey {
    key_id: KeyId,
    signing_key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SecretKey({})", self.key_id)
    }
}

/// How a secret key is protected when written to a file.
pub enum KeyProtection<'a> {
    /// Encrypted with scrypt as minisign does; the usual and only safe choice.
    Password(&'a str),
    /// Stored in the clear. Only for throwaway keys in tests and demos.
    DangerUnencrypted,
}

impl SecretKey {
    /// Generates a fresh key pair from the operating system's random source.
    pub fn generate() -> Self {
        let mut rng = rand_core::OsRng;
        let signing_key = SigningKey::generate(&mut rng);
        let mut key_id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rng, &mut key_id);
        Self { key_id: KeyId(key_id), signing_key }
    }

    /// Builds a key from a 32-byte seed and key id (known-answer tests, fuzzing).
    pub fn from_seed(seed: &[u8; 32], key_id: KeyId) -> Self {
        Self { key_id, signing_key: SigningKey::from_bytes(seed) }
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw Ed25519 key, for signing formats other than minisign's (the
    /// audit log's C2SP checkpoints use the same key).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { key_id: self.key_id, verifying_key: self.signing_key.verifying_key() }
    }

    /// Signs `message` the way `minisign -S` does: prehashed with BLAKE2b-512,
    /// plus a global signature binding `trusted_comment`.
    pub fn sign(&self, message: &[u8], trusted_comment: &str) -> Result<Signature, FormatError> {
        check_comment(trusted_comment)?;
        let signature = self.signing_key.sign(&Blake2b512::digest(message)).to_bytes();
        let mut sig = Signature {
            untrusted_comment: "signature from minisign secret key".to_string(),
            algorithm: SignatureAlgorithm::Prehashed,
            key_id: self.key_id,
            signature,
            trusted_comment: trusted_comment.to_string(),
            global_signature: [0; 64],
        };
        sig.global_signature = self.signing_key.sign(&sig.global_message()).to_bytes();
        Ok(sig)
    }

    /// The secret key file text. With a password this costs one scrypt run with
    /// minisign's "sensitive" parameters.
    pub fn to_file_text(&self, protection: KeyProtection<'_>) -> Result<Zeroizing<String>, UnlockError> {
        let mut salt = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
        self.to_file_text_with(protection, salt, KDF_OPSLIMIT_SENSITIVE, KDF_MEMLIMIT_SENSITIVE)
    }

    fn to_file_text_with(
        &self,
        protection: KeyProtection<'_>,
        salt: [u8; 32],
        opslimit: u64,
        memlimit: u64,
    ) -> Result<Zeroizing<String>, UnlockError> {
        let mut raw = Zeroizing::new(Vec::with_capacity(SECRET_KEY_BYTES));
        raw.extend_from_slice(&ALG_ED25519);
        let (kdf, comment) = match protection {
            KeyProtection::Password(_) => (KDF_SCRYPT, "minisign encrypted secret key"),
            KeyProtection::DangerUnencrypted => (KDF_NONE, "minisign unencrypted secret key (for tests only)"),
        };
        raw.extend_from_slice(&kdf);
        raw.extend_from_slice(&CHK_BLAKE2B);
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(&opslimit.to_le_bytes());
        raw.extend_from_slice(&memlimit.to_le_bytes());
        let keynum_sk_start = raw.len();
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(&self.signing_key.to_keypair_bytes());
        let checksum = secret_key_checksum(&self.key_id.0, &raw[keynum_sk_start + 8..keynum_sk_start + 72]);
        raw.extend_from_slice(&checksum);
        if let KeyProtection::Password(password) = protection {
            let stream = scrypt_stream(password, &salt, opslimit, memlimit)?;
            xor_in_place(&mut raw[keynum_sk_start..], &stream[..]);
        }
        Ok(Zeroizing::new(format!("{UNTRUSTED_PREFIX}{comment}\n{}\n", BASE64.encode(&raw[..]))))
    }
}

/// A parsed but still locked secret key file.
pub struct LockedSecretKey {
    raw: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for LockedSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockedSecretKey(encrypted: {})", self.is_encrypted())
    }
}

impl LockedSecretKey {
    /// Parses a secret key file without unlocking it.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let text = text_of(bytes, "secret key", MAX_KEY_FILE_BYTES)?;
        let mut lines = Lines::new(text, "secret key");
        lines.expect_prefixed("untrusted comment", UNTRUSTED_PREFIX)?;
        let raw = Zeroizing::new(decode_base64(lines.next("key")?, "secret key", "key")?);
        lines.expect_end()?;
        if raw.len() != SECRET_KEY_BYTES {
            return Err(FormatError::Length { what: "secret key", found: raw.len(), expected: SECRET_KEY_BYTES });
        }
        if raw[..2] != ALG_ED25519 || raw[4..6] != CHK_BLAKE2B || !(raw[2..4] == KDF_SCRYPT || raw[2..4] == KDF_NONE) {
            return Err(FormatError::Algorithm {
                what: "secret key",
                found: String::from_utf8_lossy(&raw[..6]).into(),
            });
        }
        Ok(Self { raw })
    }

    pub fn is_encrypted(&self) -> bool {
        self.raw[2..4] == KDF_SCRYPT
    }

    /// Unlocks the key; `password` is ignored for an unencrypted key.
    pub fn unlock(&self, password: Option<&str>) -> Result<SecretKey, UnlockError> {
        let mut raw = self.raw.clone();
        if self.is_encrypted() {
            let password = password.ok_or(UnlockError::PasswordRequired)?;
            let salt: [u8; 32] = array(&raw[6..38]);
            let opslimit = u64::from_le_bytes(array(&raw[38..46]));
            let memlimit = u64::from_le_bytes(array(&raw[46..54]));
            let stream = scrypt_stream(password, &salt, opslimit, memlimit)?;
            xor_in_place(&mut raw[54..], &stream[..]);
        }
        let key_id = KeyId(array(&raw[54..62]));
        let keypair = Zeroizing::new(array::<64>(&raw[62..126]));
        let checksum = secret_key_checksum(&key_id.0, &keypair[..]);
        // Constant-time comparison is not needed here: the checksum only tells a
        // wrong password from a right one, and the attacker holding the file can
        // run scrypt offline anyway.
        // `minisign -G -W` leaves the checksum of an unencrypted key zeroed; the
        // keypair consistency check below still catches a corrupt key.
        let unencrypted_without_checksum = !self.is_encrypted() && raw[126..158].iter().all(|b| *b == 0);
        if checksum[..] != raw[126..158] && !unencrypted_without_checksum {
            return Err(UnlockError::WrongPassword);
        }
        let signing_key = SigningKey::from_keypair_bytes(&keypair)
            .map_err(|_| UnlockError::Inconsistent { key_id: key_id.to_string() })?;
        Ok(SecretKey { key_id, signing_key })
    }
}

/// Which message a signature's first Ed25519 signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// `ED`: over BLAKE2b-512 of the message (minisign's default).
    Prehashed,
    /// `Ed`: over the message itself (legacy).
    Legacy,
}

/// A parsed `.minisig` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub untrusted_comment: String,
    pub algorithm: SignatureAlgorithm,
    pub key_id: KeyId,
    signature: [u8; 64],
    /// The trusted comment text, without the `trusted comment: ` prefix.
    pub trusted_comment: String,
    global_signature: [u8; 64],
}

impl Signature {
    /// Parses a `.minisig` file.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let text = text_of(bytes, "signature", MAX_SIGNATURE_FILE_BYTES)?;
        let mut lines = Lines::new(text, "signature");
        let untrusted_comment = lines.expect_prefixed("untrusted comment", UNTRUSTED_PREFIX)?.to_string();
        let sig = decode_base64(lines.next("signature")?, "signature", "signature")?;
        if sig.len() != 74 {
            return Err(FormatError::Length { what: "signature", found: sig.len(), expected: 74 });
        }
        let algorithm = match [sig[0], sig[1]] {
            ALG_PREHASHED => SignatureAlgorithm::Prehashed,
            ALG_ED25519 => SignatureAlgorithm::Legacy,
            other => {
                return Err(FormatError::Algorithm {
                    what: "signature",
                    found: String::from_utf8_lossy(&other).into(),
                });
            }
        };
        let trusted_comment = lines.expect_prefixed("trusted comment", TRUSTED_PREFIX)?.to_string();
        let global = decode_base64(lines.next("global signature")?, "signature", "global signature")?;
        if global.len() != 64 {
            return Err(FormatError::Length { what: "global signature", found: global.len(), expected: 64 });
        }
        lines.expect_end()?;
        Ok(Self {
            untrusted_comment,
            algorithm,
            key_id: KeyId(array(&sig[2..10])),
            signature: array(&sig[10..74]),
            trusted_comment,
            global_signature: array(&global),
        })
    }

    /// The `.minisig` file text, as minisign writes it.
    pub fn to_file_text(&self) -> String {
        let alg = match self.algorithm {
            SignatureAlgorithm::Prehashed => ALG_PREHASHED,
            SignatureAlgorithm::Legacy => ALG_ED25519,
        };
        let mut sig = Vec::with_capacity(74);
        sig.extend_from_slice(&alg);
        sig.extend_from_slice(&self.key_id.0);
        sig.extend_from_slice(&self.signature);
        format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n{TRUSTED_PREFIX}{}\n{}\n",
            self.untrusted_comment,
            BASE64.encode(sig),
            self.trusted_comment,
            BASE64.encode(self.global_signature)
        )
    }

    fn global_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(64 + self.trusted_comment.len());
        m.extend_from_slice(&self.signature);
        m.extend_from_slice(self.trusted_comment.as_bytes());
        m
    }
}

fn secret_key_checksum(key_id: &[u8], keypair: &[u8]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(ALG_ED25519);
    h.update(key_id);
    h.update(keypair);
    h.finalize().into()
}

/// Accepting a parameter set is accepting its cost; refuse anything above what
/// minisign itself would ever write, so a crafted key file cannot ask for
/// terabytes of memory.
fn scrypt_stream(
    password: &str,
    salt: &[u8; 32],
    opslimit: u64,
    memlimit: u64,
) -> Result<Zeroizing<[u8; 104]>, UnlockError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UnlockError::PasswordTooLong);
    }
    let too_expensive = UnlockError::KdfTooExpensive { opslimit, memlimit };
    if memlimit > KDF_MEMLIMIT_SENSITIVE || opslimit > KDF_OPSLIMIT_SENSITIVE * 4 {
        return Err(too_expensive);
    }
    let (log_n, r, p) = libsodium_scrypt_params(opslimit, memlimit);
    if log_n > 20 || p > 16 {
        return Err(too_expensive);
    }
    // The `len` of `Params` only matters for the PHC string API; the output length
    // is the length of the buffer passed to `scrypt`.
    let params = scrypt::Params::new(log_n, r, p, scrypt::Params::RECOMMENDED_LEN).map_err(|_| too_expensive)?;
    let mut out = Zeroizing::new([0u8; 104]);
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut out[..])
        .map_err(|_| UnlockError::KdfTooExpensive { opslimit, memlimit })?;
    Ok(out)
}

/// libsodium's `pickparams` for `crypto_pwhash_scryptsalsa208sha256`: how the
/// (opslimit, memlimit) pair stored in a minisign key maps to scrypt's N, r, p.
fn libsodium_scrypt_params(opslimit: u64, memlimit: u64) -> (u8, u32, u32) {
    let opslimit = opslimit.max(32768);
    let r: u32 = 8;
    let mut log_n: u8 = 1;
    if opslimit < memlimit / 32 {
        let max_n = opslimit / (u64::from(r) * 4);
        while log_n < 63 && (1u64 << log_n) <= max_n / 2 {
            log_n += 1;
        }
        (log_n, r, 1)
    } else {
        let max_n = memlimit / (u64::from(r) * 128);
        while log_n < 63 && (1u64 << log_n) <= max_n / 2 {
            log_n += 1;
        }
        let max_rp = ((opslimit / 4) / (1u64 << log_n)).min(0x3fff_ffff) as u32;
        (log_n, r, max_rp / r)
    }
}

fn xor_in_place(data: &mut [u8], stream: &[u8]) {
    for (byte, key) in data.iter_mut().zip(stream) {
        *byte ^= key;
    }
}

fn check_comment(comment: &str) -> Result<(), FormatError> {
    if comment.contains(['\n', '\r']) || comment.len() > 1024 { Err(FormatError::BadComment) } else { Ok(()) }
}

fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

fn decode_base64(line: &str, what: &'static str, line_name: &'static str) -> Result<Vec<u8>, FormatError> {
    BASE64.decode(line.trim()).map_err(|_| FormatError::Base64 { what, line: line_name })
}

fn text_of<'a>(bytes: &'a [u8], what: &'static str, max: usize) -> Result<&'a str, FormatError> {
    if bytes.len() > max {
        return Err(FormatError::TooLarge { what, size: bytes.len(), max });
    }
    std::str::from_utf8(bytes).map_err(|_| FormatError::NotUtf8 { what })
}

/// A line reader that names what is missing.
struct Lines<'a> {
    inner: std::str::Lines<'a>,
    what: &'static str,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, what: &'static str) -> Self {
        Self { inner: text.lines(), what }
    }

    fn next(&mut self, line: &'static str) -> Result<&'a str, FormatError> {
        match self.inner.next() {
            Some(l) => Ok(l.strip_suffix('\r').unwrap_or(l)),
            None => Err(FormatError::MissingLine { what: self.what, line }),
        }
    }

    fn expect_prefixed(&mut self, line: &'static str, prefix: &'static str) -> Result<&'a str, FormatError> {
        let text = self.next(line)?;
        text.strip_prefix(prefix).ok_or(FormatError::BadPrefix { what: self.what, line, prefix })
    }

    fn expect_end(&mut self) -> Result<(), FormatError> {
        if self.inner.all(|l| l.trim().is_empty()) {
            Ok(())
        } else {
            Err(FormatError::TrailingContent { what: self.what })
        }
    }
}

impl Drop for LockedSecretKey {
    fn drop(&mut self) {
        self.raw.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors published with rust-minisign-verify
    // (github.com/jedisct1/rust-minisign-verify, src/lib.rs, commit
    // 078b3acec53ca1650448cf46408e4d9b373c25fe, tests `verify` and `verify_prehashed`).
    const KAT_PUBLIC_KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    const KAT_LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key
RWQf6LRCGA9i59SLOFxz6NxvASXDJeRtuZykwQepbDEGt87ig1BNpWaVWuNrm73YiIiJbq71Wi+dP9eKL8OC351vwIasSSbXxwA=
trusted comment: timestamp:1555779966\tfile:test
QtKMXWyYcwdpZAlPF7tE2ENJkRd1ujvKjlj1m9RtHTBnZPa5WKU5uWRs5GoP5M/VqE81QFuMKI5k/SfNQUaOAA==";
    const KAT_PREHASHED_SIG: &str = "untrusted comment: signature from minisign secret key
RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=
trusted comment: timestamp:1556193335\tfile:test
y/rUw2y8/hOUYjZU71eHp/Wo1KZ40fGy2VJEDl34XMJM+TX48Ss/17u3IvIfbVR1FkZZSNCisQbuQY+bHwhEBg==";

    #[test]
    fn kat_key_id_is_printed_as_minisign_does() {
        let pk = PublicKey::from_base64(KAT_PUBLIC_KEY).unwrap();
        assert_eq!(pk.key_id().to_string(), "E7620F1842B4E81F");
        assert_eq!(pk.to_base64(), KAT_PUBLIC_KEY);
        assert_eq!("E7620F1842B4E81F".parse::<KeyId>().unwrap(), pk.key_id());
    }

    #[test]
    fn kat_prehashed_signature_verifies() {
        let pk = PublicKey::from_base64(KAT_PUBLIC_KEY).unwrap();
        let sig = Signature::from_file_bytes(KAT_PREHASHED_SIG.as_bytes()).unwrap();
        assert_eq!(sig.trusted_comment, "timestamp:1556193335\tfile:test");
        assert_eq!(sig.algorithm, SignatureAlgorithm::Prehashed);
        pk.verify(b"test", &sig, LegacySignatures::Refuse).unwrap();
        assert_eq!(
            pk.verify(b"Test", &sig, LegacySignatures::Refuse),
            Err(SignatureError::Invalid { key_id: pk.key_id() })
        );
        // Re-encoding a parsed signature gives back the same file.
        assert_eq!(sig.to_file_text(), format!("{KAT_PREHASHED_SIG}\n"));
    }

    #[test]
    fn kat_legacy_signature_is_refused_unless_allowed() {
        let pk = PublicKey::from_base64(KAT_PUBLIC_KEY).unwrap();
        let sig = Signature::from_file_bytes(KAT_LEGACY_SIG.as_bytes()).unwrap();
        assert_eq!(
            pk.verify(b"test", &sig, LegacySignatures::Refuse),
            Err(SignatureError::LegacyRefused { key_id: pk.key_id() })
        );
        pk.verify(b"test", &sig, LegacySignatures::Accept).unwrap();
    }

    #[test]
    fn kat_altered_trusted_comment_is_detected() {
        let pk = PublicKey::from_base64(KAT_PUBLIC_KEY).unwrap();
        let text = KAT_PREHASHED_SIG.replace("file:test", "file:evil");
        let sig = Signature::from_file_bytes(text.as_bytes()).unwrap();
        assert_eq!(
            pk.verify(b"test", &sig, LegacySignatures::Refuse),
            Err(SignatureError::TrustedCommentAltered { key_id: pk.key_id() })
        );
    }

    #[test]
    fn scrypt_params_match_libsodium() {
        // The (N, r, p) libsodium derives for minisign's sensitive and interactive limits.
        assert_eq!(libsodium_scrypt_params(KDF_OPSLIMIT_SENSITIVE, KDF_MEMLIMIT_SENSITIVE), (20, 8, 1));
        assert_eq!(libsodium_scrypt_params(524_288, 16_777_216), (14, 8, 1));
    }

    #[test]
    fn sign_verify_round_trip_and_wrong_key() {
        let sk = SecretKey::generate();
        let sig = sk.sign(b"manifest", "file:manifest.json").unwrap();
        let parsed = Signature::from_file_bytes(sig.to_file_text().as_bytes()).unwrap();
        sk.public_key().verify(b"manifest", &parsed, LegacySignatures::Refuse).unwrap();
        let other = SecretKey::generate().public_key();
        assert_eq!(
            other.verify(b"manifest", &parsed, LegacySignatures::Refuse),
            Err(SignatureError::KeyIdMismatch { expected: other.key_id(), found: sk.key_id() })
        );
    }

    #[test]
    fn encrypted_key_round_trip_and_wrong_password() {
        let sk = SecretKey::generate();
        // Cheap parameters keep the test fast; the format is the same.
        let text =
            sk.to_file_text_with(KeyProtection::Password("correct horse"), [7; 32], 524_288, 16_777_216).unwrap();
        let locked = LockedSecretKey::from_file_bytes(text.as_bytes()).unwrap();
        assert!(locked.is_encrypted());
        assert_eq!(locked.unlock(None).unwrap_err(), UnlockError::PasswordRequired);
        assert_eq!(locked.unlock(Some("wrong")).unwrap_err(), UnlockError::WrongPassword);
        let unlocked = locked.unlock(Some("correct horse")).unwrap();
        assert_eq!(unlocked.public_key(), sk.public_key());
    }

    #[test]
    fn unencrypted_key_round_trip() {
        let sk = SecretKey::generate();
        let text = sk.to_file_text(KeyProtection::DangerUnencrypted).unwrap();
        let locked = LockedSecretKey::from_file_bytes(text.as_bytes()).unwrap();
        assert!(!locked.is_encrypted());
        assert_eq!(locked.unlock(None).unwrap().public_key(), sk.public_key());
    }

    #[test]
    fn crafted_kdf_parameters_are_refused_before_running_scrypt() {
        let sk = SecretKey::generate();
        let text = sk.to_file_text_with(KeyProtection::Password("pw"), [1; 32], 1 << 40, 1 << 40);
        assert!(matches!(text, Err(UnlockError::KdfTooExpensive { .. })));
    }

    #[test]
    fn malformed_inputs_give_named_errors() {
        assert_eq!(
            PublicKey::from_file_bytes(b"untrusted comment: x\n").unwrap_err(),
            FormatError::MissingLine { what: "public key", line: "key" }
        );
        assert_eq!(
            PublicKey::from_file_bytes(b"hello\nRWQ\n").unwrap_err(),
            FormatError::BadPrefix { what: "public key", line: "untrusted comment", prefix: UNTRUSTED_PREFIX }
        );
        assert_eq!(
            PublicKey::from_file_bytes(b"untrusted comment: x\n!!!!\n").unwrap_err(),
            FormatError::Base64 { what: "public key", line: "key" }
        );
        assert_eq!(PublicKey::from_file_bytes(&[0xff, 0xfe]).unwrap_err(), FormatError::NotUtf8 { what: "public key" });
        assert!(matches!(PublicKey::from_file_bytes(&vec![b'a'; 5000]), Err(FormatError::TooLarge { .. })));
        let truncated = &KAT_PREHASHED_SIG[..KAT_PREHASHED_SIG.len() - 20];
        assert_eq!(
            Signature::from_file_bytes(truncated.as_bytes()).unwrap_err(),
            FormatError::Length { what: "global signature", found: 51, expected: 64 }
        );
        let no_global: String = KAT_PREHASHED_SIG.lines().take(3).collect::<Vec<_>>().join("\n");
        assert_eq!(
            Signature::from_file_bytes(no_global.as_bytes()).unwrap_err(),
            FormatError::MissingLine { what: "signature", line: "global signature" }
        );
        assert!(matches!(
            LockedSecretKey::from_file_bytes(b"untrusted comment: x\nAAAA\n"),
            Err(FormatError::Length { .. })
        ));
    }
}
