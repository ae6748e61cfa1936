//! The guardian's own record of what it verified, kept in its state
//! directory and trusted only after it checks out.
//!
//! ```text
//! STATE/
//!   guardian.lock      held (flock) by the one guardian that may write here
//!   state.json         tenants, versions, rollback floors
//!   recent.json        the last events, for `guardian status`
//!   store/<digest>/    every verified bundle version (see `store`)
//!   quarantine/…       refused files, kept as evidence, never executed
//!   audit-mirror/…     the last verified copy of the audit log (see `audit_mirror`)
//! ```
//!
//! Both files are canonical JSON
//! `{"body":{…},"schema":…,"sha256":…,"signature":…}`, where `sha256` is
//! SHA-256 over [`crate::digest::STATE_DIGEST_DOMAIN`] and the canonical bytes
//! of `body`, and `signature` is a minisign signature by the host key over
//! [`STATE_SIGNATURE_DOMAIN`], the schema, a zero byte and those bytes. They
//! are written atomically (temp file, fsync, rename, fsync of the directory).
//! The hash catches torn writes and bit rot; the signature catches forgery:
//! someone who can write `state.json` but not read the host key cannot lower
//! a rollback floor (the guardian verifies with its own key; `runtime exec`
//! and `guardian status` with the log key the trust store binds to the node's
//! origin, see [`StateVerifier`]). An unsigned state (an earlier release's,
//! or one whose signature was stripped) is refused like a forged one.
//! Beyond that, the start-up check in [`crate::Guardian::open`] re-hashes and
//! re-verifies every store entry the state names, so the store can only ever
//! restore signed bytes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signer::fsutil::{FileMode, ReadCappedError, atomic_write, read_capped};

use signer::minisign::{LegacySignatures, PublicKey, SecretKey, Signature};

use crate::digest::{FileRecord, STATE_DIGEST_DOMAIN};

/// Prefix of every signed state file: a state signature can never be
/// mistaken for a module approval, a receipt or a checkpoint.
pub const STATE_SIGNATURE_DOMAIN: &[u8] = b"nightcore-guardian-state-v1\0";

pub const STATE_SCHEMA: &str = "nightcore.guardian.state.v1";
pub const STATE_FILE: &str = "state.json";
pub const RECENT_SCHEMA: &str = "nightcore.guardian.recent.v1";
pub const RECENT_FILE: &str = "recent.json";
pub const LOCK_FILE: &str = "guardian.lock";
pub const STORE_DIR: &str = "store";
pub const QUARANTINE_DIR: &str = "quarantine";
pub const AUDIT_MIRROR_DIR: &str = "audit-mirror";
/// How many recent events `state.json` keeps for `guardian status`.
pub const RECENT_EVENTS: usize = 32;
/// The largest `state.json` or `recent.json` read.
pub const MAX_STATE_BYTES: u64 = 256 * 1024 * 1024;

/// The last verified version of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRecord {
    /// Manifest version of the deployed verified bundle.
    pub version: u64,
    pub version_label: String,
    /// The highest version ever accepted for this tenant: a bundle must be
    /// above it to be accepted as an upgrade.
    pub floor: u64,
    /// Store entry holding the verified files ([`crate::digest::bundle_digest`]).
    pub digest: String,
    pub manifest_sha256: String,
    pub module_sha256: String,
    /// Every file of the verified bundle, by relative path.
    pub files: BTreeMap<String, FileRecord>,
    /// Key ids whose signatures counted.
    pub signers: Vec<String>,
    /// When this version was accepted (RFC 3339 UTC).
    pub accepted_at: String,
    /// The versions accepted before this one, oldest first, at most
    /// [`MAX_PREVIOUS`]: what `guardian gc` keeps the newest of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousVersion>,
}

/// How many earlier versions a tenant record remembers; older store entries
/// are no longer named by the state and `guardian gc` removes them.
pub const MAX_PREVIOUS: usize = 32;

/// A version a tenant had before its current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousVersion {
    pub version: u64,
    /// Its store entry.
    pub digest: String,
    pub accepted_at: String,
}

impl TenantRecord {
    /// The history of a record that replaces `self`: `self` appended to its
    /// own history (unless the bytes are the same), at most [`MAX_PREVIOUS`].
    pub fn history_for_successor(&self, successor_digest: &str) -> Vec<PreviousVersion> {
        let mut previous = self.previous.clone();
        if self.digest != successor_digest {
            previous.push(PreviousVersion {
                version: self.version,
                digest: self.digest.clone(),
                accepted_at: self.accepted_at.clone(),
            });
        }
        let excess = previous.len().saturating_sub(MAX_PREVIOUS);
        previous.drain(..excess);
        previous
    }
}

