//! What "the source of a module" is. It defines the `source_tree_sha256`
//! provenance field and makes the copy a rebuild starts from.
//!
//! The source tree of a module is, as relative paths with `/` separators:
//! - the workspace files [`WORKSPACE_FILES`] that exist at the root of the
//!   modules workspace (`Cargo.toml` and `Cargo.lock` must);
//! - every regular file under the module's crate directory and under the
//!   directory of each workspace crate it depends on by path, except inside
//!   directories named [`SKIPPED_DIR_NAME`] (build output).
//!
//! `source_tree_sha256` is the lower-case hex SHA-256 of
//! [`SOURCE_TREE_TAG`], then for each file in byte order of its path:
//! the path's length as a big-endian `u64`, the path's UTF-8 bytes, the
//! content's length as a big-endian `u64`, the content. The lengths make the
//! encoding unambiguous; the tag keeps it from being confused with any other
//! hash. Symbolic links and non-UTF-8 names are refused rather than guessed at.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Domain-separation tag that starts every source tree hash.
pub const SOURCE_TREE_TAG: &[u8] = b"nightcore.source-tree.v1\n";

/// Files at the root of the modules workspace that belong to every module's
/// source tree when present: they choose members, versions, toolchain and
/// build configuration for all of them.
pub const WORKSPACE_FILES: &[&str] = &["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", ".cargo/config.toml"];

/// Directories with this name hold build output, never source.
pub const SKIPPED_DIR_NAME: &str = "target";

/// The sorted relative paths of the source tree of a module whose crate (and
/// local dependencies) live in `crate_dirs`, relative to `workspace`.
pub fn source_files(workspace: &Path, crate_dirs: &[PathBuf]) -> Result<Vec<String>> {
    let mut files = BTreeSet::new();
    for name in WORKSPACE_FILES {
        let path = workspace.join(name);
        if path.is_file() {
            files.insert((*name).to_owned());
        } else if matches!(*name, "Cargo.toml" | "Cargo.lock") {
            bail!("{} is missing: the modules workspace needs a manifest and a committed lockfile", path.display());
        }
    }
    for dir in crate_dirs {
        let relative = relative_path_text(dir)?;
        collect_files(&workspace.join(dir), &relative, &mut files)?;
    }
    Ok(files.into_iter().collect())
}

