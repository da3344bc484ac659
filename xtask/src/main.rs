//! Developer tasks for the CLVP workspace.
//!
//! * `cargo xtask parity-check [--only NAME] [--full] [--regen-fixtures] [--seed S] [--seeds N]` — proves the
//!   Rust side equals the Python reference (transformers 5.23.0 on PyTorch 2.15.0, CPU, float32); `--seeds N`
//!   sweeps N fresh seeds and prints the worst error per component. A full run adds the Python binding's column:
//!   crates/clvp-py's pytest suite on the same fresh references (`--no-python` skips it).
//! * `cargo xtask pyenv` — creates (or verifies) the pinned Python environments: the reference under `target/pyenv`
//!   and Tortoise's (transformers 4.31.0, for the `tortoise` component) under `target/pyenv-tortoise`.
//! * `cargo xtask bench [--only P1,…,P7,P5-py,P3-py] [--backends]` — our release build against PyTorch side by side
//!   (docs/performance.md); the `-py` rows time the Python module and transformers in one process.
//! * `cargo xtask tortoise-assets` — regenerates the embedded Tortoise vocabulary and `mel_norms`.

mod bench;
mod binding;
mod components;
mod history_plot;
mod latest_deps;
mod public_api;
mod pyenv;
mod sweep;
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::components::{COMPONENTS, Component, PyEnv, SdistDirs};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Developer tasks: parity against the Python reference, fixtures, benches"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the reference scripts and the Rust implementation on the same inputs and print one table.
    ParityCheck(ParityArgs),
    /// Create or verify the pinned Python environments (target/pyenv, target/pyenv-tortoise).
    Pyenv,
    /// Time our release build against PyTorch/transformers on the same inputs; writes docs/performance.md.
    Bench {
        /// Some workloads only: one name or a comma list (e.g. `P4`, `P1,P3`).
        #[arg(long)]
        only: Option<String>,
        /// Also time our CPU backends against each other (flex vs ndarray) on the selected CLVP workloads.
        #[arg(long)]
        backends: bool,
        /// Only draw docs/bench-history.csv to docs/bench-history.png (speedup per row over the runs; every
        /// bench run redraws it too).
        #[arg(long, conflicts_with_all = ["only", "backends"])]
        plot: bool,
    },
    /// (internal) One side of a bench workload, run in its own process; prints one JSON line.
    #[command(hide = true)]
    BenchWorker {
        /// Workload (p4).
        workload: String,
        /// Input file.
        file: PathBuf,
        /// Counted runs.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Warm-up runs.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
    /// Regenerate the embedded Tortoise assets (clvp-text vocab/merges, clvp-audio mel_norms) from the
    /// tortoise-tts 3.0.0 sdist.
    TortoiseAssets,
    /// Run `cargo test --workspace` on a fresh resolve of the caret requirements (a copy under
    /// target/latest-deps; the lockfile is untouched).
    LatestDeps,
    /// List the `clvp` facade's public API (rustdoc JSON) into crates/clvp/public-api.txt, or with `--check`
    /// fail when it differs from the committed file.
    PublicApi {
        /// Compare with the committed file instead of writing it.
        #[arg(long)]
        check: bool,
    },
}