/// A tenant taken out of service by `guardian retire`: its record is gone
/// (so nothing restores it and `guardian gc` frees its store entries), but
/// its floor stays, so none of the versions it ever had can be run or
/// deployed again. Only a signed bundle above `floor` brings the name back,
/// as a new tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredTenant {
    /// The version it had when retired.
    pub version: u64,
    /// Its rollback floor when retired: every version up to and including
    /// it is refused.
    pub floor: u64,
    /// When it was retired (RFC 3339 UTC).
    pub retired_at: String,
}

/// A line of history for `guardian status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentEvent {
    pub time: String,
    pub kind: String,
    pub tenant: Option<String>,
    pub summary: String,
}

/// Everything the guardian knows between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub tenants: BTreeMap<String, TenantRecord>,
    pub retired: BTreeMap<String, RetiredTenant>,
    /// Oldest first, at most [`RECENT_EVENTS`].
    pub recent_events: Vec<RecentEvent>,
}

impl State {
    pub fn push_event(&mut self, event: RecentEvent) {
        self.recent_events.push(event);
        let excess = self.recent_events.len().saturating_sub(RECENT_EVENTS);
        self.recent_events.drain(..excess);
    }
}

/// The body of `state.json`: what `runtime exec` holds runs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenants {
    pub tenants: BTreeMap<String, TenantRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retired: BTreeMap<String, RetiredTenant>,
}

/// The body of `recent.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecentBody {
    events: Vec<RecentEvent>,
}

/// A state file on disk: `{"body":…,"schema":…,"sha256":…,"signature":…}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile<T> {
    body: T,
    schema: String,
    sha256: String,
    signature: Option<String>,
}

/// The keys a state file may be signed by: the host's own, as the guardian
/// knows it, or the log keys the trust store binds to the node's origin.
#[derive(Debug, Clone)]
pub struct StateVerifier {
    keys: Vec<PublicKey>,
    /// Where the keys came from, for error messages.
    source: String,
}

impl StateVerifier {
    pub fn new(keys: Vec<PublicKey>, source: impl Into<String>) -> Self {
        Self { keys, source: source.into() }
    }

    /// The keys a reader of a node's state trusts: the log keys `trust`
    /// binds to the node's `origin`; only when it binds none (or there is no
    /// trust store), the host's public key beside `host_key` (`host.pub`),
    /// which whoever can write the state directory could replace too, so
    /// that fallback is logged.
    /// A key that cannot be loaded is no error here: it only matters (and
    /// is named) when there is a state to verify.
    pub fn for_node(trust: Option<&signer::trust::TrustStore>, origin: &str, host_key: &Path) -> Self {
        if let Some(trust) = trust {
            let keys: Vec<PublicKey> = trust.log_keys_for(origin).cloned().collect();
            if !keys.is_empty() {
                return Self::new(keys, format!("a log key the trust store binds to origin {origin}"));
            }
        }
        let public = host_key.with_extension("pub");
        match signer::keyfile::load_public_key(&public) {
            Ok(key) => {
                tracing::debug!(
                    origin,
                    host_pub = %public.display(),
                    "the trust store binds no log key to this origin: the guardian state is checked against the host's own .pub"
                );
                Self::new(vec![key], format!("the host key in {}", public.display()))
            }
            Err(e) => {
                Self::new(Vec::new(), format!("the host key in {} (which cannot be read: {e})", public.display()))
            }
        }
    }

