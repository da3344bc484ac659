//! The Python-binding column of `parity-check`: the binding's pytest suite (crates/clvp-py/tests) run on the
//! references this run generated, against transformers itself. Its tests append one row per checked case to
//! a report of their own (`binding: "python"`); the table then shows each component's worst error through Rust
//! and through Python side by side.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::table::{self, Row};
use crate::{RunEnv, repo_root, run};

/// The reference directories the pytest suite reads, besides its own (`python`).
pub const NEEDS: &[&str] = &["text", "audio", "encodec", "clvp"];

/// Generate the binding's own references (`xtask/python/ref_python_api.py` into `ref_root/python`), build the
/// `clvp` command the suite compares with, build the binding and run its suite against `ref_root`. Returns
/// the rows and, when the suite failed, one line saying so.
pub fn run_column(env: &RunEnv, ref_root: &Path, seed: u64) -> Result<(Vec<Row>, Option<String>)> {
    let root = repo_root();
    let report = root.join("target/parity/report-python.jsonl");
    let _ = std::fs::remove_file(&report);
    eprintln!("== python binding: reference (ref_python_api.py) seed {seed}");
    run(Command::new(env.python)
        .arg(root.join("xtask/python/ref_python_api.py"))
        .arg("--out")
        .arg(ref_root.join("python").join("processors.json"))
        .arg("--seed")
        .arg(seed.to_string()))
    .context("reference script ref_python_api.py failed")?;
    eprintln!("== python binding: the clvp command (debug) and scripts/test-python.sh");
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["build", "-p", "clvp-cli"]),
    )?;
    let failed = run(Command::new(root.join("scripts/test-python.sh"))
        .current_dir(&root)
        .env("CLVP_FIXTURES", ref_root)
        .env("CLVP_PARITY_REPORT", &report))
    .err()
    .map(|e| format!("python binding: {e:#}"));
    Ok((table::read_rows(&report)?, failed))
}
