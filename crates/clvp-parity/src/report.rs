//! Collects parity results of a table-driven test, reports every failing case, and feeds the
//! `cargo xtask parity-check` table.
//!
//! When the environment variable `CLVP_PARITY_REPORT` names a file, every recorded row is appended to it
//! as one JSON line `{"component", "case", "max_abs", "max_rel", "tolerance", "passed", "detail"}`.

use std::io::Write;

use crate::compare::Comparison;

/// One row of the parity table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Component name (`tokenizer`, `features`, ...).
    pub component: String,
    /// Case name.
    pub case: String,
    /// Largest absolute error over the case.
    pub max_abs: f64,
    /// Largest relative error over the case.
    pub max_rel: f64,
    /// The tolerance, described.
    pub tolerance: String,
    /// Whether every element of the case is within tolerance.
    pub passed: bool,
    /// Failure details (empty when passed).
    pub detail: String,
}

/// Records the cases of one component and fails at the end with all failures listed.
#[derive(Debug)]
pub struct Recorder {
    component: String,
    rows: Vec<Row>,
}

impl Recorder {
    /// A recorder for `component`.
    pub fn new(component: &str) -> Self {
        Recorder {
            component: component.to_string(),
            rows: Vec::new(),
        }
    }

    /// Record one case.
    pub fn record(&mut self, case: &str, c: &Comparison) {
        self.push(Row {
            component: self.component.clone(),
            case: case.to_string(),
            max_abs: c.max_abs,
            max_rel: c.max_rel,
            tolerance: c.tolerance.describe(),
            passed: c.passed(),
            detail: if c.passed() {
                String::new()
            } else {
                c.report(case)
            },
        });
    }

    /// Record a group of sub-cases as one row (e.g. 370 tokenizer lines); failing labels are kept.
    pub fn record_group<'a>(
        &mut self,
        case: &str,
        items: impl IntoIterator<Item = (String, &'a Comparison)>,
    ) {
        let mut max_abs = 0.0f64;
        let mut max_rel = 0.0f64;
        let mut n = 0usize;
        let mut failed = Vec::new();
        let mut tolerance = String::from("exact");
        for (label, c) in items {
            n += 1;
            max_abs = max_abs.max(c.max_abs);
            max_rel = max_rel.max(c.max_rel);
            tolerance = c.tolerance.describe();
            if !c.passed() {
                failed.push(c.report(&label));
            }
        }
        let detail = if failed.is_empty() {
            String::new()
        } else {
            format!("{} of {n} failed:\n  {}", failed.len(), failed.join("\n  "))
        };
        self.push(Row {
            component: self.component.clone(),
            case: format!("{case} ({n})"),
            max_abs,
            max_rel,
            tolerance,
            passed: failed.is_empty() && n > 0,
            detail: if n == 0 {
                "no cases".to_string()
            } else {
                detail
            },
        });
    }

    /// Record an exact-match case group (ids, strings): `failures` lists the mismatching items of `total`.
    pub fn record_exact(&mut self, case: &str, total: usize, failures: &[String]) {
        let passed = failures.is_empty() && total > 0;
        self.push(Row {
            component: self.component.clone(),
            case: format!("{case} ({total})"),
            max_abs: if passed { 0.0 } else { f64::INFINITY },
            max_rel: if passed { 0.0 } else { f64::INFINITY },
            tolerance: "exact".to_string(),
            passed,
            detail: if total == 0 {
                format!("{case}: no cases")
            } else if passed {
                String::new()
            } else {
                format!(
                    "{case}: {} of {total} differ:\n{}",
                    failures.len(),
                    failures.join("\n")
                )
            },
        });
    }

    /// Record a case that could not be run (an error on our side counts as a failure).
    pub fn record_error(&mut self, case: &str, error: &str) {
        self.push(Row {
            component: self.component.clone(),
            case: case.to_string(),
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            tolerance: "-".to_string(),
            passed: false,
            detail: format!("{case}: error: {error}"),
        });
    }

    fn push(&mut self, row: Row) {
        if let Some(path) = std::env::var_os("CLVP_PARITY_REPORT")
            && let Ok(line) = serde_json::to_string(&row)
        {
            // One write per row with O_APPEND keeps rows of concurrent tests intact.
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(format!("{line}\n").as_bytes());
            }
        }
        self.rows.push(row);
    }

    /// Rows recorded so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Panic with every failing case if any failed, or if nothing was recorded.
    #[track_caller]
    pub fn finish(self) {
        assert!(
            !self.rows.is_empty(),
            "{}: no parity cases were recorded",
            self.component
        );
        let failed: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.detail.as_str())
            .collect();
        assert!(
            failed.is_empty(),
            "{}: {} of {} cases failed:\n{}",
            self.component,
            failed.len(),
            self.rows.len(),
            failed.join("\n")
        );
    }
}