    fn verify(&self, path: &Path, message: &[u8], signature: Option<&str>) -> Result<(), StateError> {
        let Some(text) = signature else {
            return Err(StateError::Unsigned { path: path.to_path_buf() });
        };
        let bad = |reason: String| StateError::BadSignature { path: path.to_path_buf(), reason };
        let signature = Signature::from_file_bytes(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let Some(key) = self.keys.iter().find(|k| k.key_id() == signature.key_id) else {
            return Err(StateError::UntrustedSigner {
                path: path.to_path_buf(),
                key_id: signature.key_id.to_string(),
                trusted: self.source.clone(),
            });
        };
        key.verify(message, &signature, LegacySignatures::Refuse).map_err(|e| bad(e.to_string()))
    }
}

fn signed_message(schema: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(STATE_SIGNATURE_DOMAIN.len() + schema.len() + 1 + body.len());
    message.extend_from_slice(STATE_SIGNATURE_DOMAIN);
    message.extend_from_slice(schema.as_bytes());
    message.push(0);
    message.extend_from_slice(body);
    message
}

/// Why the state could not be used. Every variant but `Io` and `Locked`
/// means the state is not trustworthy and the guardian refuses to run on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("another guardian holds {path}; only one may manage a state directory")]
    Locked { path: PathBuf },
    #[error("state file {path} is corrupt: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("state file {path} has schema {found:?}, not {STATE_SCHEMA:?}")]
    Schema { path: PathBuf, found: String },
    #[error("state file {path} is corrupt: its hash is {stated} but its contents hash to {computed}")]
    HashMismatch { path: PathBuf, stated: String, computed: String },
    #[error("state is inconsistent for tenant {tenant}: {reason}")]
    Inconsistent { tenant: String, reason: String },
    #[error(
        "state file {path} is not signed (written by an earlier release, or its signature was removed); \
         it is not trusted: move it aside and let the guardian admit the deployed bundles afresh"
    )]
    Unsigned { path: PathBuf },
    #[error("state file {path} has a bad signature: {reason}")]
    BadSignature { path: PathBuf, reason: String },
    #[error("state file {path} is signed by key {key_id}, which is not {trusted}")]
    UntrustedSigner { path: PathBuf, key_id: String, trusted: String },
}

impl StateError {
    /// A stable code for JSON output.
    pub fn reason_code(&self) -> &'static str {
        match self {
            StateError::Io { .. } => "io",
            StateError::Locked { .. } => "locked",
            StateError::Malformed { .. } => "state_malformed",
            StateError::Schema { .. } => "state_schema",
            StateError::HashMismatch { .. } => "state_hash_mismatch",
            StateError::Inconsistent { .. } => "state_inconsistent",
            StateError::Unsigned { .. } => "state_unsigned",
            StateError::BadSignature { .. } => "state_signature_invalid",
            StateError::UntrustedSigner { .. } => "state_signer_untrusted",
        }
    }
}

fn body_hash(body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(STATE_DIGEST_DOMAIN);
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// The canonical bytes of a sealed file, signed by `key`. The body is
/// serialised once and the envelope written around it; its keys are in
/// canonical order.
fn seal<T: Serialize>(schema: &str, body: &T, key: &SecretKey) -> Result<Vec<u8>, String> {
    let body = signer::canonical::to_canonical_bytes(body).map_err(|e| e.to_string())?;
    let sha256 = body_hash(&body);
    let signature = key.sign(&signed_message(schema, &body), schema).map_err(|e| e.to_string())?;
    let signature = serde_json::to_string(&signature.to_file_text()).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(body.len() + 400);
    out.extend_from_slice(b"{\"body\":");
    out.extend_from_slice(&body);
    out.extend_from_slice(
        format!(",\"schema\":\"{schema}\",\"sha256\":\"{sha256}\",\"signature\":{signature}}}").as_bytes(),
    );
    Ok(out)
}

/// Reads and checks a sealed file; `None` if it does not exist.
fn unseal<T: Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    schema: &str,
    verifier: &StateVerifier,
) -> Result<Option<T>, StateError> {
    let bytes = match read_capped(path, MAX_STATE_BYTES) {
        Ok(bytes) => bytes,
        Err(ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Malformed { path: path.to_path_buf(), reason: e.to_string() }),
    };
    let malformed = |reason: String| StateError::Malformed { path: path.to_path_buf(), reason };
    let file: SealedFile<T> = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    if file.schema != schema {
        return Err(StateError::Schema { path: path.to_path_buf(), found: file.schema });
    }
    let body = signer::canonical::to_canonical_bytes(&file.body).map_err(|e| malformed(e.to_string()))?;
    let computed = body_hash(&body);
    if computed != file.sha256 {
        return Err(StateError::HashMismatch { path: path.to_path_buf(), stated: file.sha256, computed });
    }
    verifier.verify(path, &signed_message(schema, &body), file.signature.as_deref())?;
    Ok(Some(file.body))
}

