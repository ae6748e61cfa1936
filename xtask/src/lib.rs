//! The library half of `cargo xtask`: reproducible wasm32-wasip1 builds of the
//! tenant modules in `modules/`, their build provenance statements, and the
//! comparison of a rebuild against signed bytes. The binary (`main.rs` and
//! `cmd/`) only parses arguments, prints and picks exit codes, so that tests
//! and later subcommands (`sign`, `demo`) call the same functions the command
//! line does.
#![forbid(unsafe_code)]
// Libraries never print: what reaches stdout and stderr is the binaries' choice
// (ARCHITECTURE.md, "Libraries do the work").
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod build;
pub mod events;
pub mod progress;
pub mod provenance;
pub mod rebuild;
pub mod sign;
pub mod source_tree;
pub mod toolchain;
pub mod verify;

use std::path::PathBuf;

/// The root of the Night Core workspace this xtask was compiled from. xtask is
/// always run from its own checkout (`cargo xtask`), so the compile-time path
/// is the right one and needs no discovery.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
