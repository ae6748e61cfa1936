//! The trust store: which keys may approve modules, how many must agree, and
//! which keys are revoked.
//!
//! ```text
//! TRUST/
//!   alice.pub, bob.pub, …   minisign public keys
//!   trust.toml              threshold, revocations, per-tenant key sets, log keys
//! ```
//!
//! ```toml
//! threshold = 2                  # distinct trusted keys that must sign a bundle
//! revoked = ["1A2B3C4D5E6F7081"] # signatures by these keys make a bundle fail
//! [log_keys]                     # host keys: trusted for audit checkpoints and
//! "0011223344556677" = ["nightcore.example/node-1"]  # receipts of these origins
//!                                # only, never for module approval
//! [tenants.billing]
//! keys = ["…", "…"]              # only these keys count for this tenant
//! threshold = 2                  # optional; defaults to the global threshold
//! ```
//!
//! The threshold comes from here, never from the bundle being checked.
//!
//! Scopes, each a rule of its own:
//! - A key listed in any tenant's `keys` approves **only** the tenants whose
//!   sets list it. The keys that may approve any tenant without a section of
//!   its own are the ones listed under no tenant. (Otherwise one team's keys
//!   could sign another team's tenant, and by publishing a high version lock
//!   its real releases out as downgrades.)
//! - A log key signs checkpoints and receipts only for the origins it is bound
//!   to: node A's key cannot vouch for a rewritten copy of node B's log. The
//!   old list form `log_keys = ["…"]`, which bound no origin, is refused with
//!   a message saying how to write the table.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fsutil::{ReadCappedError, read_capped};
use crate::minisign::{FormatError, KeyId, MAX_KEY_FILE_BYTES, PublicKey};

pub const TRUST_FILE: &str = "trust.toml";
const MAX_TRUST_FILE_BYTES: u64 = 256 * 1024;
const MAX_TRUSTED_KEYS: usize = 1024;

/// Which keys count for one tenant, and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTrust {
    pub keys: BTreeSet<KeyId>,
    pub threshold: usize,
}

/// A loaded, validated trust store.
#[derive(Debug, Clone)]
pub struct TrustStore {
    keys: BTreeMap<KeyId, PublicKey>,
    threshold: usize,
    revoked: BTreeSet<KeyId>,
    /// Each log key with the checkpoint origins it may sign.
    log_keys: BTreeMap<KeyId, BTreeSet<String>>,
    tenants: BTreeMap<String, TenantTrust>,
    /// Keys listed in some tenant's set: they approve only those tenants.
    scoped_keys: BTreeSet<KeyId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    threshold: usize,
    #[serde(default)]
    revoked: Vec<String>,
    #[serde(default)]
    log_keys: LogKeysFile,
    #[serde(default)]
    tenants: BTreeMap<String, TenantFile>,
}

/// `log_keys`: the table form binds each key to origins; the list form of
/// earlier releases is recognised only to refuse it with advice.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LogKeysFile {
    Bound(BTreeMap<String, Vec<String>>),
    Unbound(Vec<String>),
}

impl Default for LogKeysFile {
    fn default() -> Self {
        LogKeysFile::Bound(BTreeMap::new())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    keys: Vec<String>,
    threshold: Option<usize>,
}

/// Why a trust store could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("cannot read trust store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Read(#[from] ReadCappedError),
    #[error("{path} is missing: a trust store needs a trust.toml with at least a threshold")]
    MissingTrustFile { path: PathBuf },
    #[error("{path} is not valid: {reason}")]
    InvalidTrustFile { path: PathBuf, reason: String },
    #[error("public key {path} is malformed: {source}")]
    MalformedKey { path: PathBuf, source: FormatError },
    #[error("key id {key_id} appears in both {first} and {second}")]
    DuplicateKey { key_id: KeyId, first: PathBuf, second: PathBuf },
    #[error(
        "{first} and {second} hold the same Ed25519 key under two key ids: it would count twice towards a threshold \
         and escape revocation of one id; keep one of them"
    )]
    SameKeyTwice { first: PathBuf, second: PathBuf },
    #[error("trust store has more than {MAX_TRUSTED_KEYS} keys")]
    TooManyKeys,
}