/// Reads and checks `ROOT/state.json` and `ROOT/recent.json` without taking
/// the lock (for `guardian status` and `runtime exec`), accepting only
/// signatures by `verifier`'s keys; missing files are an empty state.
pub fn read_state(root: &Path, verifier: &StateVerifier) -> Result<State, StateError> {
    let Tenants { tenants, retired } = read_tenants(root, verifier)?;
    let recent_events =
        unseal::<RecentBody>(&root.join(RECENT_FILE), RECENT_SCHEMA, verifier)?.map(|b| b.events).unwrap_or_default();
    Ok(State { tenants, retired, recent_events })
}

/// The tenant records of `ROOT/state.json` alone, checked as by
/// [`read_state`] (what `runtime exec` needs for rollback floors, without
/// reading and verifying `recent.json` on every run).
pub fn read_tenants(root: &Path, verifier: &StateVerifier) -> Result<Tenants, StateError> {
    let body = unseal::<Tenants>(&root.join(STATE_FILE), STATE_SCHEMA, verifier)?.unwrap_or_default();
    for (name, tenant) in &body.tenants {
        if body.retired.contains_key(name) {
            return Err(StateError::Inconsistent {
                tenant: name.clone(),
                reason: "it is both in service and retired".into(),
            });
        }
        if tenant.floor < tenant.version {
            return Err(StateError::Inconsistent {
                tenant: name.clone(),
                reason: format!("floor {} is below the accepted version {}", tenant.floor, tenant.version),
            });
        }
        if crate::digest::bundle_digest(&tenant.files) != tenant.digest {
            return Err(StateError::Inconsistent {
                tenant: name.clone(),
                reason: "its file list does not hash to its digest".into(),
            });
        }
    }
    Ok(body)
}

/// The state directory, locked for this process, with the host key that
/// signs what is written there.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    key: SecretKey,
    verifier: StateVerifier,
    // Held for the lifetime of this value: the flock is released on drop.
    _lock: File,
}