/// `source_tree_sha256` as defined in the module documentation.
pub fn source_tree_sha256(workspace: &Path, crate_dirs: &[PathBuf]) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(SOURCE_TREE_TAG);
    for relative in source_files(workspace, crate_dirs)? {
        let path = workspace.join(&relative);
        let content = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        hasher.update((relative.len() as u64).to_be_bytes());
        hasher.update(relative.as_bytes());
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(&content);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copies a modules workspace to `to` (which must not exist yet or be empty),
/// leaving out build output, so a rebuild starts from the source alone.
pub fn copy_workspace(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    copy_dir(from, to)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in read_dir_sorted(from)? {
        let (name, kind) = entry;
        let source = from.join(&name);
        let destination = to.join(&name);
        if kind.is_symlink() {
            bail!(
                "{} is a symbolic link; module sources must be plain files so that a copy is faithful",
                source.display()
            );
        } else if kind.is_dir() {
            if name == SKIPPED_DIR_NAME {
                continue;
            }
            std::fs::create_dir(&destination).with_context(|| format!("cannot create {}", destination.display()))?;
            copy_dir(&source, &destination)?;
        } else {
            std::fs::copy(&source, &destination)
                .with_context(|| format!("cannot copy {} to {}", source.display(), destination.display()))?;
        }
    }
    Ok(())
}

fn collect_files(dir: &Path, relative: &str, files: &mut BTreeSet<String>) -> Result<()> {
    for (name, kind) in read_dir_sorted(dir)? {
        let Some(name_text) = name.to_str() else {
            bail!("{} has a file name that is not UTF-8", dir.display());
        };
        let child = if relative.is_empty() { name_text.to_owned() } else { format!("{relative}/{name_text}") };
        if kind.is_symlink() {
            bail!("{} is a symbolic link; module sources must be plain files", dir.join(&name).display());
        } else if kind.is_dir() {
            if name_text != SKIPPED_DIR_NAME {
                collect_files(&dir.join(&name), &child, files)?;
            }
        } else {
            files.insert(child);
        }
    }
    Ok(())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(std::ffi::OsString, std::fs::FileType)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let kind = entry.file_type().with_context(|| format!("cannot stat {}", entry.path().display()))?;
        entries.push((entry.file_name(), kind));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// A relative directory as `/`-separated text; `""` for the workspace root.
fn relative_path_text(dir: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for component in dir.components() {
        match component {
            std::path::Component::Normal(part) => match part.to_str() {
                Some(text) => parts.push(text),
                None => bail!("{} is not a UTF-8 path", dir.display()),
            },
            std::path::Component::CurDir => {}
            _ => bail!("{} must be a relative path inside the modules workspace", dir.display()),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, content: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn sample_workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Cargo.toml", "[workspace]\nmembers = [\"a\", \"b\"]\n");
        write(dir.path(), "Cargo.lock", "version = 4\n");
        write(dir.path(), "a/Cargo.toml", "[package]\nname = \"a\"\n");
        write(dir.path(), "a/src/main.rs", "fn main() {}\n");
        write(dir.path(), "a/target/junk", "build output\n");
        write(dir.path(), "b/src/main.rs", "fn main() {}\n");
        dir
    }

    #[test]
    fn lists_workspace_files_and_the_crate_but_not_build_output_or_other_crates() {
        let dir = sample_workspace();
        let files = source_files(dir.path(), &[PathBuf::from("a")]).unwrap();
        assert_eq!(files, ["Cargo.lock", "Cargo.toml", "a/Cargo.toml", "a/src/main.rs"]);
    }

    #[test]
    fn hash_depends_on_content_and_names_but_not_on_location_or_other_crates() {
        let first = sample_workspace();
        let second = sample_workspace();
        let a = [PathBuf::from("a")];
        let original = source_tree_sha256(first.path(), &a).unwrap();
        assert_eq!(original, source_tree_sha256(second.path(), &a).unwrap(), "the location must not matter");

        write(second.path(), "b/src/main.rs", "fn main() { /* another crate */ }\n");
        write(second.path(), "a/target/junk", "other build output\n");
        assert_eq!(
            original,
            source_tree_sha256(second.path(), &a).unwrap(),
            "other crates and build output must not matter"
        );

        write(second.path(), "a/src/main.rs", "fn main() { }\n");
        assert_ne!(original, source_tree_sha256(second.path(), &a).unwrap(), "content must matter");

        let renamed = sample_workspace();
        std::fs::rename(renamed.path().join("a/src/main.rs"), renamed.path().join("a/src/lib.rs")).unwrap();
        assert_ne!(original, source_tree_sha256(renamed.path(), &a).unwrap(), "names must matter");

        let locked = sample_workspace();
        write(locked.path(), "Cargo.lock", "version = 3\n");
        assert_ne!(original, source_tree_sha256(locked.path(), &a).unwrap(), "the lockfile must matter");
    }

    /// Pins the encoding: the hash of a one-file tree computed by hand.
    #[test]
    fn hash_encoding_is_the_documented_one() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Cargo.toml", "t");
        write(dir.path(), "Cargo.lock", "l");
        let mut expected = Sha256::new();
        expected.update(SOURCE_TREE_TAG);
        for (path, content) in [("Cargo.lock", "l"), ("Cargo.toml", "t")] {
            expected.update((path.len() as u64).to_be_bytes());
            expected.update(path);
            expected.update((content.len() as u64).to_be_bytes());
            expected.update(content);
        }
        assert_eq!(source_tree_sha256(dir.path(), &[]).unwrap(), hex::encode(expected.finalize()));
    }

    #[test]
    fn refuses_a_workspace_without_a_lockfile() {
        let dir = sample_workspace();
        std::fs::remove_file(dir.path().join("Cargo.lock")).unwrap();
        let error = source_files(dir.path(), &[]).unwrap_err();
        assert!(format!("{error:#}").contains("Cargo.lock is missing"), "{error:#}");
    }

    #[test]
    fn copy_leaves_out_build_output_and_keeps_the_hash() {
        let from = sample_workspace();
        let to = tempfile::tempdir().unwrap();
        let copy = to.path().join("deeper/modules");
        copy_workspace(from.path(), &copy).unwrap();
        assert!(!copy.join("a/target").exists());
        assert!(copy.join("b/src/main.rs").is_file());
        let a = [PathBuf::from("a")];
        assert_eq!(source_tree_sha256(from.path(), &a).unwrap(), source_tree_sha256(&copy, &a).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symbolic_links() {
        let dir = sample_workspace();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("a/src/link")).unwrap();
        let error = source_files(dir.path(), &[PathBuf::from("a")]).unwrap_err();
        assert!(format!("{error:#}").contains("symbolic link"), "{error:#}");
    }
}
