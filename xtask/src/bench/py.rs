//! P5-py and P3-py of `cargo xtask bench`: the Python module (crates/clvp-py, release build) against
//! transformers in one Python process on the same arrays (`xtask/python/bench_binding.py`), and the binding's
//! overhead against the Rust rows P5 and P3 of the same run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::bench::{Row, Sample, Selection, THREADS, median};
use crate::repo_root;

#[derive(Deserialize)]
struct Rounds {
    ours: Vec<f64>,
    reference: Vec<f64>,
    runs: usize,
    peak_rss_bytes: u64,
}

/// Build `_clvp` in release (as `pip install ./crates/clvp-py` does) and lay the package out under
/// `target/bench/pymodule/clvp`, for `PYTHONPATH`.
fn build_module() -> Result<PathBuf> {
    let root = repo_root();
    crate::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "-p",
                "clvp-py",
                "--features",
                "pyo3/extension-module",
            ]),
    )?;
    let pkg = root.join("target/bench/pymodule");
    let dir = pkg.join("clvp");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let src = root.join("crates/clvp-py/python/clvp");
    for entry in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        let keep = path
            .extension()
            .is_some_and(|e| e == "py" || e == "pyi" || e == "typed");
        if keep && let Some(name) = path.file_name() {
            std::fs::copy(&path, dir.join(name))?;
        }
    }
    std::fs::copy(
        root.join("target/release/lib_clvp.so"),
        dir.join("_clvp.abi3.so"),
    )
    .context("copying target/release/lib_clvp.so")?;
    Ok(pkg)
}

fn measure(
    python: &Path,
    pkg: &Path,
    workload: &str,
    model: &Path,
    audio: Option<&Path>,
) -> Result<Rounds> {
    let script = repo_root().join("xtask/python/bench_binding.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .args(["--workload", workload, "--model"])
        .arg(model)
        .args([
            "--rounds",
            &crate::bench::rounds(&format!("{workload}-py")).to_string(),
            "--threads",
            THREADS,
        ])
        .env("PYTHONPATH", pkg)
        .env("RAYON_NUM_THREADS", THREADS);
    if let Some(a) = audio {
        cmd.arg("--audio").arg(a);
    }
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "bench_binding.py {workload} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .with_context(|| format!("bench_binding.py {workload} printed {line:?}"))
}

fn row(name: &'static str, r: Rounds) -> Row {
    let sample = |s: &f64| Sample {
        median_s: *s,
        runs: r.runs,
        peak_rss_bytes: r.peak_rss_bytes,
    };
    Row {
        name,
        ours: r.ours.iter().map(sample).collect(),
        reference: r.reference.iter().map(sample).collect(),
    }
}

/// The selected rows (`p5-py`, `p3-py`).
pub fn run(python: &Path, sel: &Selection, rows: &mut Vec<Row>) -> Result<()> {
    if !(sel.wants("p5-py") || sel.wants("p3-py")) {
        return Ok(());
    }
    let pkg = build_module()?;
    if sel.wants("p5-py") {
        eprintln!(
            "== P5-py (one process, {} rounds)",
            crate::bench::rounds("p5-py")
        );
        let (m24, _) = crate::bench::encodec_models(python)?;
        let wav = crate::pyenv::encodec_sdist(&python.to_path_buf())?.join("test_24k.wav");
        let r = measure(python, &pkg, "p5", &m24, Some(&wav))?;
        rows.push(row(
            "P5-py P5 from Python: clvp vs transformers in one process",
            r,
        ));
    }
    if sel.wants("p3-py") {
        eprintln!(
            "== P3-py (one process, {} rounds)",
            crate::bench::rounds("p3-py")
        );
        let model = crate::bench::clvp::model(python)?;
        let r = measure(python, &pkg, "p3", &model, None)?;
        rows.push(row(
            "P3-py P3 from Python: clvp vs transformers in one process",
            r,
        ));
    }
    Ok(())
}

/// The binding's overhead: our median from Python against the Rust worker's of the same workload, when both
/// rows ran (`- P5-py: …` notes).
pub fn overhead_notes(rows: &[Row]) -> Vec<String> {
    let ours = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.split_whitespace().next() == Some(prefix))
            .map(|r| median(r.ours.iter().map(|s| s.median_s).collect()))
    };
    let mut notes = Vec::new();
    for (py, rust) in [("P5-py", "P5"), ("P3-py", "P3")] {
        if let (Some(p), Some(r)) = (ours(py), ours(rust)) {
            notes.push(format!(
                "- {py}: the binding's overhead: ours from Python {:.3} s against the Rust worker's {:.3} s ({:+.1} %); \
                 one process holds both models, so both peak RSS columns are that process's",
                p,
                r,
                (p / r - 1.0) * 100.0
            ));
        }
    }
    notes
}