impl TrustStore {
    /// Loads `dir/*.pub` and `dir/trust.toml`.
    pub fn load(dir: &Path) -> Result<Self, TrustError> {
        let io_err = |source| TrustError::Io { path: dir.to_path_buf(), source };
        let mut key_paths = BTreeMap::<KeyId, PathBuf>::new();
        // Minisign does not sign a signature's key id, so one key listed under
        // two ids could be counted twice by relabelling a copy of a signature.
        let mut key_bytes = BTreeMap::<[u8; 32], PathBuf>::new();
        let mut keys = BTreeMap::new();
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io_err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "pub")) {
            if keys.len() == MAX_TRUSTED_KEYS {
                return Err(TrustError::TooManyKeys);
            }
            let bytes = read_capped(&path, MAX_KEY_FILE_BYTES as u64)?;
            let key = PublicKey::from_file_bytes(&bytes)
                .map_err(|source| TrustError::MalformedKey { path: path.clone(), source })?;
            if let Some(first) = key_paths.insert(key.key_id(), path.clone()) {
                return Err(TrustError::DuplicateKey { key_id: key.key_id(), first, second: path });
            }
            if let Some(first) = key_bytes.insert(key.verifying_key().to_bytes(), path.clone()) {
                return Err(TrustError::SameKeyTwice { first, second: path });
            }
            keys.insert(key.key_id(), key);
        }
        let trust_path = dir.join(TRUST_FILE);
        let text = match read_capped(&trust_path, MAX_TRUST_FILE_BYTES) {
            Err(ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(TrustError::MissingTrustFile { path: trust_path });
            }
            other => other?,
        };
        let invalid = |reason: String| TrustError::InvalidTrustFile { path: trust_path.clone(), reason };
        let text = String::from_utf8(text).map_err(|_| invalid("not valid UTF-8".into()))?;
        Self::from_keys_and_toml(keys.into_values().collect(), &text).map_err(invalid)
    }

    /// Builds a store from already-parsed keys and the text of a `trust.toml`;
    /// the error says what is wrong with the text.
    pub fn from_keys_and_toml(keys: Vec<PublicKey>, trust_toml: &str) -> Result<Self, String> {
        let file: TrustFile = toml::from_str(trust_toml).map_err(|e| e.to_string())?;
        Self::from_parts(keys.into_iter().map(|k| (k.key_id(), k)).collect(), file)
    }

    fn from_parts(keys: BTreeMap<KeyId, PublicKey>, file: TrustFile) -> Result<Self, String> {
        let mut seen = BTreeMap::new();
        for (id, key) in &keys {
            if let Some(other) = seen.insert(key.verifying_key().to_bytes(), id) {
                return Err(format!("keys {other} and {id} are the same Ed25519 key; keep one of them"));
            }
        }
        let parse_ids = |ids: &[String], field: &str| -> Result<BTreeSet<KeyId>, String> {
            ids.iter().map(|s| s.parse::<KeyId>().map_err(|e| format!("{field}: {e}"))).collect()
        };
        let revoked = parse_ids(&file.revoked, "revoked")?;
        let log_keys = match file.log_keys {
            LogKeysFile::Unbound(ids) => {
                let example = ids.first().map_or("KEYID", String::as_str);
                return Err(format!(
                    "log_keys must bind each host key to the checkpoint origins it may sign, as a table: \
                     [log_keys] \"{example}\" = [\"nightcore/<hostname>\"] (the list form let any node's key \
                     vouch for any node's log)"
                ));
            }
            LogKeysFile::Bound(table) => {
                let mut log_keys = BTreeMap::new();
                for (id, origins) in table {
                    let key_id = id.parse::<KeyId>().map_err(|e| format!("log_keys: {e}"))?;
                    if !keys.contains_key(&key_id) {
                        return Err(format!("log key {key_id} has no .pub file in the trust store"));
                    }
                    if origins.is_empty() {
                        return Err(format!("log_keys.{key_id}: name at least one origin it may sign"));
                    }
                    if let Some(bad) = origins.iter().find(|o| o.is_empty() || o.chars().any(char::is_whitespace)) {
                        return Err(format!("log_keys.{key_id}: origin {bad:?} is empty or has white space"));
                    }
                    log_keys.insert(key_id, origins.into_iter().collect::<BTreeSet<_>>());
                }
                log_keys
            }
        };
        let mut tenants = BTreeMap::new();
        for (name, tenant) in file.tenants {
            crate::manifest::validate_name(&name).map_err(|e| format!("tenants.{name}: {e}"))?;
            let tenant_keys = parse_ids(&tenant.keys, &format!("tenants.{name}.keys"))?;
            for id in &tenant_keys {
                if !keys.contains_key(id) {
                    return Err(format!("tenants.{name}.keys: key {id} has no .pub file in the trust store"));
                }
                if log_keys.contains_key(id) {
                    return Err(format!("tenants.{name}.keys: key {id} is a log key and cannot approve modules"));
                }
            }
            let threshold = tenant.threshold.unwrap_or(file.threshold);
            let usable = tenant_keys.iter().filter(|id| !revoked.contains(id)).count();
            check_threshold(threshold, usable, &format!("tenants.{name}.threshold"))?;
            tenants.insert(name, TenantTrust { keys: tenant_keys, threshold });
        }
        let scoped_keys: BTreeSet<KeyId> = tenants.values().flat_map(|t| t.keys.iter().copied()).collect();
        // The global threshold is for tenants without a section, which only
        // unscoped keys may approve. A store whose keys are all scoped approves
        // no such tenant, which is a valid choice; one with too few unscoped
        // keys for its threshold is a mistake.
        let usable = keys
            .keys()
            .filter(|id| !revoked.contains(id) && !log_keys.contains_key(id) && !scoped_keys.contains(id))
            .count();
        if usable > 0 || scoped_keys.is_empty() {
            check_threshold(file.threshold, usable, "threshold")?;
        } else if file.threshold == 0 {
            return Err("threshold must be at least 1".into());
        }
        Ok(Self { keys, threshold: file.threshold, revoked, log_keys, tenants, scoped_keys })
    }

    /// The key with this id, if it is in the store (revoked or not).
    pub fn key(&self, key_id: KeyId) -> Option<&PublicKey> {
        self.keys.get(&key_id)
    }

    pub fn is_revoked(&self, key_id: KeyId) -> bool {
        self.revoked.contains(&key_id)
    }

    /// The log key `key_id`, if it may sign checkpoints and receipts of
    /// `origin`: listed under `log_keys` with that origin, and not revoked.
    pub fn log_key_for(&self, key_id: KeyId, origin: &str) -> Result<&PublicKey, LogKeyRefusal> {
        let Some(origins) = self.log_keys.get(&key_id) else {
            return Err(LogKeyRefusal::NotALogKey { key_id });
        };
        if self.revoked.contains(&key_id) {
            return Err(LogKeyRefusal::Revoked { key_id });
        }
        if !origins.contains(origin) {
            return Err(LogKeyRefusal::OriginNotBound {
                key_id,
                origin: origin.to_string(),
                bound: origins.iter().cloned().collect(),
            });
        }
        self.keys.get(&key_id).ok_or(LogKeyRefusal::NotALogKey { key_id })
    }

    /// The unrevoked log keys bound to `origin`.
    pub fn log_keys_for(&self, origin: &str) -> impl Iterator<Item = &PublicKey> {
        self.log_keys
            .iter()
            .filter(move |(id, origins)| !self.revoked.contains(id) && origins.contains(origin))
            .filter_map(|(id, _)| self.keys.get(id))
    }

    /// Every unrevoked log key, whatever origins it is bound to.
    pub fn log_keys_any(&self) -> impl Iterator<Item = &PublicKey> {
        self.log_keys.keys().filter(|id| !self.revoked.contains(id)).filter_map(|id| self.keys.get(id))
    }

    /// Whether `key_id` is a host key, trusted for logs and receipts only.
    pub fn is_log_key(&self, key_id: KeyId) -> bool {
        self.log_keys.contains_key(&key_id)
    }

    /// Whether `key_id` may approve modules of `tenant`: a key in some
    /// tenant's set approves exactly the tenants that list it; a key in no set
    /// approves tenants without a set of their own.
    pub fn may_approve(&self, key_id: KeyId, tenant: &str) -> bool {
        if !self.keys.contains_key(&key_id) || self.log_keys.contains_key(&key_id) {
            return false;
        }
        match self.tenants.get(tenant) {
            Some(t) => t.keys.contains(&key_id),
            None => !self.scoped_keys.contains(&key_id),
        }
    }

    /// How many distinct approving keys `tenant` needs.
    pub fn threshold_for(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(self.threshold, |t| t.threshold)
    }

    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }

    /// The one approval rule of every signed format (bundles, DSSE
    /// envelopes, wasmsig modules): of the distinct keys in `valid` (trusted,
    /// unrevoked, with a signature that verified), those that may approve
    /// `tenant`'s modules are counted against its threshold. When none count,
    /// the most telling reason is named: a log key, a key of other tenants,
    /// or the first signature by a key the store does not hold
    /// (`first_untrusted`, in whatever form the format names keys).
    pub fn approvals<U>(
        &self,
        valid: impl IntoIterator<Item = KeyId>,
        tenant: &str,
        first_untrusted: Option<U>,
    ) -> Result<BTreeSet<KeyId>, Shortfall<U>> {
        let mut not_allowed = None;
        let counted: BTreeSet<KeyId> = valid
            .into_iter()
            .filter(|id| {
                let ok = self.may_approve(*id, tenant);
                if !ok {
                    not_allowed.get_or_insert(*id);
                }
                ok
            })
            .collect();
        let required = self.threshold_for(tenant);
        if counted.len() >= required {
            return Ok(counted);
        }
        if counted.is_empty() {
            if let Some(key_id) = not_allowed {
                if self.is_log_key(key_id) {
                    return Err(Shortfall::LogKeyCannotApprove { key_id });
                }
                return Err(Shortfall::KeyNotAllowedForTenant { key_id });
            }
            if let Some(untrusted) = first_untrusted {
                return Err(Shortfall::Untrusted(untrusted));
            }
        }
        Err(Shortfall::ThresholdNotMet { required, valid: counted.len() })
    }
}

