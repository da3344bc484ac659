//! The parity table: component | case | max abs err | max rel err | tolerance | verdict.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

/// One row as the tests write it (see `clvp_parity::report`).
#[derive(Debug, Deserialize)]
pub struct Row {
    pub component: String,
    pub case: String,
    pub max_abs: Option<f64>,
    pub max_rel: Option<f64>,
    pub tolerance: String,
    pub passed: bool,
    pub detail: String,
    /// `Some("python")` for the binding's rows (crates/clvp-py/tests), `None` for the Rust tests'.
    #[serde(default)]
    pub binding: Option<String>,
}

/// Read the rows the tests appended (none if no test ran).
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .with_context(|| format!("bad report line in {}: {l}", path.display()))
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(0.0) => "0".to_string(),
        Some(x) if x.is_finite() => format!("{x:.2e}"),
        _ => "inf".to_string(),
    }
}

/// Print the table with aligned columns.
pub fn print(rows: &[Row]) {
    let header = [
        "component",
        "case",
        "max abs err",
        "max rel err",
        "tolerance",
        "verdict",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                match &r.binding {
                    Some(b) => format!("{} [{b}]", r.component),
                    None => r.component.clone(),
                },
                r.case.clone(),
                num(r.max_abs),
                num(r.max_rel),
                r.tolerance.clone(),
                if r.passed {
                    "pass".to_string()
                } else {
                    "FAIL".to_string()
                },
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        format!("| {} |", parts.join(" | "))
    };
    let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    println!("{}", line(&header));
    let sep: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", sep.join("-|-"));
    for row in &cells {
        println!("{}", line(row));
    }
}

/// The worst error of `rows` (`None` when some row has none: a count of mismatches, not an error).
fn worst(rows: &[&Row]) -> Option<f64> {
    rows.iter()
        .map(|r| r.max_abs)
        .try_fold(0.0f64, |acc, e| e.map(|e| acc.max(e)))
}

/// One line per component: its cases and worst error through Rust, and through the Python binding.
pub fn print_bindings(rows: &[Row]) {
    let mut components: Vec<&str> = Vec::new();
    for r in rows {
        if !components.contains(&r.component.as_str()) {
            components.push(&r.component);
        }
    }
    println!();
    println!(
        "| component | rust cases | rust worst abs | python cases | python worst abs | verdict |"
    );
    println!("|---|---|---|---|---|---|");
    for c in components {
        let of = |python: bool| -> Vec<&Row> {
            rows.iter()
                .filter(|r| r.component == c && r.binding.is_some() == python)
                .collect()
        };
        let (rust, py) = (of(false), of(true));
        let cell = |rows: &[&Row]| {
            if rows.is_empty() {
                "—".to_string()
            } else {
                num(worst(rows))
            }
        };
        let passed = rust.iter().chain(&py).all(|r| r.passed);
        println!(
            "| {c} | {} | {} | {} | {} | {} |",
            rust.len(),
            cell(&rust),
            py.len(),
            cell(&py),
            if passed { "pass" } else { "FAIL" }
        );
    }
}
