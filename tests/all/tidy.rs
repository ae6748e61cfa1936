//! House rules checked over the whole tree (rust-analyzer's `tidy` idea): every
//! Rust file says why it exists in a `//!` comment, `unsafe` code appears in
//! one reviewed place only, and product code writes files only through
//! `signer::fsutil`.

use std::path::{Path, PathBuf};

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
fn unsafe_code_lives_only_in_the_compile_cache() {
    // Every form of unsafe code, not just blocks: the compiler's
    // `unsafe_code` lint is what stops them, and this checks that it is on.
    const FORMS: [&str; 6] =
        ["unsafe {", "unsafe fn", "unsafe impl", "unsafe trait", "unsafe extern", "unsafe(no_mangle"];
    let is_cache = |f: &PathBuf| f.ends_with("runtime/src/cache.rs");
    let mut offenders = Vec::new();
    for file in workspace_files().into_iter().filter(|f| !f.ends_with("tests/all/tidy.rs")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            let unsafe_code = FORMS.iter().any(|form| code.contains(form));
            let lint_lifted = code.contains("allow(unsafe_code)") || code.contains("expect(unsafe_code)");
            if (unsafe_code || lint_lifted) && !is_cache(&file) {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "unsafe code outside runtime/src/cache.rs: {offenders:#?}");
    // And the lint is on in every crate root, so the compiler refuses what a
    // text search would miss.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let roots = ["signer", "runtime", "guardian", "xtask"]
        .iter()
        .flat_map(|krate| [(*krate, "src/lib.rs"), (*krate, "src/main.rs")])
        .chain([("audit", "src/lib.rs"), ("tests", "lib.rs")]);
    for (krate, file) in roots {
        let text = std::fs::read_to_string(root.join(krate).join(file)).unwrap();
        let expected = if (krate, file) == ("runtime", "src/lib.rs") {
            // Denied, so that the one reviewed `allow` in cache.rs can lift it.
            "#![deny(unsafe_code)]"
        } else {
            "#![forbid(unsafe_code)]"
        };
        assert!(text.contains(expected), "{krate}/{file} lacks {expected}");
    }
}

/// The part of a source file before its unit tests (by house style, one
/// `#[cfg(test)] mod tests` block at the end).
fn before_unit_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests").map_or(text, |at| &text[..at])
}

#[test]
fn product_code_writes_files_only_through_fsutil() {
    // Each of these writes through whatever the name points at, or rewrites a
    // file in place: the ways a write stops being atomic, or replaces a FIFO,
    // device or link. `signer::fsutil` is the one place that may use them,
    // behind its checks; creating a new name (`create_new`) or appending to a
    // log is not among them.
    const IN_PLACE: [&str; 4] = ["fs::write(", "File::create(", "fs::copy(", ".truncate(true)"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for product in ["signer", "audit", "runtime", "guardian"] {
        rust_files(&root.join(product).join("src"), &mut files);
    }
    assert!(files.len() > 40, "the walk found only {} files", files.len());
    let allowed = [root.join("signer/src/fsutil.rs")];
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !allowed.contains(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in before_unit_tests(&text).lines().enumerate() {
            if !line.trim_start().starts_with("//") && IN_PLACE.iter().any(|call| line.contains(call)) {
                offenders.push(format!("{}:{}: {}", file.strip_prefix(root).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "writes that bypass signer::fsutil: {offenders:#?}");
}
