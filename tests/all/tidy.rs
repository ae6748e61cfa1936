//! House rules checked over the whole tree (rust-analyzer's `tidy` idea): every
//! Rust file says why it exists in a `//!` comment, and `unsafe` code appears in
//! one reviewed place only.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "fuzz" | "snapshots") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 50, "the walk found only {} files", files.len());
    files
}

#[test]
fn every_rust_file_starts_with_a_module_comment() {
    let missing: Vec<String> = workspace_files()
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! comment saying why they exist: {missing:#?}");
}

#[test]
fn unsafe_blocks_live_only_in_the_compile_cache() {
    let offenders: Vec<String> = workspace_files()
        .into_iter()
        .filter(|f| !f.ends_with("runtime/src/cache.rs") && !f.ends_with("tests/all/tidy.rs"))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("unsafe {"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "unsafe blocks outside runtime/src/cache.rs: {offenders:#?}");
}