#[derive(clap::Args)]
struct ParityArgs {
    /// Run one component only (see the table's first column).
    #[arg(long)]
    only: Option<String>,
    /// Also run the full-size random-init checkpoints (generated on demand under target/, never committed).
    #[arg(long)]
    full: bool,
    /// Rewrite the committed fixtures under fixtures/ (seed 0) from the same scripts, then check them.
    #[arg(long)]
    regen_fixtures: bool,
    /// Seed of the reference inputs for a parity run (the committed fixtures use seed 0; the default differs
    /// so that the check runs on inputs the tests were not tuned on).
    #[arg(long, default_value_t = 20261122)]
    seed: u64,
    /// Sweep N seeds (`--seed` and N−1 derived from it) through every selected component and print one summary
    /// row per component with the worst error over all seeds.
    #[arg(long, value_name = "N", conflicts_with = "regen_fixtures")]
    seeds: Option<usize>,
    /// Skip the Python-binding column (the binding's pytest suite on this run's references; it runs when every
    /// component it reads is selected).
    #[arg(long)]
    no_python: bool,
}

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// docs/bench-history.csv → docs/bench-history.png, the goals as dashed lines.
fn draw_history() -> Result<()> {
    let docs = repo_root().join("docs");
    let goals: Vec<(&str, f64)> = ["P2", "P3", "P5", "P6"]
        .iter()
        .filter_map(|r| bench::goal(r).map(|g| (*r, g)))
        .collect();
    let png = docs.join("bench-history.png");
    history_plot::plot(&docs.join("bench-history.csv"), &png, &goals)?;
    eprintln!("drew {}", png.display());
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Pyenv => {
            let py = pyenv::ensure()?;
            println!("python reference environment ready: {}", py.display());
            let py = pyenv::ensure_tortoise()?;
            println!("tortoise reference environment ready: {}", py.display());
            Ok(())
        }
        Cmd::ParityCheck(args) => parity_check(&args),
        Cmd::Bench { plot: true, .. } => draw_history(),
        Cmd::Bench { only, backends, .. } => {
            bench::run(only.as_deref(), backends)?;
            draw_history()
        }
        Cmd::BenchWorker {
            workload,
            file,
            runs,
            warmup,
        } => {
            let sample = match workload.as_str() {
                "p4" => bench::worker_p4(&file, runs, warmup)?,
                other => bail!("unknown bench workload {other:?}"),
            };
            println!("{}", serde_json::to_string(&sample)?);
            Ok(())
        }
        Cmd::LatestDeps => latest_deps::run(),
        Cmd::PublicApi { check } => public_api::run(check),
        Cmd::TortoiseAssets => {
            let py = pyenv::ensure()?;
            let sdist = pyenv::tortoise_sdist(&py)?;
            let scripts = repo_root().join("xtask/python");
            run(Command::new(&py)
                .arg(scripts.join("tortoise_vocab.py"))
                .arg(sdist.join("tortoise/data/tokenizer.json")))?;
            run(Command::new(&py)
                .arg(scripts.join("tortoise_mel_norms.py"))
                .arg(&sdist))
        }
    }
}

fn parity_check(args: &ParityArgs) -> Result<()> {
    let root = repo_root();
    let selected: Vec<&Component> = match &args.only {
        Some(name) => {
            let c = COMPONENTS
                .iter()
                .find(|c| c.name == name)
                .with_context(|| {
                    let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
                    format!("unknown component {name:?}; known: {}", names.join(", "))
                })?;
            vec![c]
        }
        None => COMPONENTS.iter().collect(),
    };
    if args.seeds == Some(0) {
        bail!("--seeds takes at least 1");
    }

    let python = pyenv::ensure()?;
    let sdists = SdistDirs {
        tortoise: pyenv::tortoise_sdist(&python)?,
        encodec: pyenv::encodec_sdist(&python)?,
    };
    let tortoise_python = if selected.iter().any(|c| c.env == PyEnv::Tortoise) {
        Some(pyenv::ensure_tortoise()?)
    } else {
        None
    };
    pyenv::ensure_espeak()?;
    std::fs::create_dir_all(root.join("target/parity")).context("creating target/parity")?;
    let env = RunEnv {
        python: &python,
        tortoise_python: tortoise_python.as_deref(),
        sdists: &sdists,
        full: args.full,
    };

    if let Some(n) = args.seeds {
        return sweep::run(&env, &selected, &sweep::seeds(args.seed, n));
    }

    let (ref_root, seed) = if args.regen_fixtures {
        (root.join("fixtures"), 0)
    } else {
        (root.join("target/parity/ref"), args.seed)
    };
    let report = root.join("target/parity/report.jsonl");
    let mut outcome = run_seed(
        &env,
        &selected,
        &ref_root,
        seed,
        !args.regen_fixtures,
        &report,
    )?;
    let covered = binding::NEEDS
        .iter()
        .all(|d| selected.iter().any(|c| c.fixture_dir == *d));
    if args.no_python {
        eprintln!("python binding column skipped (--no-python)");
    } else if !covered {
        eprintln!(
            "python binding column skipped: it reads the references of {} (run without --only)",
            binding::NEEDS.join(", ")
        );
    } else {
        let (rows, failed) = binding::run_column(&env, &ref_root, seed)?;
        outcome.rows.extend(rows);
        outcome.test_failures.extend(failed);
    }
    table::print(&outcome.rows);
    table::print_bindings(&outcome.rows);
    outcome.verdict(&selected)?;
    println!(
        "parity-check passed: {} case rows, components: {}",
        outcome.rows.len(),
        selected.len()
    );
    Ok(())
}

