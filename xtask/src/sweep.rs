//! `cargo xtask parity-check --seeds N`: the parity check over N fresh seeds, one summary row per component
//! with the worst error over all of them (docs/parity.md, "Seed sweeps").
//!
//! Each seed runs every selected component on its own (reference script, then the Rust tests), so that one
//! seed's failure is recorded and the sweep goes on; the per-seed rows are kept in
//! `target/parity/sweep/<seed>-<component>.jsonl` and the summary in `target/parity/sweep/summary.md`.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use crate::components::Component;
use crate::table::Row;
use crate::{RunEnv, repo_root, run_seed};

/// `first` followed by `n − 1` seeds derived from it (splitmix64 of `first + i`, kept below 2^31 so every
/// reference script can pass them to `torch.Generator.manual_seed` and derive its own sub-seeds).
pub fn seeds(first: u64, n: usize) -> Vec<u64> {
    let mut out = vec![first];
    let mut i = 1u64;
    while out.len() < n {
        let s = splitmix64(first.wrapping_add(i)) % (1 << 31);
        if !out.contains(&s) {
            out.push(s);
        }
        i += 1;
    }
    out
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The worst of one component over the sweep.
#[derive(Default)]
struct Worst {
    seeds: usize,
    rows: usize,
    failed_rows: usize,
    /// `seed: message` of reference scripts or test runs that failed, and seeds that produced no row.
    failures: Vec<String>,
    max_abs: Option<(f64, String, u64)>,
    max_rel: Option<(f64, String, u64)>,
}

impl Worst {
    fn add(&mut self, seed: u64, rows: &[Row]) {
        self.rows += rows.len();
        for r in rows {
            if !r.passed {
                self.failed_rows += 1;
                self.failures.push(format!("{seed}: {} failed", r.case));
            }
            bump(&mut self.max_abs, r.max_abs, &r.case, seed);
            bump(&mut self.max_rel, r.max_rel, &r.case, seed);
        }
    }
}

/// Keep the larger error (a missing one — an exact comparison's — counts as 0; a non-finite one wins).
fn bump(slot: &mut Option<(f64, String, u64)>, v: Option<f64>, case: &str, seed: u64) {
    let v = v.map(|x| if x.is_nan() { f64::INFINITY } else { x });
    let v = v.unwrap_or(0.0);
    if slot.as_ref().is_none_or(|(w, _, _)| v > *w) {
        *slot = Some((v, case.to_string(), seed));
    }
}

fn cell(w: &Option<(f64, String, u64)>) -> String {
    match w {
        None => "–".to_string(),
        Some((v, _, _)) if *v == 0.0 => "0".to_string(),
        Some((v, case, seed)) => format!("{v:.2e} ({case}, seed {seed})"),
    }
}

/// Run `selected` for every seed, print per-seed progress and the summary table; an error when any seed failed.
pub fn run(env: &RunEnv, selected: &[&Component], seeds: &[u64]) -> Result<()> {
    let root = repo_root();
    let dir = root.join("target/parity/sweep");
    std::fs::create_dir_all(&dir).context("creating target/parity/sweep")?;
    let ref_root = root.join("target/parity/ref");
    let mut worst: Vec<Worst> = selected.iter().map(|_| Worst::default()).collect();
    let started = std::time::Instant::now();
    for (i, &seed) in seeds.iter().enumerate() {
        for (c, w) in selected.iter().zip(worst.iter_mut()) {
            let report = dir.join(format!("{seed}-{}.jsonl", c.name));
            w.seeds += 1;
            match run_seed(env, &[*c], &ref_root, seed, true, &report) {
                Ok(outcome) => {
                    w.add(seed, &outcome.rows);
                    if outcome.rows.is_empty() {
                        w.failures.push(format!("{seed}: no rows"));
                    }
                    w.failures
                        .extend(outcome.test_failures.iter().map(|f| format!("{seed}: {f}")));
                }
                Err(e) => w.failures.push(format!("{seed}: {e:#}")),
            }
        }
        // Written after every seed, so that an interrupted sweep still leaves the seeds it finished.
        let md = summary(env.full, selected, &worst, &seeds[..=i]);
        std::fs::write(dir.join("summary.md"), &md).context("writing the sweep summary")?;
        eprintln!(
            "== sweep: seed {seed} done ({}/{}, {:.0} s so far)",
            i + 1,
            seeds.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let md = summary(env.full, selected, &worst, seeds);
    println!("{md}");
    std::fs::write(dir.join("summary.md"), &md).context("writing the sweep summary")?;
    let failures: Vec<String> = selected
        .iter()
        .zip(&worst)
        .flat_map(|(c, w)| w.failures.iter().map(move |f| format!("{}: {f}", c.name)))
        .collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        bail!(
            "parity sweep failed: {} failure(s) over {} seeds",
            failures.len(),
            seeds.len()
        );
    }
    println!(
        "parity sweep passed: {} seeds, {} components, {:.0} s",
        seeds.len(),
        selected.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The summary table (markdown) of the seeds run so far.
fn summary(full: bool, selected: &[&Component], worst: &[Worst], seeds: &[u64]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Seeds ({}{}): {}\n",
        seeds.len(),
        if full { ", --full" } else { "" },
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "| component | seeds | case rows | failures | worst max abs err | worst max rel err |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for (c, w) in selected.iter().zip(worst) {
        let mut bad: Vec<&str> = w
            .failures
            .iter()
            .filter_map(|f| f.split(':').next())
            .collect();
        bad.sort_unstable();
        bad.dedup();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.name,
            w.seeds,
            w.rows,
            if bad.is_empty() {
                "0".to_string()
            } else {
                format!("{} seed(s), {} row(s)", bad.len(), w.failed_rows)
            },
            cell(&w.max_abs),
            cell(&w.max_rel)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_start_with_the_given_one_and_are_distinct_and_stable() {
        let s = seeds(20261122, 20);
        assert_eq!(s.len(), 20);
        assert_eq!(s[0], 20261122);
        let mut d = s.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 20);
        assert!(s.iter().all(|&x| x < 1 << 31));
        assert_eq!(seeds(20261122, 5), s[..5]);
        assert_eq!(seeds(7, 1), vec![7]);
    }

    #[test]
    fn worst_keeps_the_largest_error_and_counts_failures() {
        let row = |case: &str, abs: Option<f64>, passed: bool| Row {
            component: "c".into(),
            case: case.into(),
            max_abs: abs,
            max_rel: abs,
            tolerance: "t".into(),
            passed,
            detail: String::new(),
            binding: None,
        };
        let mut w = Worst::default();
        w.add(1, &[row("a", Some(1e-6), true), row("b", None, true)]);
        w.add(2, &[row("a", Some(3e-6), false)]);
        assert_eq!(w.rows, 3);
        assert_eq!(w.failed_rows, 1);
        assert_eq!(cell(&w.max_abs), "3.00e-6 (a, seed 2)");
        w.add(3, &[row("z", Some(f64::NAN), true)]);
        assert_eq!(w.max_abs.as_ref().map(|m| m.2), Some(3));
    }
}
