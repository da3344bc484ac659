//! `cargo xtask bench`: our release build against PyTorch 2.15 / transformers 5.23 (the pinned environment) on
//! the same inputs and the same thread count, each side in its own process (so peak RSS is per side), rounds
//! alternating between the two, each round a warm-up and several counted runs; medians reported.
//!
//! Workloads register here as they land; today: P4 (feature extraction of a 6 s clip), P5/P6 (EnCodec 24/48 kHz
//! encode + decode of 10 s at 6 kbps on full-size random-init checkpoints); the CLVP rows (P1–P3 with their
//! bf16 and int8 variants, P7, and P8, the main job as a cold process each side) are in [`clvp`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{pyenv, repo_root};

pub(crate) mod clvp;
pub(crate) mod py;

/// One side's measurement of one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Median seconds per run in that round.
    pub median_s: f64,
    /// Counted runs.
    pub runs: usize,
    /// Peak resident set size of the measuring process.
    pub peak_rss_bytes: u64,
}

/// A workload row.
pub struct Row {
    pub name: &'static str,
    pub ours: Vec<Sample>,
    pub reference: Vec<Sample>,
}

pub const THREADS: &str = "2";

/// Rounds of a row, by its key (`P4`, `P5`, ...): more where a round is cheap, so that the per-round spread
/// and its lower quartile mean something (issue 28); the 10–45 s CLVP rows keep three.
pub fn rounds(key: &str) -> usize {
    match key.to_ascii_uppercase().as_str() {
        "P4" => 9,
        "P5" | "P6" | "P7" | "P5-PY" => 5,
        _ => 3,
    }
}

/// The speedup a row must reach (issue 28), by key; a row meets it only if the lower quartile of its per-round
/// ratios does, so that one lucky round cannot carry it.
pub fn goal(key: &str) -> Option<f64> {
    match key.to_ascii_uppercase().as_str() {
        "P2" | "P5" | "P6" | "P1-BF16PT" | "P2-BF16PT" | "P8" => Some(2.0),
        "P3" => Some(1.6),
        "P1-INT8" => Some(4.0),
        _ => None,
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn p4_clip() -> PathBuf {
    repo_root().join("fixtures/audio/noise_exact_6s.wav")
}

/// The Rust side of P4, run in a child process (`xtask bench-worker p4 FILE`).
pub fn worker_p4(file: &Path, runs: usize, warmup: usize) -> Result<Sample> {
    let fe = clvp_audio::ClvpFeatureExtractor::tortoise();
    let audio = clvp_audio::load_audio(file)?;
    let clip = audio.to_mono().into_mono();
    for _ in 0..warmup {
        std::hint::black_box(fe.extract(&[&clip], Some(audio.sample_rate))?);
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        std::hint::black_box(fe.extract(&[&clip], Some(audio.sample_rate))?);
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(Sample {
        median_s: median(times),
        runs,
        peak_rss_bytes: clvp_parity::bench::peak_rss_bytes(),
    })
}

/// `cargo build --release -p PACKAGE [--features F] --example EXAMPLE`; the example's path.
pub fn build_example(package: &str, features: &[&str], example: &str) -> Result<PathBuf> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "-p", package]);
    for f in features {
        cmd.args(["--features", f]);
    }
    crate::run(cmd.args(["--example", example]))
        .with_context(|| format!("building the bench worker {package}/{example}"))?;
    Ok(root.join("target/release/examples").join(example))
}

/// Build a binary of the workspace in release (P8 times the `clvp` command itself).
pub fn build_bin(package: &str, bin: &str) -> Result<PathBuf> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "-p", package, "--bin", bin]);
    crate::run(&mut cmd).with_context(|| format!("building {package}/{bin}"))?;
    Ok(root.join("target/release").join(bin))
}

fn parse_sample(out: &[u8], who: &str) -> Result<Sample> {
    let text = String::from_utf8_lossy(out);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{who} printed no JSON result:\n{text}"))?;
    serde_json::from_str(line).with_context(|| format!("{who}: bad result line {line}"))
}

