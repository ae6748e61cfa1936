//! DSSE v1, the Dead Simple Signing Envelope: how a statement that is not a
//! manifest (the in-toto build provenance `cargo xtask sign` writes beside each
//! bundle) is signed with the same maintainer keys and checked against the same
//! trust store.
//!
//! The format, as the DSSE specification (github.com/secure-systems-lab/dsse,
//! `protocol.md` and `envelope.md`) defines it:
//!
//! - a JSON envelope `{"payload": Base64(BODY), "payloadType": TYPE,
//!   "signatures": [{"keyid": KEYID, "sig": Base64(SIGNATURE)}]}`, standard or
//!   URL-safe base64 (both are accepted, standard is written);
//! - each signature is over the pre-authentication encoding
//!   `PAE(TYPE, BODY) = "DSSEv1" SP LEN(TYPE) SP TYPE SP LEN(BODY) SP BODY`,
//!   lengths in ASCII decimal without leading zeros, so the payload type is
//!   authenticated along with the payload and the two cannot be confused.
//!
//! Night Core's choices inside that format: signatures are plain Ed25519 (no
//! prehash) by the Ed25519 key inside a minisign secret key; `keyid` is the
//! minisign key id as printed everywhere else (16 upper-case hex digits). The
//! key id is an unauthenticated hint: it picks the trust store key to try, and a
//! signature without a usable one is tried against every key in the store.
//!
//! Verification follows [`crate::verify`], so that an envelope and a manifest
//! signed by the same people are judged the same way: a revoked key or a bad
//! signature by a trusted key fails at once, unknown keys are ignored but named
//! if nothing else counts, and the counting itself (log keys never approve, the
//! tenant's threshold of *distinct* keys) is the one rule all signed formats
//! share, [`TrustStore::approvals`]. The one difference is the keyless
//! fallback above, which DSSE allows and minisign signatures never need.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer as _;
use serde::Deserialize;
use std::collections::BTreeSet;

use crate::minisign::{KeyId, PublicKey, SecretKey};
use crate::trust::{Shortfall, TrustStore};

/// Envelopes larger than this are refused before parsing. A build provenance
/// statement is a few KiB; the cap leaves room for many signatures.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// At most this many signatures are read from one envelope, as for bundles.
pub const MAX_SIGNATURES: usize = 32;

/// Payload types longer than this are refused; real ones are media types or URIs.
pub const MAX_PAYLOAD_TYPE_BYTES: usize = 1024;

/// The start of every pre-authentication encoding.
const PAE_PREFIX: &[u8] = b"DSSEv1";

/// Key ids are echoed in error messages; an attacker-chosen one is cut here.
const MAX_ECHOED_KEYID_CHARS: usize = 64;

/// `PAE(payload_type, payload)`: the bytes a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out =
        Vec::with_capacity(PAE_PREFIX.len() + 4 + type_len.len() + payload_type.len() + body_len.len() + payload.len());
    out.extend_from_slice(PAE_PREFIX);
    out.push(b' ');
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// The unauthenticated key hint; empty when the envelope has none. Night
    /// Core writes the minisign key id (16 upper-case hex digits).
    pub keyid: String,
    /// The Ed25519 signature over [`pae`] of the envelope's type and payload.
    pub sig: [u8; 64],
}

/// A DSSE envelope, decoded: the payload is the raw bytes that were signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope was refused. Each reason has a stable [`reason_code`].
///
/// [`reason_code`]: DsseError::reason_code
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DsseError {
    #[error("envelope is {size} bytes, over the {max}-byte cap")]
    TooLarge { size: usize, max: usize },
    #[error("envelope is not a DSSE JSON envelope: {0}")]
    Malformed(String),
    #[error("envelope has more than {max} signatures")]
    TooManySignatures { max: usize },
    #[error("signature #{index} of the envelope is malformed: {reason}")]
    MalformedSignature { index: usize, reason: String },
    #[error("envelope payload type {found:?} is not {expected:?}")]
    PayloadTypeMismatch { expected: String, found: String },
    #[error("envelope is unsigned: its signatures list is empty")]
    Unsigned,
    /// `key_id` is the hint as found in the envelope (cut to 64 characters),
    /// or `(none)` when the signature has none and no trusted key matched.
    #[error("signature by key {key_id} is not in the trust store")]
    UntrustedKey { key_id: String },
    #[error("signature by revoked key {key_id}")]
    RevokedKey { key_id: KeyId },
    #[error("bad signature by key {key_id}: it does not match the envelope's payload and payload type")]
    BadSignature { key_id: KeyId },
    #[error("key {key_id} is trusted but not allowed to approve tenant {tenant}")]
    KeyNotAllowedForTenant { key_id: KeyId, tenant: String },
    #[error("key {key_id} is a log key: it signs audit checkpoints and receipts, never modules")]
    LogKeyCannotApprove { key_id: KeyId },
    #[error("threshold not met: {valid} distinct trusted signature(s), {required} required")]
    ThresholdNotMet { required: usize, valid: usize },
}

