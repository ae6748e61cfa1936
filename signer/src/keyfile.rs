//! Key files on disk: creating them with the right permissions, refusing secret
//! keys that others can read, and unlocking them with a password that comes
//! from the environment or the terminal, never from a command-line argument
//! (which other users can see in the process table).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::fsutil::{FileMode, ReadCappedError, atomic_write, read_capped};
use crate::minisign::{
    FormatError, KeyProtection, LockedSecretKey, MAX_KEY_FILE_BYTES, PublicKey, SecretKey, UnlockError,
};

/// The environment variable a password is read from before prompting.
pub const PASSWORD_ENV: &str = "NIGHTCORE_KEY_PASSWORD";

/// Where the password for an encrypted key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// `NIGHTCORE_KEY_PASSWORD` if set, otherwise a prompt on the terminal.
    EnvironmentOrPrompt,
    /// `NIGHTCORE_KEY_PASSWORD` only; for daemons and pipelines with no terminal.
    EnvironmentOnly,
}

/// Why a key file could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error(transparent)]
    Read(#[from] ReadCappedError),
    #[error("secret key {path} is readable by group or others (mode {mode:o}); run `chmod 600` on it")]
    PermissionsTooOpen { path: PathBuf, mode: u32 },
    #[error("secret key {path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error("secret key {path}: {source}")]
    Unlock { path: PathBuf, source: UnlockError },
    #[error("public key {path}: {source}")]
    PublicFormat { path: PathBuf, source: FormatError },
    #[error("{path} exists already; refusing to overwrite a key")]
    AlreadyExists { path: PathBuf },
    #[error("no password: set {PASSWORD_ENV} or run on a terminal")]
    NoPassword,
    #[error("passwords do not match")]
    PasswordMismatch,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Loads and unlocks a secret key file, refusing it if group or others can read it.
pub fn load_secret_key(path: &Path, source: PasswordSource) -> Result<SecretKey, KeyFileError> {
    let locked = read_locked(path)?;
    let password = if locked.is_encrypted() { Some(read_password(source, PasswordPrompt::Once)?) } else { None };
    locked
        .unlock(password.as_deref().map(String::as_str))
        .map_err(|source| KeyFileError::Unlock { path: path.to_path_buf(), source })
}

fn read_locked(path: &Path) -> Result<LockedSecretKey, KeyFileError> {
    let bytes = Zeroizing::new(read_capped(path, MAX_KEY_FILE_BYTES as u64)?);
    let mode = fs::metadata(path)
        .map_err(|source| KeyFileError::Io { path: path.to_path_buf(), source })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyFileError::PermissionsTooOpen { path: path.to_path_buf(), mode: mode & 0o777 });
    }
    LockedSecretKey::from_file_bytes(&bytes).map_err(|source| KeyFileError::Format { path: path.to_path_buf(), source })
}

/// Loads a public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyFileError> {
    let bytes = read_capped(path, MAX_KEY_FILE_BYTES as u64)?;
    PublicKey::from_file_bytes(&bytes).map_err(|source| KeyFileError::PublicFormat { path: path.to_path_buf(), source })
}

/// Whether to ask twice (for a new key) or once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPrompt {
    Once,
    Confirm,
}

/// Reads a password from `NIGHTCORE_KEY_PASSWORD` or the terminal.
pub fn read_password(source: PasswordSource, prompt: PasswordPrompt) -> Result<Zeroizing<String>, KeyFileError> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(password));
    }
    if source == PasswordSource::EnvironmentOnly {
        return Err(KeyFileError::NoPassword);
    }
    let first = Zeroizing::new(rpassword::prompt_password("Password: ").map_err(|_| KeyFileError::NoPassword)?);
    if prompt == PasswordPrompt::Confirm {
        let second =
            Zeroizing::new(rpassword::prompt_password("Password (again): ").map_err(|_| KeyFileError::NoPassword)?);
        if first != second {
            return Err(KeyFileError::PasswordMismatch);
        }
    }
    Ok(first)
}

/// How a newly generated secret key is protected on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKeyProtection {
    /// Encrypted with a password from `NIGHTCORE_KEY_PASSWORD` or asked twice on the terminal.
    PasswordFromEnvironmentOrPrompt,
    /// Stored in the clear: only for throwaway keys in tests and demos.
    DangerUnencrypted,
}

/// Generates a key pair and writes it as `dir/NAME.key` and `dir/NAME.pub`:
/// what `signer keygen` and `cargo xtask keygen` both do.
pub fn generate_key_pair(
    dir: &Path,
    name: &str,
    protection: NewKeyProtection,
) -> Result<(SecretKey, KeyPairPaths), KeyFileError> {
    let key = SecretKey::generate();
    let paths = match protection {
        NewKeyProtection::DangerUnencrypted => write_key_pair(dir, name, &key, KeyProtection::DangerUnencrypted)?,
        NewKeyProtection::PasswordFromEnvironmentOrPrompt => {
            let password = read_password(PasswordSource::EnvironmentOrPrompt, PasswordPrompt::Confirm)?;
            write_key_pair(dir, name, &key, KeyProtection::Password(&password))?
        }
    };
    Ok((key, paths))
}

