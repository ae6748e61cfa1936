//! `cargo xtask build [MODULE…]`: reproducible wasm32-wasip1 builds of the
//! tenant modules, copied to `target/nightcore/<module>.wasm`.

use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::build::{BuildOptions, BuiltModule, build_modules};
use xtask::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Modules to build, by package name. Every crate of the modules workspace
    /// with [package.metadata.nightcore] is built when none is named.
    pub modules: Vec<String>,

    /// Build timestamp in seconds since the Unix epoch. Without it the time of
    /// the last git commit is used, or 0 outside a git checkout.
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,

    /// The modules workspace to build [default: modules/ of this checkout].
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,

    /// CARGO_TARGET_DIR of the build [default: target/nightcore-build].
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,

    /// Where <module>.wasm files are written [default: target/nightcore].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Print the built modules as JSON: {"modules": [{name, version,
    /// version_label, wasm_path, sha256, size, provenance, capabilities}]}.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` output.
#[derive(Serialize)]
struct JsonOutput<'a> {
    modules: &'a [BuiltModule],
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = xtask::workspace_root();
    let mut options = BuildOptions::for_workspace(&root, Progress::for_stderr());
    options.source_date_epoch = args.source_date_epoch;
    if let Some(dir) = args.modules_dir {
        options.modules_dir = dir;
    }
    if let Some(dir) = args.target_dir {
        options.target_dir = dir;
    }
    if let Some(dir) = args.out_dir {
        options.out_dir = dir;
    }
    let built = build_modules(&options, &args.modules)?;
    let mut text = String::new();
    if args.json {
        text = serde_json::to_string_pretty(&JsonOutput { modules: &built })? + "\n";
    } else {
        for module in &built {
            text += &format!(
                "{} {} ({})  {}  {} bytes  sha256 {}\n",
                module.name,
                module.version,
                module.version_label,
                module.wasm_path.display(),
                module.size,
                module.sha256
            );
        }
    }
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
