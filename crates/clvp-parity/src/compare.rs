//! Element-wise comparison against a reference, with a report naming the worst elements.

use crate::tolerance::Tolerance;

/// The outcome of comparing one output against its reference.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Number of compared elements.
    pub len: usize,
    /// Largest absolute error.
    pub max_abs: f64,
    /// Largest relative error `|a-b| / max(|b|, tiny)`.
    pub max_rel: f64,
    /// Elements outside the tolerance.
    pub failures: usize,
    /// Up to five worst elements: (index, ours, reference).
    pub worst: Vec<(usize, f64, f64)>,
    /// Shape mismatch or other structural problem, if any.
    pub structural: Option<String>,
    /// The tolerance applied.
    pub tolerance: Tolerance,
}

impl Comparison {
    /// True when the shapes agree and every element is within tolerance.
    pub fn passed(&self) -> bool {
        self.structural.is_none() && self.failures == 0
    }

    /// One-paragraph report for assertion messages.
    pub fn report(&self, what: &str) -> String {
        if let Some(s) = &self.structural {
            return format!("{what}: {s}");
        }
        let worst: Vec<String> = self
            .worst
            .iter()
            .map(|(i, a, b)| format!("[{i}] ours {a:.7} ref {b:.7}"))
            .collect();
        format!(
            "{what}: {} of {} elements outside {} (max abs {:.3e}, max rel {:.3e}); worst: {}",
            self.failures,
            self.len,
            self.tolerance.describe(),
            self.max_abs,
            self.max_rel,
            worst.join(", ")
        )
    }
}

/// Compare `ours` against `reference` (same flattened layout) under `tol`.
pub fn compare(ours: &[f64], reference: &[f64], tol: Tolerance) -> Comparison {
    if ours.len() != reference.len() {
        return Comparison {
            len: reference.len(),
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            failures: reference.len().max(ours.len()),
            worst: Vec::new(),
            structural: Some(format!(
                "length mismatch: ours {} elements, reference {}",
                ours.len(),
                reference.len()
            )),
            tolerance: tol,
        };
    }
    let scale = if tol.scaled {
        reference.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    } else {
        1.0
    };
    let mut max_abs = 0.0f64;
    let mut max_rel = 0.0f64;
    let mut failures = 0usize;
    let mut errs: Vec<(f64, usize)> = Vec::new();
    for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
        let err = if a == b { 0.0 } else { (a - b).abs() };
        let err = if err.is_nan() { f64::INFINITY } else { err };
        let rel = err / b.abs().max(1e-30);
        max_abs = max_abs.max(err);
        max_rel = max_rel.max(if err == 0.0 { 0.0 } else { rel });
        let bound = tol.atol * scale + tol.rtol * b.abs();
        if err > bound {
            failures += 1;
        }
        if err > 0.0 {
            errs.push((err, i));
        }
    }
    errs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let worst = errs
        .iter()
        .take(5)
        .map(|&(_, i)| (i, ours[i], reference[i]))
        .collect();
    Comparison {
        len: reference.len(),
        max_abs,
        max_rel,
        failures,
        worst,
        structural: None,
        tolerance: tol,
    }
}

/// Compare integer sequences exactly (token ids, codes).
pub fn compare_ids(ours: &[i64], reference: &[i64]) -> Comparison {
    let a: Vec<f64> = ours.iter().map(|&v| v as f64).collect();
    let b: Vec<f64> = reference.iter().map(|&v| v as f64).collect();
    compare(&a, &b, Tolerance::EXACT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_single_bad_element() {
        let c = compare(&[1.0, 2.0, 3.5], &[1.0, 2.0, 3.0], Tolerance::abs(1e-4));
        assert!(!c.passed());
        assert_eq!(c.failures, 1);
        assert_eq!(c.worst[0].0, 2);
    }

    #[test]
    fn nan_never_passes() {
        let c = compare(&[f64::NAN], &[1.0], Tolerance::abs(1.0));
        assert!(!c.passed());
    }

    #[test]
    fn length_mismatch_is_structural() {
        let c = compare_ids(&[1, 2], &[1, 2, 3]);
        assert!(c.structural.is_some());
        assert!(!c.passed());
    }

    #[test]
    fn scaled_tolerance_uses_largest_reference() {
        let c = compare(&[100.0 + 5e-3, 0.0], &[100.0, 0.0], Tolerance::scaled(1e-4));
        assert!(c.passed(), "{}", c.report("x"));
    }
}