/// Paths of a key pair written by [`write_key_pair`].
#[derive(Debug, Clone)]
pub struct KeyPairPaths {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// Writes `dir/NAME.key` (mode 0600, never overwriting) and `dir/NAME.pub`.
pub fn write_key_pair(
    dir: &Path,
    name: &str,
    key: &SecretKey,
    protection: KeyProtection<'_>,
) -> Result<KeyPairPaths, KeyFileError> {
    fs::create_dir_all(dir).map_err(|source| KeyFileError::Io { path: dir.to_path_buf(), source })?;
    let secret = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for path in [&secret, &public] {
        if path.exists() {
            return Err(KeyFileError::AlreadyExists { path: path.clone() });
        }
    }
    let text = key.to_file_text(protection).map_err(|source| KeyFileError::Unlock { path: secret.clone(), source })?;
    write_new_secret_file(&secret, text.as_bytes())?;
    atomic_write(&public, key.public_key().to_file_text().as_bytes(), FileMode::Public)
        .map_err(|source| KeyFileError::Io { path: public.clone(), source })?;
    Ok(KeyPairPaths { secret, public })
}

/// Creates a secret file with mode 0600 from the first byte (never a moment
/// with looser permissions), refusing to replace an existing one. The file is
/// written and flushed under a temp name and linked into place, so a reader
/// racing the writer never finds it empty or half written.
fn write_new_secret_file(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    crate::fsutil::atomic_write_new(path, bytes, FileMode::OwnerOnly).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            KeyFileError::AlreadyExists { path: path.to_path_buf() }
        } else {
            KeyFileError::Io { path: path.to_path_buf(), source: e }
        }
    })
}

/// Loads the host's own key (used to sign audit checkpoints and receipts),
/// creating it on first use. A daemon cannot answer a password prompt, so the
/// host key is stored unencrypted with mode 0600, like an SSH host key; it never
/// approves modules (the trust store lists it under `log_keys`).
pub fn load_or_create_host_key(path: &Path) -> Result<SecretKey, KeyFileError> {
    match read_locked(path) {
        Ok(locked) => {
            let key =
                locked.unlock(None).map_err(|source| KeyFileError::Unlock { path: path.to_path_buf(), source })?;
            // A creator that died between the key and its .pub left the
            // .pub missing; readers of the state (runtime exec, status)
            // need it. An existing one is never replaced.
            let public = path.with_extension("pub");
            if fs::symlink_metadata(&public).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
                match crate::fsutil::atomic_write_new(
                    &public,
                    key.public_key().to_file_text().as_bytes(),
                    FileMode::Public,
                ) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(KeyFileError::Io { path: public, source }),
                }
            }
            Ok(key)
        }
        Err(KeyFileError::Read(ReadCappedError::Io { source, .. })) if source.kind() == io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| KeyFileError::Io { path: dir.to_path_buf(), source })?;
            }
            let text = key
                .to_file_text(KeyProtection::DangerUnencrypted)
                .map_err(|source| KeyFileError::Unlock { path: path.to_path_buf(), source })?;
            match write_new_secret_file(path, text.as_bytes()) {
                Ok(()) => {
                    let public = path.with_extension("pub");
                    atomic_write(&public, key.public_key().to_file_text().as_bytes(), FileMode::Public)
                        .map_err(|source| KeyFileError::Io { path: public, source })?;
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(KeyFileError::AlreadyExists { .. }) => load_or_create_host_key(path),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every binary on a node may be first to need the host key: processes
    /// starting together must all get the one key, and none may read it half
    /// written (seen: `xtask sign` runs in parallel failing with exit 2).
    #[test]
    fn writers_racing_to_create_the_host_key_all_load_the_same_complete_key() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let path = dir.path().join(format!("{round}/host.key"));
            let start = std::sync::Barrier::new(8);
            let keys: Vec<_> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            load_or_create_host_key(&path).map(|key| key.public_key())
                        })
                    })
                    .collect();
                racers.into_iter().map(|racer| racer.join().unwrap()).collect()
            });
            let first = keys[0].as_ref().unwrap_or_else(|e| panic!("round {round}: {e}"));
            for key in &keys {
                let key = key.as_ref().unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(key, first, "round {round}: two host keys");
            }
            assert_eq!(load_public_key(&path.with_extension("pub")).unwrap(), *first);
        }
    }

    #[test]
    fn a_missing_host_pub_is_written_again_and_an_existing_one_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        let key = load_or_create_host_key(&path).unwrap();
        let public = dir.path().join("host.pub");
        fs::remove_file(&public).unwrap();
        load_or_create_host_key(&path).unwrap();
        assert_eq!(load_public_key(&public).unwrap(), key.public_key());
        let other = SecretKey::generate().public_key();
        fs::write(&public, other.to_file_text()).unwrap();
        load_or_create_host_key(&path).unwrap();
        assert_eq!(load_public_key(&public).unwrap(), other, "an existing .pub is left for the operator");
    }

    #[test]
    fn secret_keys_are_0600_and_open_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let paths = write_key_pair(dir.path(), "k", &key, KeyProtection::DangerUnencrypted).unwrap();
        assert_eq!(fs::metadata(&paths.secret).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = load_secret_key(&paths.secret, PasswordSource::EnvironmentOnly).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(load_public_key(&paths.public).unwrap(), key.public_key());
        fs::set_permissions(&paths.secret, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_secret_key(&paths.secret, PasswordSource::EnvironmentOnly),
            Err(KeyFileError::PermissionsTooOpen { mode: 0o640, .. })
        ));
        assert!(matches!(
            write_key_pair(dir.path(), "k", &key, KeyProtection::DangerUnencrypted),
            Err(KeyFileError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn host_key_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/host.key");
        let first = load_or_create_host_key(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "created owner-only");
        let second = load_or_create_host_key(&path).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(load_public_key(&path.with_extension("pub")).unwrap(), first.public_key());
        // A host key others can read is refused, not used (and not replaced).
        for mode in [0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_or_create_host_key(&path).map(|k| k.public_key()).unwrap_err();
            assert!(matches!(err, KeyFileError::PermissionsTooOpen { mode: m, .. } if m == mode), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_or_create_host_key(&path).unwrap().public_key(), first.public_key(), "the same key is kept");
    }
}