/// Why a key may not vouch for a log of some origin; see
/// [`TrustStore::log_key_for`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogKeyRefusal {
    #[error("key {key_id} is not one of the trust store's log_keys")]
    NotALogKey { key_id: KeyId },
    #[error("log key {key_id} is revoked")]
    Revoked { key_id: KeyId },
    #[error("log key {key_id} may sign only {bound:?}, not origin {origin:?}")]
    OriginNotBound { key_id: KeyId, origin: String, bound: Vec<String> },
}

impl LogKeyRefusal {
    /// A stable snake_case code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            LogKeyRefusal::NotALogKey { .. } => "untrusted_log_key",
            LogKeyRefusal::Revoked { .. } => "revoked_log_key",
            LogKeyRefusal::OriginNotBound { .. } => "log_key_origin_mismatch",
        }
    }
}

/// Why the keys that signed something do not approve it; see
/// [`TrustStore::approvals`]. Each format maps it to its own error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall<U> {
    LogKeyCannotApprove {
        key_id: KeyId,
    },
    KeyNotAllowedForTenant {
        key_id: KeyId,
    },
    /// No trusted key signed; this signature named a key the store does not hold.
    Untrusted(U),
    ThresholdNotMet {
        required: usize,
        valid: usize,
    },
}

fn check_threshold(threshold: usize, usable: usize, field: &str) -> Result<(), String> {
    if threshold == 0 {
        return Err(format!("{field} must be at least 1"));
    }
    if threshold > usable {
        return Err(format!("{field} {threshold} can never be met: only {usable} usable (unrevoked, non-log) keys"));
    }
    Ok(())
}

/// Writes a trust store directory: one `.pub` file per key and a `trust.toml`.
/// For demos and tests; operators usually keep the store in version control.
pub fn write_trust_store(dir: &Path, keys: &[(&str, &PublicKey)], trust_toml: &str) -> io::Result<()> {
    use crate::fsutil::{FileMode, atomic_write};
    fs::create_dir_all(dir)?;
    for (name, key) in keys {
        atomic_write(&dir.join(format!("{name}.pub")), key.to_file_text().as_bytes(), FileMode::Public)?;
    }
    atomic_write(&dir.join(TRUST_FILE), trust_toml.as_bytes(), FileMode::Public)
}