/// What every run of the reference scripts and the Rust tests needs.
pub struct RunEnv<'a> {
    /// The reference environment's python (`target/pyenv`).
    pub python: &'a Path,
    /// The Tortoise environment's python (`target/pyenv-tortoise`), when a selected component needs it.
    pub tortoise_python: Option<&'a Path>,
    pub sdists: &'a SdistDirs,
    pub full: bool,
}

impl RunEnv<'_> {
    /// The python that runs `c`'s reference script.
    pub fn python_for(&self, c: &Component) -> Result<&Path> {
        match c.env {
            PyEnv::Reference => Ok(self.python),
            PyEnv::Tortoise => self
                .tortoise_python
                .with_context(|| format!("{}: the Tortoise environment was not prepared", c.name)),
        }
    }
}

/// The rows and failed test runs of one seed.
pub struct Outcome {
    pub rows: Vec<table::Row>,
    /// Test runs that failed (a failing case, a test that panicked, a build error), one line each.
    pub test_failures: Vec<String>,
}

impl Outcome {
    /// The components of `selected` that produced no row.
    pub fn missing<'c>(&self, selected: &[&'c Component]) -> Vec<&'c str> {
        selected
            .iter()
            .filter(|c| !self.rows.iter().any(|r| r.component == c.name))
            .map(|c| c.name)
            .collect()
    }

    /// An error listing every failing row, failed test run and silent component; Ok when there are none.
    pub fn verdict(&self, selected: &[&Component]) -> Result<()> {
        let failed_rows = self.rows.iter().filter(|r| !r.passed).count();
        let missing = self.missing(selected);
        if failed_rows > 0 || !self.test_failures.is_empty() || !missing.is_empty() {
            for r in self.rows.iter().filter(|r| !r.passed) {
                eprintln!("{}", r.detail);
            }
            bail!(
                "parity-check failed: {failed_rows} failing case(s); test runs failed: [{}]; components without results: [{}]",
                self.test_failures.join("; "),
                missing.join(", ")
            );
        }
        Ok(())
    }
}

/// Run the reference scripts with `seed` into `ref_root` and the Rust tests against them; the rows the tests
/// appended to `report` (emptied first). A reference script that fails is an error (no comparison possible).
pub fn run_seed(
    env: &RunEnv,
    selected: &[&Component],
    ref_root: &Path,
    seed: u64,
    clear: bool,
    report: &Path,
) -> Result<Outcome> {
    let root = repo_root();
    let _ = std::fs::remove_file(report);
    let mut test_failures = Vec::new();
    for c in selected {
        let out = ref_root.join(c.fixture_dir);
        if clear {
            let _ = std::fs::remove_dir_all(&out);
        }
        eprintln!(
            "== {}: reference ({}) seed {seed} -> {}",
            c.name,
            c.script,
            out.display()
        );
        let mut cmd = Command::new(env.python_for(c)?);
        cmd.arg(root.join("xtask/python").join(c.script))
            .arg("--out")
            .arg(&out)
            .arg("--seed")
            .arg(seed.to_string())
            .args(c.script_args(env.sdists));
        if env.full && c.has_full {
            cmd.arg("--full");
        }
        run(&mut cmd)
            .with_context(|| format!("reference script {} failed (seed {seed})", c.script))?;

        // The dev/test profile optimises every dependency (burn) at opt-level 3: no second release build.
        eprintln!(
            "== {}: rust ({} --test {})",
            c.name,
            c.package,
            c.tests.join(" --test ")
        );
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&root).args(["test", "-p", c.package]);
        for t in c.tests {
            cmd.args(["--test", t]);
        }
        if env.full && c.has_full {
            // Full-size cases are #[ignore]d in the normal suite (their checkpoints are generated on demand).
            cmd.args(["--", "--include-ignored"]);
        }
        cmd.env("CLVP_FIXTURES", ref_root)
            .env("CLVP_PARITY_REPORT", report);
        if let Err(e) = run(&mut cmd) {
            test_failures.push(format!("{}: {e:#}", c.name));
        }
        for (package, test) in c.other_tests {
            eprintln!("== {}: rust ({package} --test {test})", c.name);
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(&root)
                .args(["test", "-p", package, "--test", test])
                .env("CLVP_FIXTURES", ref_root)
                .env("CLVP_PARITY_REPORT", report);
            if let Err(e) = run(&mut cmd) {
                test_failures.push(format!("{} ({package}): {e:#}", c.name));
            }
        }
    }
    Ok(Outcome {
        rows: table::read_rows(report)?,
        test_failures,
    })
}

/// Run a command, inheriting stdio; an error names the command and its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} exited with {status}", cmd.get_program());
    }
    Ok(())
}