impl DsseError {
    /// A stable snake_case code for JSON output and audit events; the codes
    /// shared with [`crate::verify::VerifyError`] mean the same thing.
    pub fn reason_code(&self) -> &'static str {
        match self {
            DsseError::TooLarge { .. } => "envelope_too_large",
            DsseError::Malformed(_) => "malformed_envelope",
            DsseError::TooManySignatures { .. } => "too_many_signatures",
            DsseError::MalformedSignature { .. } => "malformed_signature",
            DsseError::PayloadTypeMismatch { .. } => "payload_type_mismatch",
            DsseError::Unsigned => "unsigned",
            DsseError::UntrustedKey { .. } => "untrusted_key",
            DsseError::RevokedKey { .. } => "revoked_key",
            DsseError::BadSignature { .. } => "bad_signature",
            DsseError::KeyNotAllowedForTenant { .. } => "key_not_allowed_for_tenant",
            DsseError::LogKeyCannotApprove { .. } => "log_key_cannot_approve",
            DsseError::ThresholdNotMet { .. } => "threshold_not_met",
        }
    }
}

/// The envelope as it is on disk; every field may be omitted when empty.
#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(default)]
    payload: String,
    #[serde(default, rename = "payloadType")]
    payload_type: String,
    #[serde(default)]
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: Option<String>,
    #[serde(default)]
    sig: String,
}

impl Envelope {
    /// An envelope with no signatures yet.
    pub fn new(payload_type: impl Into<String>, payload: Vec<u8>) -> Self {
        Self { payload_type: payload_type.into(), payload, signatures: Vec::new() }
    }

    /// The bytes every signature of this envelope covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Signs the envelope with `key`, replacing an earlier signature with the
    /// same key id, so that signing twice leaves one signature per key.
    pub fn sign(&mut self, key: &SecretKey) -> KeyId {
        let key_id = key.key_id();
        let signature =
            EnvelopeSignature { keyid: key_id.to_string(), sig: key.signing_key().sign(&self.pae()).to_bytes() };
        match self.signatures.iter_mut().find(|s| s.keyid == signature.keyid) {
            Some(existing) => *existing = signature,
            None => self.signatures.push(signature),
        }
        key_id
    }

    /// Parses an envelope as read from disk: size-capped, JSON, base64 in
    /// either alphabet, at most [`MAX_SIGNATURES`] 64-byte signatures.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, DsseError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge { size: bytes.len(), max: MAX_ENVELOPE_BYTES });
        }
        let raw: RawEnvelope = serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))?;
        if raw.payload_type.len() > MAX_PAYLOAD_TYPE_BYTES {
            return Err(DsseError::Malformed(format!("payloadType is over {MAX_PAYLOAD_TYPE_BYTES} bytes")));
        }
        if raw.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures { max: MAX_SIGNATURES });
        }
        let payload =
            decode_base64(&raw.payload).ok_or_else(|| DsseError::Malformed("payload is not base64".into()))?;
        let mut signatures = Vec::with_capacity(raw.signatures.len());
        for (index, signature) in raw.signatures.into_iter().enumerate() {
            let malformed = |reason: String| DsseError::MalformedSignature { index, reason };
            let bytes = decode_base64(&signature.sig).ok_or_else(|| malformed("sig is not base64".into()))?;
            let sig: [u8; 64] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| malformed(format!("sig is {} bytes, an Ed25519 signature is 64", bytes.len())))?;
            signatures.push(EnvelopeSignature { keyid: signature.keyid.unwrap_or_default(), sig });
        }
        Ok(Self { payload_type: raw.payload_type, payload, signatures })
    }

    /// The JSON envelope, standard base64, one line ending in a newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let signatures: Vec<serde_json::Value> = self
            .signatures
            .iter()
            .map(|s| {
                if s.keyid.is_empty() {
                    serde_json::json!({ "sig": STANDARD.encode(s.sig) })
                } else {
                    serde_json::json!({ "keyid": s.keyid, "sig": STANDARD.encode(s.sig) })
                }
            })
            .collect();
        let envelope = serde_json::json!({
            "payload": STANDARD.encode(&self.payload),
            "payloadType": self.payload_type,
            "signatures": signatures,
        });
        // Displaying a `Value` cannot fail, unlike `serde_json::to_vec`.
        format!("{envelope}\n").into_bytes()
    }
}