pub fn run_json(cmd: &mut Command, who: &str) -> Result<Sample> {
    let out = cmd
        .env("OMP_NUM_THREADS", THREADS)
        .env("MKL_NUM_THREADS", THREADS)
        .env("OPENBLAS_NUM_THREADS", THREADS)
        .output()
        .with_context(|| format!("cannot start {who}"))?;
    if !out.status.success() {
        bail!(
            "{who} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_sample(&out.stdout, who)
}

fn bench_p4(python: &Path) -> Result<Row> {
    let clip = p4_clip();
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let script = repo_root().join("xtask/python/bench_features.py");
    let mut row = Row {
        name: "P4 features, 6 s clip",
        ours: Vec::new(),
        reference: Vec::new(),
    };
    let n = rounds("P4");
    for round in 0..n {
        eprintln!("== P4 round {}/{n}", round + 1);
        row.ours.push(run_json(
            Command::new(&exe).arg("bench-worker").arg("p4").arg(&clip),
            "ours (P4)",
        )?);
        row.reference.push(run_json(
            Command::new(python).arg(&script).arg("--audio").arg(&clip),
            "PyTorch/HF (P4)",
        )?);
    }
    Ok(row)
}

/// Full-size random-init EnCodec checkpoints for P5/P6 (written once by the reference script under target/).
pub(crate) fn encodec_models(python: &Path) -> Result<(PathBuf, PathBuf)> {
    let root = repo_root();
    let out = root.join("target/bench/encodec");
    let sdist = pyenv::encodec_sdist(&python.to_path_buf())?;
    if !out.join("full_24k/model.safetensors").exists()
        || !out.join("full_48k/model.safetensors").exists()
    {
        eprintln!(
            "== generating full-size random-init EnCodec checkpoints in {}",
            out.display()
        );
        crate::run(
            Command::new(python)
                .arg(root.join("xtask/python/ref_encodec.py"))
                .arg("--out")
                .arg(&out)
                .args(["--seed", "0", "--full", "--encodec"])
                .arg(&sdist),
        )
        .context("generating the EnCodec checkpoints")?;
    }
    Ok((out.join("full_24k"), out.join("full_48k")))
}

/// P5/P6: encode + decode of 10 s at 6 kbps; the Rust side is `encodec-codec`'s `bench_worker` example.
fn bench_encodec(python: &Path, name: &'static str, model: &Path, wav: &Path) -> Result<Row> {
    let root = repo_root();
    let worker = build_example("encodec-codec", &[], "bench_worker")?;
    let script = root.join("xtask/python/bench_encodec.py");
    let mut row = Row {
        name,
        ours: Vec::new(),
        reference: Vec::new(),
    };
    let n = rounds(name.split_whitespace().next().unwrap_or(name));
    for round in 0..n {
        eprintln!("== {name} round {}/{n}", round + 1);
        row.ours.push(run_json(
            Command::new(&worker)
                .arg(model)
                .arg(wav)
                .args(["10", "6", "3", "1"])
                .env("RAYON_NUM_THREADS", THREADS),
            "ours (EnCodec)",
        )?);
        row.reference.push(run_json(
            Command::new(python)
                .arg(&script)
                .arg("--model")
                .arg(model)
                .arg("--audio")
                .arg(wav)
                .args([
                    "--seconds",
                    "10",
                    "--bandwidth",
                    "6",
                    "--runs",
                    "3",
                    "--warmup",
                    "1",
                ])
                .args(["--threads", THREADS]),
            "PyTorch/HF (EnCodec)",
        )?);
    }
    Ok(row)
}

pub fn fmt_s(s: f64) -> String {
    if s < 1e-2 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

fn fmt_mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
}

/// A workload selector: `--only` takes one name or a comma list (`P1,P3`); none means all.
pub struct Selection(pub Option<Vec<String>>);

impl Selection {
    pub fn new(only: Option<&str>) -> Self {
        Selection(only.map(|o| {
            o.split(',')
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect()
        }))
    }

    pub fn wants(&self, w: &str) -> bool {
        self.0.as_ref().is_none_or(|ws| ws.iter().any(|x| x == w))
    }
}

/// Each round's speedup (the reference's median over ours, rounds paired as they alternated).
pub fn round_ratios(r: &Row) -> Vec<f64> {
    r.ours
        .iter()
        .zip(&r.reference)
        .map(|(o, t)| t.median_s / o.median_s)
        .collect()
}

/// The lower quartile (linear interpolation between order statistics, numpy's default).
pub fn lower_quartile(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => {
            let at = 0.25 * (n - 1) as f64;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
        }
    }
}

/// The table's header (also the width old rows are padded to).
pub const TABLE_HEAD: &str = "| workload | ours median s | PyTorch median s | speedup | per-round speedups (min–max) | lower quartile | goal | met | ours peak RSS | PyTorch peak RSS |\n|---|---|---|---|---|---|---|---|---|---|\n";

/// The medians, ratio, per-round spread, verdict and peaks of a row, in the table's format.
fn row_line(r: &Row) -> String {
    let ours = median(r.ours.iter().map(|s| s.median_s).collect());
    let theirs = median(r.reference.iter().map(|s| s.median_s).collect());
    let peak = |v: &[Sample]| v.iter().map(|s| s.peak_rss_bytes).max().unwrap_or(0);
    let ratios = round_ratios(r);
    let (lo, hi) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let q1 = lower_quartile(&ratios);
    let key = r.name.split_whitespace().next().unwrap_or(r.name);
    let (goal, met) = match goal(key) {
        Some(g) => (
            format!("{g:.1}×"),
            if q1 >= g { "yes" } else { "**no**" }.to_string(),
        ),
        None => ("—".to_string(), "—".to_string()),
    };
    format!(
        "| {} | {} | {} | {:.2}× | {lo:.2}–{hi:.2}× ({} rounds) | {q1:.2}× | {goal} | {met} | {} | {} |",
        r.name,
        fmt_s(ours),
        fmt_s(theirs),
        theirs / ours,
        ratios.len(),
        fmt_mib(peak(&r.ours)),
        fmt_mib(peak(&r.reference))
    )
}

/// A row written before the spread columns existed, padded to [`TABLE_HEAD`]'s width with "—".
fn widen(line: &str) -> String {
    let cells: Vec<&str> = line
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    if cells.len() != 6 {
        return line.to_string();
    }
    format!(
        "| {} | {} | {} | {} | — | — | — | — | {} | {} |",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
    )
}

/// One line per row to `docs/bench-history.csv` (`commit,date,row,ours_s,pytorch_s,speedup,q1,min,max,rounds`),
/// so that a regression shows against the commits before it.
fn append_history(rows: &[Row]) -> Result<()> {
    let path = repo_root().join("docs/bench-history.csv");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(repo_root())
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let commit = if dirty { format!("{commit}+") } else { commit };
    let date = chrono_free_date();
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => "commit,date,row,ours_s,pytorch_s,speedup,q1,min,max,rounds\n".to_string(),
    };
    for r in rows {
        let ours = median(r.ours.iter().map(|s| s.median_s).collect());
        let theirs = median(r.reference.iter().map(|s| s.median_s).collect());
        let ratios = round_ratios(r);
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let key = r.name.split_whitespace().next().unwrap_or(r.name);
        text.push_str(&format!(
            "{commit},{date},{key},{ours:.6},{theirs:.6},{:.4},{:.4},{lo:.4},{hi:.4},{}\n",
            theirs / ours,
            lower_quartile(&ratios),
            ratios.len()
        ));
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The workload key of a table line (`P4` of `| P4 features… |`).
fn row_key(line: &str) -> Option<&str> {
    line.strip_prefix("| ")?.split_whitespace().next()
}

/// Merge `fresh` table lines into the rows already in `doc` (same key replaced), sorted by key.
fn merge_rows(doc: &str, fresh: &[String]) -> Vec<String> {
    let mut rows: Vec<String> = doc
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| row_key(l).is_some_and(|k| k.starts_with('P')))
        .filter(|l| !fresh.iter().any(|f| row_key(f) == row_key(l)))
        .map(widen)
        .collect();
    rows.extend(fresh.iter().cloned());
    rows.sort_by_key(|l| row_key(l).map(str::to_string));
    rows
}

/// Run the benches and print/write the table.
pub fn run(only: Option<&str>, backends: bool) -> Result<()> {
    let python = pyenv::ensure()?;
    let sel = Selection::new(only);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    crate::bench::clvp::run(&python, &sel, &mut rows, &mut notes)?;
    if sel.wants("p4") {
        rows.push(bench_p4(&python)?);
    }
    if sel.wants("p5") || sel.wants("p6") {
        let (m24, m48) = encodec_models(&python)?;
        let sdist = pyenv::encodec_sdist(&python)?;
        if sel.wants("p5") {
            rows.push(bench_encodec(
                &python,
                "P5 EnCodec 24 kHz encode+decode, 10 s, 6 kbps",
                &m24,
                &sdist.join("test_24k.wav"),
            )?);
        }
        if sel.wants("p6") {
            rows.push(bench_encodec(
                &python,
                "P6 EnCodec 48 kHz stereo encode+decode, 10 s, 6 kbps",
                &m48,
                &sdist.join("test_48k.wav"),
            )?);
        }
    }
    crate::bench::py::run(&python, &sel, &mut rows)?;
    notes.extend(crate::bench::py::overhead_notes(&rows));
    let backend_table = if backends {
        Some(crate::bench::clvp::backends(&sel)?)
    } else {
        None
    };
    if rows.is_empty() && backend_table.is_none() {
        bail!(
            "no workload matches {only:?}; known: P1, P1-bf16, P1-bf16pt, P1-int8, P1-int8pt, P2, P2-bf16pt, P3, P8, P3-py, P4, P5, P5-py, P6, P7"
        );
    }
    let fresh: Vec<String> = rows.iter().map(row_line).collect();
    append_history(&rows)?;
    let head = TABLE_HEAD;
    println!("{head}{}", fresh.join("\n"));
    for n in &notes {
        println!("{n}");
    }
    let doc = repo_root().join("docs/performance.md");
    let old = std::fs::read_to_string(&doc).unwrap_or_default();
    let section = |title: &str| -> Option<String> {
        let start = old.find(title)?;
        let rest = &old[start..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 4);
        Some(rest[..end].trim_end().to_string())
    };
    let mut table = String::from(head);
    for l in merge_rows(&old, &fresh) {
        table.push_str(&l);
        table.push('\n');
    }
    let header = "# Performance\n\nWritten by `cargo xtask bench` (release build vs PyTorch 2.15 + transformers 5.23 from \
                  the pinned environment, same input, 2 threads, each side in its own process, rounds alternating, \
                  warm-up then counted runs, medians; peak RSS per process). Each round gives a speedup; the table \
                  shows their spread, and a row meets its goal (issue 28) only if the lower quartile of its rounds' \
                  speedups does. Every run also appends its rows to `docs/bench-history.csv` (commit, date, \
                  ratios) and redraws them, speedup per row over the runs, in `docs/bench-history.png` (`cargo \
                  xtask bench --plot` draws it alone). Rows are merged by workload: a run of `--only P4` replaces the P4 row and keeps the \
                  others; rows from before the spread columns show “—” there.\n\n";
    let machine = format!(
        "Machine: {} logical CPUs; last run {}.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono_free_date()
    );
    let mut out = format!("{header}{machine}{table}");
    // Notes merge like rows: a fresh `- P1: …` replaces the old P1 note and keeps the others.
    let note_key = |l: &str| {
        l.strip_prefix("- ")
            .and_then(|r| r.split(':').next())
            .map(str::to_string)
    };
    let mut merged: Vec<String> = section("## Throughput")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("- "))
        .filter(|l| !notes.iter().any(|n| note_key(n) == note_key(l)))
        .map(str::to_string)
        .collect();
    merged.extend(notes.iter().cloned());
    merged.sort_by_key(|l| note_key(l));
    let throughput =
        (!merged.is_empty()).then(|| format!("## Throughput\n\n{}", merged.join("\n")));
    let backends = match backend_table {
        Some(t) => {
            println!("{t}");
            Some(t)
        }
        None => section("## CPU backends"),
    };
    // `## Analysis` is written by hand (profiles, levers) and kept as it is.
    let analysis = section("## Analysis");
    for s in [throughput, backends, analysis].into_iter().flatten() {
        out.push('\n');
        out.push_str(&s);
        out.push('\n');
    }
    std::fs::write(&doc, out).with_context(|| format!("writing {}", doc.display()))?;
    eprintln!("wrote {}", doc.display());
    Ok(())
}