impl StateDir {
    /// Creates the directory if needed and takes its lock, failing at once
    /// (not waiting) if another guardian holds it.
    pub fn open_locked(root: &Path, key: SecretKey) -> Result<Self, StateError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(root).map_err(io_err(root))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StateError::Locked { path: lock_path }),
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let verifier = StateVerifier::new(vec![key.public_key()], format!("this host's key {}", key.key_id()));
        Ok(Self { root: root.to_path_buf(), key, verifier, _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn load(&self) -> Result<State, StateError> {
        read_state(&self.root, &self.verifier)
    }

    /// Writes the tenant records of `state` to `state.json`, atomically,
    /// with their hash. Its size grows with the number of tenants, so it is
    /// written only when a record changed.
    pub fn save_tenants(&self, state: &State) -> Result<(), StateError> {
        let body = Tenants { tenants: state.tenants.clone(), retired: state.retired.clone() };
        self.write_sealed(STATE_FILE, STATE_SCHEMA, &body)
    }

    /// Writes the recent events of `state` to `recent.json` (small, written
    /// after every batch of events).
    pub fn save_recent(&self, state: &State) -> Result<(), StateError> {
        let body = RecentBody { events: state.recent_events.clone() };
        self.write_sealed(RECENT_FILE, RECENT_SCHEMA, &body)
    }

    fn write_sealed<T: Serialize>(&self, name: &str, schema: &str, body: &T) -> Result<(), StateError> {
        let path = self.root.join(name);
        let bytes =
            seal(schema, body, &self.key).map_err(|reason| StateError::Malformed { path: path.clone(), reason })?;
        atomic_write(&path, &bytes, FileMode::Public).map_err(|source| StateError::Io { path, source })
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join(STORE_DIR)
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join(QUARANTINE_DIR)
    }

    pub fn audit_mirror_dir(&self) -> PathBuf {
        self.root.join(AUDIT_MIRROR_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_seed(&[9; 32], signer::minisign::KeyId([9; 8]))
    }

    fn sample() -> State {
        let mut files = BTreeMap::new();
        files.insert("module.wasm".to_string(), FileRecord::of(b"m"));
        let record = TenantRecord {
            version: 2,
            version_label: "1.0".into(),
            floor: 2,
            digest: crate::digest::bundle_digest(&files),
            manifest_sha256: "a".repeat(64),
            module_sha256: "b".repeat(64),
            files,
            signers: vec!["K".into()],
            accepted_at: "2026-01-01T00:00:00Z".into(),
            previous: Vec::new(),
        };
        let mut state = State::default();
        state.tenants.insert("alpha".into(), record);
        state
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open_locked(dir.path(), key()).unwrap();
        assert_eq!(sd.load().unwrap(), State::default());
        let mut state = sample();
        state.push_event(RecentEvent { time: "t".into(), kind: "k".into(), tenant: None, summary: String::new() });
        state.retired.insert("beta".into(), RetiredTenant { version: 4, floor: 5, retired_at: "t".into() });
        sd.save_tenants(&state).unwrap();
        sd.save_recent(&state).unwrap();
        assert_eq!(sd.load().unwrap(), state);
    }

    #[test]
    fn a_tenant_both_in_service_and_retired_is_inconsistent() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open_locked(dir.path(), key()).unwrap();
        let mut state = sample();
        state.retired.insert("alpha".into(), RetiredTenant { version: 2, floor: 2, retired_at: "t".into() });
        sd.save_tenants(&state).unwrap();
        let err = sd.load().unwrap_err();
        assert_eq!(err.reason_code(), "state_inconsistent");
        assert!(err.to_string().contains("alpha: it is both in service and retired"), "{err}");
    }

    #[test]
    fn a_second_guardian_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateDir::open_locked(dir.path(), key()).unwrap();
        assert!(matches!(StateDir::open_locked(dir.path(), key()), Err(StateError::Locked { .. })));
    }

    #[test]
    fn an_edited_state_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open_locked(dir.path(), key()).unwrap();
        sd.save_tenants(&sample()).unwrap();
        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path).unwrap().replace("\"floor\":2", "\"floor\":1");
        fs::write(&path, text).unwrap();
        let err = sd.load().unwrap_err();
        assert_eq!(err.reason_code(), "state_hash_mismatch", "{err}");
        fs::write(&path, b"{\"schema\":").unwrap();
        assert_eq!(sd.load().unwrap_err().reason_code(), "state_malformed");
    }

    #[test]
    fn a_forged_state_with_a_recomputed_hash_is_refused_by_its_signature() {
        // The attack the hash alone allowed: lower a floor and fix the hash.
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open_locked(dir.path(), key()).unwrap();
        sd.save_tenants(&sample()).unwrap();
        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut body = file["body"].clone();
        body["tenants"]["alpha"]["floor"] = 1.into();
        body["tenants"]["alpha"]["version"] = 1.into();
        let bytes = signer::canonical::to_canonical_bytes(&body).unwrap();
        let forged = serde_json::json!({"body": body, "schema": STATE_SCHEMA, "sha256": body_hash(&bytes),
            "signature": file["signature"]});
        fs::write(&path, forged.to_string()).unwrap();
        assert_eq!(sd.load().unwrap_err().reason_code(), "state_signature_invalid");
        // Without the signature it is unsigned, and refused as such.
        let stripped = serde_json::json!({"body": body, "schema": STATE_SCHEMA, "sha256": body_hash(&bytes)});
        fs::write(&path, stripped.to_string()).unwrap();
        assert_eq!(sd.load().unwrap_err().reason_code(), "state_unsigned");
        // Re-signed by another key, it names the signer it does not trust.
        let other = SecretKey::from_seed(&[3; 32], signer::minisign::KeyId([3; 8]));
        fs::write(
            &path,
            seal(STATE_SCHEMA, &Tenants { tenants: sample().tenants, retired: BTreeMap::new() }, &other).unwrap(),
        )
        .unwrap();
        let err = sd.load().unwrap_err();
        assert_eq!(err.reason_code(), "state_signer_untrusted", "{err}");
    }

    #[test]
    fn a_floor_below_the_version_is_inconsistent() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open_locked(dir.path(), key()).unwrap();
        let mut state = sample();
        state.tenants.get_mut("alpha").unwrap().floor = 1;
        sd.save_tenants(&state).unwrap();
        assert_eq!(sd.load().unwrap_err().reason_code(), "state_inconsistent");
    }

    #[test]
    fn recent_events_are_capped() {
        let mut state = State::default();
        for i in 0..RECENT_EVENTS + 5 {
            state.push_event(RecentEvent {
                time: String::new(),
                kind: format!("k{i}"),
                tenant: None,
                summary: String::new(),
            });
        }
        assert_eq!(state.recent_events.len(), RECENT_EVENTS);
        assert_eq!(state.recent_events[0].kind, "k5");
    }
}