/// What an envelope must be to count.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopePolicy<'a> {
    /// The only payload type accepted.
    pub payload_type: &'a str,
    /// The tenant whose key set and threshold apply (see [`TrustStore`]).
    pub tenant: &'a str,
}

/// Verifies `envelope` against `trust`: the payload type, then every
/// signature, then the tenant's threshold of distinct approving keys. Returns
/// the keys that counted, sorted.
pub fn verify_envelope(
    envelope: &Envelope,
    trust: &TrustStore,
    policy: &EnvelopePolicy<'_>,
) -> Result<Vec<KeyId>, DsseError> {
    if envelope.payload_type != policy.payload_type {
        return Err(DsseError::PayloadTypeMismatch {
            expected: policy.payload_type.to_owned(),
            found: envelope.payload_type.chars().take(MAX_PAYLOAD_TYPE_BYTES).collect(),
        });
    }
    if envelope.signatures.is_empty() {
        return Err(DsseError::Unsigned);
    }
    let message = envelope.pae();
    let mut valid = BTreeSet::new();
    let mut first_untrusted: Option<String> = None;
    for signature in &envelope.signatures {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.sig);
        let verifies = |key: &PublicKey| key.verifying_key().verify_strict(&message, &sig).is_ok();
        match signature.keyid.parse::<KeyId>() {
            Ok(key_id) => {
                if trust.is_revoked(key_id) {
                    return Err(DsseError::RevokedKey { key_id });
                }
                match trust.key(key_id) {
                    Some(key) if verifies(key) => {
                        valid.insert(key_id);
                    }
                    Some(_) => return Err(DsseError::BadSignature { key_id }),
                    None => {
                        first_untrusted.get_or_insert_with(|| signature.keyid.clone());
                    }
                }
            }
            // No hint in our form: DSSE lets the verifier try every key it has.
            Err(_) => match trust.keys().find(|key| verifies(key)) {
                Some(key) if trust.is_revoked(key.key_id()) => {
                    return Err(DsseError::RevokedKey { key_id: key.key_id() });
                }
                Some(key) => {
                    valid.insert(key.key_id());
                }
                None => {
                    let hint = if signature.keyid.is_empty() {
                        "(none)".to_owned()
                    } else {
                        signature.keyid.chars().take(MAX_ECHOED_KEYID_CHARS).collect()
                    };
                    first_untrusted.get_or_insert(hint);
                }
            },
        }
    }

    let counted = trust.approvals(valid, policy.tenant, first_untrusted).map_err(|shortfall| match shortfall {
        Shortfall::LogKeyCannotApprove { key_id } => DsseError::LogKeyCannotApprove { key_id },
        Shortfall::KeyNotAllowedForTenant { key_id } => {
            DsseError::KeyNotAllowedForTenant { key_id, tenant: policy.tenant.to_owned() }
        }
        Shortfall::Untrusted(key_id) => DsseError::UntrustedKey { key_id },
        Shortfall::ThresholdNotMet { required, valid } => DsseError::ThresholdNotMet { required, valid },
    })?;
    Ok(counted.into_iter().collect())
}

