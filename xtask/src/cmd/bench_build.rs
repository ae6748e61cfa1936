//! `cargo xtask bench-build`: what reproducibility costs. It times a plain,
//! clean `cargo build --release --target wasm32-wasip1` of one module against
//! `verify-reproducible` of the same module (copy, pinned rebuild, compare),
//! alternating the two, and prints the medians and their ratio (goal: at most
//! 1.2×).

use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use xtask::build::{BuildOptions, WASM_TARGET, build_modules, discover_workspace_modules, select_modules};
use xtask::progress::Progress;
use xtask::toolchain::Toolchain;
use xtask::verify::{DIST_DIR, VerifyOptions, load_bundle, rebuild_and_compare, verify_module};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module to build.
    #[arg(long, default_value = "sieve")]
    pub module: String,

    /// How many times each side is run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,

    /// Directory of signed bundles. When the module has one there, the full
    /// `verify-reproducible` path is timed; otherwise the module is built once
    /// first (untimed) and the rebuild-and-compare step is timed against it.
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,

    /// The modules workspace [default: modules/ of this checkout].
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = xtask::workspace_root();
    let progress = Progress::for_stderr();
    let modules_dir = args.modules_dir.unwrap_or_else(|| root.join("modules"));
    let (toolchain, modules) = discover_workspace_modules(&modules_dir, progress)?;
    let [module] = select_modules(modules, std::slice::from_ref(&args.module))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("one module expected"))?;
    let options = VerifyOptions {
        modules_dir: modules_dir.clone(),
        dist_dir: args.dist.unwrap_or_else(|| root.join(DIST_DIR)),
        scratch_parent: None,
        cargo_home: None,
        trust: None,
        audit_log: None,
        statement: xtask::provenance::StatementRequirement::Optional,
        progress: Progress::Silent,
    };

    // Without a signed bundle, a build of our own stands in for it.
    let has_bundle = load_bundle(&options.dist_dir, &module.name, module.metadata.version, None).is_ok();
    let stand_in = if has_bundle {
        None
    } else {
        progress.step(format_args!(
            "no bundle for {} in {}; building a stand-in",
            module.name,
            options.dist_dir.display()
        ));
        let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
        let mut build_options = BuildOptions::for_workspace(&root, Progress::Silent);
        build_options.modules_dir = modules_dir.clone();
        build_options.target_dir = scratch.path().join("target");
        build_options.out_dir = scratch.path().join("out");
        let built = build_modules(&build_options, std::slice::from_ref(&module.name))?;
        let built = built.into_iter().next().context("the stand-in build produced nothing")?;
        let bytes = std::fs::read(&built.wasm_path).context("cannot read the stand-in module")?;
        Some((bytes, built.provenance))
    };

    let mut plain = Vec::new();
    let mut verify = Vec::new();
    for run in 1..=args.runs {
        progress.step(format_args!("run {run}/{}: plain cargo build", args.runs));
        plain.push(time_plain_build(&toolchain, &modules_dir, &module.name)?);
        progress.step(format_args!("run {run}/{}: verify-reproducible", args.runs));
        let started = Instant::now();
        let identical = match &stand_in {
            None => verify_module(&options, &toolchain, &module)?.report.identical,
            Some((bytes, provenance)) => {
                rebuild_and_compare(&options, &toolchain, &module, bytes, provenance)?.identical
            }
        };
        verify.push(started.elapsed());
        ensure!(
            identical,
            "the rebuild of {} was not identical; run `cargo xtask verify-reproducible {}`",
            module.name,
            module.name
        );
    }

    let plain_median = median(&mut plain.clone());
    let verify_median = median(&mut verify.clone());
    let what = if has_bundle { "verify-reproducible" } else { "rebuild + compare (no bundle)" };
    let text = format!(
        "module {}, {} runs each, clean target directories\n  {:<34} {}\n  {:<34} {}\n  ratio of medians {:.2}x (goal <= 1.20x)\n",
        module.name,
        args.runs,
        "plain cargo build --release",
        format_runs(&plain),
        what,
        format_runs(&verify),
        ratio(verify_median, plain_median)
    );
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A clean `cargo build --release --target wasm32-wasip1 -p MODULE` in its own
/// target directory, with nothing of ours added: the baseline.
fn time_plain_build(toolchain: &Toolchain, modules_dir: &std::path::Path, module: &str) -> Result<Duration> {
    let target = tempfile::tempdir().context("cannot create a target directory")?;
    let started = Instant::now();
    let output = toolchain
        .command("cargo")
        .current_dir(modules_dir)
        .args(["build", "--release", "--target", WASM_TARGET, "--package", module])
        .env("CARGO_TARGET_DIR", target.path())
        .stdin(Stdio::null())
        .output()
        .context("cannot start cargo")?;
    let elapsed = started.elapsed();
    ensure!(
        output.status.success(),
        "plain cargo build failed: {}",
        String::from_utf8_lossy(&output.stderr).trim_end()
    );
    Ok(elapsed)
}

/// Median of the samples (the mean of the middle two for an even count).
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    match samples.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2,
    }
}

fn ratio(numerator: Duration, denominator: Duration) -> f64 {
    if denominator.is_zero() { f64::INFINITY } else { numerator.as_secs_f64() / denominator.as_secs_f64() }
}

fn format_runs(samples: &[Duration]) -> String {
    let runs: Vec<String> = samples.iter().map(|d| format!("{:.2}s", d.as_secs_f64())).collect();
    format!("median {:.2}s  (runs: {})", median(&mut samples.to_vec()).as_secs_f64(), runs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Duration::from_secs;
        assert_eq!(median(&mut [s(3), s(1), s(2)]), s(2));
        assert_eq!(median(&mut [s(4), s(1), s(2), s(3)]), Duration::from_millis(2500));
        assert_eq!(median(&mut []), Duration::ZERO);
    }

    #[test]
    fn ratio_is_verify_over_plain() {
        assert!((ratio(Duration::from_secs(6), Duration::from_secs(5)) - 1.2).abs() < 1e-9);
        assert!(ratio(Duration::from_secs(1), Duration::ZERO).is_infinite());
    }
}