fn chrono_free_date() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_quartile_interpolates_as_numpy() {
        // numpy.percentile([1, 2, 3, 4], 25) = 1.75; of three rounds, halfway between the lowest two.
        assert!((lower_quartile(&[4.0, 1.0, 3.0, 2.0]) - 1.75).abs() < 1e-12);
        assert!((lower_quartile(&[1.2, 1.0, 1.6]) - 1.1).abs() < 1e-12);
        assert_eq!(lower_quartile(&[1.5]), 1.5);
        assert!(lower_quartile(&[]).is_nan());
    }

    #[test]
    fn old_rows_are_widened_to_the_new_table() {
        let old = "| P4 features, 6 s clip | 1.29 ms | 7.69 ms | 5.98× | 7 MiB | 548 MiB |";
        let wide = widen(old);
        assert_eq!(
            wide.matches('|').count(),
            TABLE_HEAD.lines().next().unwrap_or("").matches('|').count()
        );
        assert!(wide.contains("| 5.98× | — | — | — | — | 7 MiB |"));
        assert_eq!(widen(&wide), wide);
    }

    #[test]
    fn a_row_meets_its_goal_only_by_its_lower_quartile() {
        let s = |median_s| Sample {
            median_s,
            runs: 1,
            peak_rss_bytes: 0,
        };
        // Rounds of 2.4×, 1.7× and 2.2×: the median (2.2×) is over P5's 2×, the lower quartile (1.95×) is not.
        let row = Row {
            name: "P5 test",
            ours: vec![s(1.0), s(1.0), s(1.0)],
            reference: vec![s(2.4), s(1.7), s(2.2)],
        };
        let line = row_line(&row);
        assert!(
            line.contains("1.70–2.40× (3 rounds)") && line.contains("| 1.95× | 2.0× | **no** |"),
            "{line}"
        );
    }
}