/// Decodes base64 in the standard or the URL-safe alphabet, padded or not,
/// as DSSE requires verifiers to accept.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN_TOTO: &str = "application/vnd.in-toto+json";

    /// Known-answer vectors from github.com/secure-systems-lab/dsse,
    /// `testvectors/vectors.json` at commit 82043adf78bb4e67c208f9ffa72b38804ea6a0c4.
    /// Keys A and B are the Ed25519 keys of RFC 8032 section 7.1, TEST 1 and
    /// TEST 2, so the signatures are deterministic and checkable by anyone.
    const SEED_A: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const SEED_B: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    const KAT_STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
    const KAT_PAE_HEX: &str = "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d";
    const KAT_SIG_A: &str = "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==";
    const KAT_SIG_B: &str = "c1+67/aT0yqEpwx8PsVY3MLHsj9D0CZ014/Fv/QlG59P+9CobUZ7xECJ/V3USG0Ob9CiE5LjReEZUzNF2l7eBw==";

    fn seeded_key(seed_hex: &str, key_id: u64) -> SecretKey {
        let seed: [u8; 32] = hex::decode(seed_hex).unwrap().try_into().unwrap();
        SecretKey::from_seed(&seed, KeyId(key_id.to_le_bytes()))
    }

    fn store(keys: &[&SecretKey], trust_toml: &str) -> TrustStore {
        TrustStore::from_keys_and_toml(keys.iter().map(|k| k.public_key()).collect(), trust_toml).unwrap()
    }

    fn policy(tenant: &str) -> EnvelopePolicy<'_> {
        EnvelopePolicy { payload_type: IN_TOTO, tenant }
    }

    fn signed(payload: &[u8], keys: &[&SecretKey]) -> Envelope {
        let mut envelope = Envelope::new(IN_TOTO, payload.to_vec());
        for key in keys {
            envelope.sign(key);
        }
        envelope
    }

    #[test]
    fn pae_is_the_specification_example() {
        // protocol.md, "Test Vectors".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(hex::encode(pae(IN_TOTO, KAT_STATEMENT)), KAT_PAE_HEX);
        // An empty body still ends in a space; lengths count bytes, not characters.
        assert_eq!(pae(IN_TOTO, b""), b"DSSEv1 28 application/vnd.in-toto+json 0 ");
        assert!(pae("application/vnd.exämple+json", b"").starts_with(b"DSSEv1 29 "));
    }

    #[test]
    fn kat_signatures_match_the_published_vectors() {
        let a = seeded_key(SEED_A, 0xA);
        let b = seeded_key(SEED_B, 0xB);
        let envelope = signed(KAT_STATEMENT, &[&a, &b]);
        assert_eq!(STANDARD.encode(envelope.signatures[0].sig), KAT_SIG_A);
        assert_eq!(STANDARD.encode(envelope.signatures[1].sig), KAT_SIG_B);
    }

    #[test]
    fn kat_envelopes_are_judged_as_published() {
        let a = seeded_key(SEED_A, 0xA);
        let b = seeded_key(SEED_B, 0xB);
        let payload = STANDARD.encode(KAT_STATEMENT);
        let one = store(&[&a], "threshold = 1\n");
        let two = store(&[&a, &b], "threshold = 2\n");
        let parse = |text: String| Envelope::from_json_bytes(text.as_bytes()).unwrap();

        // single-signature: the vectors' key id "A" is not in our form, so every key is tried.
        let single = parse(format!(
            r#"{{"payload":"{payload}","payloadType":"{IN_TOTO}","signatures":[{{"sig":"{KAT_SIG_A}","keyid":"A"}}]}}"#
        ));
        assert_eq!(verify_envelope(&single, &one, &policy("t")).unwrap(), [a.key_id()]);

        // url-safe-base64: payload and signature in the URL-safe alphabet.
        let url_safe = parse(
            r#"{"payload":"-_-_Pj8=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==","keyid":"A"}]}"#
                .to_owned(),
        );
        assert_eq!(url_safe.payload, [0xfb, 0xff, 0xbf, 0x3e, 0x3f]);
        assert_eq!(verify_envelope(&url_safe, &one, &policy("t")).unwrap(), [a.key_id()]);

        // payload-type-swapped: the signature covers another type.
        let swapped = parse(format!(
            r#"{{"payload":"{payload}","payloadType":"application/vnd.example.other+json","signatures":[{{"sig":"{KAT_SIG_A}","keyid":"A"}}]}}"#
        ));
        let other = EnvelopePolicy { payload_type: "application/vnd.example.other+json", tenant: "t" };
        assert_eq!(verify_envelope(&swapped, &one, &other), Err(DsseError::UntrustedKey { key_id: "A".into() }));
        assert!(matches!(verify_envelope(&swapped, &one, &policy("t")), Err(DsseError::PayloadTypeMismatch { .. })));

        // threshold-two-one-key-twice and threshold-two-without-keyids.
        let twice = parse(format!(
            r#"{{"payload":"{payload}","payloadType":"{IN_TOTO}","signatures":[{{"sig":"{KAT_SIG_A}","keyid":"A"}},{{"sig":"{KAT_SIG_A}","keyid":"A"}}]}}"#
        ));
        assert_eq!(
            verify_envelope(&twice, &two, &policy("t")),
            Err(DsseError::ThresholdNotMet { required: 2, valid: 1 })
        );
        let without_keyids = parse(format!(
            r#"{{"payload":"{payload}","payloadType":"{IN_TOTO}","signatures":[{{"sig":"{KAT_SIG_A}"}},{{"sig":"{KAT_SIG_B}"}}]}}"#
        ));
        let mut both = vec![a.key_id(), b.key_id()];
        both.sort();
        assert_eq!(verify_envelope(&without_keyids, &two, &policy("t")).unwrap(), both);
    }

    #[test]
    fn sign_verify_round_trip_through_json() {
        let alice = SecretKey::generate();
        let bob = SecretKey::generate();
        let envelope = signed(b"{\"statement\":1}", &[&alice, &bob]);
        let text = envelope.to_json_bytes();
        let parsed = Envelope::from_json_bytes(&text).unwrap();
        assert_eq!(parsed, envelope);
        assert_eq!(parsed.signatures[0].keyid, alice.key_id().to_string());
        let trust = store(&[&alice, &bob], "threshold = 2\n");
        let mut expected = vec![alice.key_id(), bob.key_id()];
        expected.sort();
        assert_eq!(verify_envelope(&parsed, &trust, &policy("hello")).unwrap(), expected);
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(json["payloadType"], IN_TOTO);
        assert_eq!(json["payload"], STANDARD.encode(b"{\"statement\":1}"));
    }

    #[test]
    fn signing_again_replaces_the_signature_of_the_same_key() {
        let alice = SecretKey::generate();
        let mut envelope = signed(b"x", &[&alice]);
        envelope.sign(&alice);
        assert_eq!(envelope.signatures.len(), 1);
    }

    #[test]
    fn a_key_outside_the_trust_store_is_untrusted() {
        let alice = SecretKey::generate();
        let mallory = SecretKey::generate();
        let trust = store(&[&alice], "threshold = 1\n");
        let envelope = signed(b"x", &[&mallory]);
        assert_eq!(
            verify_envelope(&envelope, &trust, &policy("hello")),
            Err(DsseError::UntrustedKey { key_id: mallory.key_id().to_string() })
        );
        let mut anonymous = envelope.clone();
        anonymous.signatures[0].keyid.clear();
        assert_eq!(
            verify_envelope(&anonymous, &trust, &policy("hello")),
            Err(DsseError::UntrustedKey { key_id: "(none)".into() })
        );
        assert_eq!(verify_envelope(&anonymous, &trust, &policy("hello")).unwrap_err().reason_code(), "untrusted_key");
    }

    #[test]
    fn a_revoked_key_fails_even_next_to_enough_good_signatures() {
        let alice = SecretKey::generate();
        let bob = SecretKey::generate();
        let carol = SecretKey::generate();
        let trust = store(&[&alice, &bob, &carol], &format!("threshold = 2\nrevoked = [\"{}\"]\n", carol.key_id()));
        let envelope = signed(b"x", &[&alice, &bob, &carol]);
        assert_eq!(
            verify_envelope(&envelope, &trust, &policy("hello")),
            Err(DsseError::RevokedKey { key_id: carol.key_id() })
        );
        // Without a key id the revoked key is still recognised by its signature.
        let mut anonymous = signed(b"x", &[&carol]);
        anonymous.signatures[0].keyid.clear();
        assert_eq!(verify_envelope(&anonymous, &trust, &policy("hello")).unwrap_err().reason_code(), "revoked_key");
    }

    #[test]
    fn a_flipped_payload_byte_is_a_bad_signature() {
        let alice = SecretKey::generate();
        let trust = store(&[&alice], "threshold = 1\n");
        let mut envelope = signed(b"{\"cargo_lock\":\"aaaa\"}", &[&alice]);
        envelope.payload[5] ^= 1;
        let error = verify_envelope(&envelope, &trust, &policy("hello")).unwrap_err();
        assert_eq!(error, DsseError::BadSignature { key_id: alice.key_id() });
        assert_eq!(error.reason_code(), "bad_signature");
        // The payload type is signed too.
        let mut retyped = signed(b"x", &[&alice]);
        retyped.payload_type = "application/vnd.other+json".into();
        let other = EnvelopePolicy { payload_type: "application/vnd.other+json", tenant: "hello" };
        assert_eq!(verify_envelope(&retyped, &trust, &other).unwrap_err().reason_code(), "bad_signature");
    }

    #[test]
    fn thresholds_tenants_and_log_keys_follow_the_trust_store() {
        let alice = SecretKey::generate();
        let bob = SecretKey::generate();
        let host = SecretKey::generate();
        // Bob is scoped to billing; alice and carol approve other tenants.
        let carol = SecretKey::generate();
        let trust = store(
            &[&alice, &bob, &carol, &host],
            &format!(
                "threshold = 2\n[log_keys]\n\"{}\" = [\"example/node\"]\n[tenants.billing]\nkeys = [\"{}\"]\nthreshold = 1\n",
                host.key_id(),
                bob.key_id()
            ),
        );
        assert_eq!(
            verify_envelope(&signed(b"x", &[&alice, &alice]), &trust, &policy("hello")),
            Err(DsseError::ThresholdNotMet { required: 2, valid: 1 })
        );
        assert_eq!(
            verify_envelope(&signed(b"x", &[&host]), &trust, &policy("hello")),
            Err(DsseError::LogKeyCannotApprove { key_id: host.key_id() })
        );
        assert_eq!(
            verify_envelope(&signed(b"x", &[&alice]), &trust, &policy("billing")),
            Err(DsseError::KeyNotAllowedForTenant { key_id: alice.key_id(), tenant: "billing".into() })
        );
        assert_eq!(verify_envelope(&signed(b"x", &[&bob]), &trust, &policy("billing")).unwrap(), [bob.key_id()]);
        assert_eq!(
            verify_envelope(&Envelope::new(IN_TOTO, b"x".to_vec()), &trust, &policy("hello")),
            Err(DsseError::Unsigned)
        );
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        let sig = STANDARD.encode([0u8; 64]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "malformed_envelope"),
            (b"not json".to_vec(), "malformed_envelope"),
            (b"[1,2,3]".to_vec(), "malformed_envelope"),
            (b"{\"payload\":5}".to_vec(), "malformed_envelope"),
            (b"{\"payload\":\"***\"}".to_vec(), "malformed_envelope"),
            (b"{\"payload\":\"a+b_\"}".to_vec(), "malformed_envelope"),
            (vec![0xff, 0xfe, 0x00], "malformed_envelope"),
            (b"{\"signatures\":[{\"sig\":\"!!\"}]}".to_vec(), "malformed_signature"),
            (b"{\"signatures\":[{\"sig\":\"AAAA\"}]}".to_vec(), "malformed_signature"),
            (b"{\"signatures\":[{}]}".to_vec(), "malformed_signature"),
            (format!("{{\"signatures\":[{{\"sig\":\"{sig}\",\"keyid\":7}}]}}").into_bytes(), "malformed_envelope"),
            (
                format!(
                    "{{\"signatures\":[{}]}}",
                    vec![format!("{{\"sig\":\"{sig}\"}}"); MAX_SIGNATURES + 1].join(",")
                )
                .into_bytes(),
                "too_many_signatures",
            ),
            (vec![b' '; MAX_ENVELOPE_BYTES + 1], "envelope_too_large"),
            (
                format!("{{\"payloadType\":\"{}\"}}", "t".repeat(MAX_PAYLOAD_TYPE_BYTES + 1)).into_bytes(),
                "malformed_envelope",
            ),
            ("[".repeat(100_000).into_bytes(), "malformed_envelope"),
        ];
        for (bytes, code) in cases {
            let error = Envelope::from_json_bytes(&bytes).unwrap_err();
            assert_eq!(
                error.reason_code(),
                code,
                "{:?}: {error}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            );
        }
        // Every field may be omitted when empty; such an envelope is merely unsigned.
        let empty = Envelope::from_json_bytes(b"{}").unwrap();
        assert_eq!(empty, Envelope::new("", Vec::new()));
    }

    #[test]
    fn an_absurd_key_id_is_cut_in_messages() {
        let alice = SecretKey::generate();
        let mallory = SecretKey::generate();
        let trust = store(&[&alice], "threshold = 1\n");
        let mut envelope = signed(b"x", &[&mallory]);
        envelope.signatures[0].keyid = "k".repeat(10_000);
        let error = verify_envelope(&envelope, &trust, &policy("hello")).unwrap_err();
        assert_eq!(error, DsseError::UntrustedKey { key_id: "k".repeat(MAX_ECHOED_KEYID_CHARS) });
    }
}
