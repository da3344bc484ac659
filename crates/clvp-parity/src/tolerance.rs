//! The tolerance table: the single place where parity tolerances are written down (`tolerances.json`, read by
//! the Rust tests through [`tolerance`] and by the Python binding's tests).
//!
//! A case passes when every element satisfies `|ours - reference| <= atol + rtol * |reference|`
//! (numpy's `allclose`), or, for `scaled` tolerances, `|ours - reference| <= atol * max|reference|`.
//! Exact components (token ids, codes, byte streams) use [`Tolerance::EXACT`].

/// How close a result must be to the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (per element, relative to the reference value).
    pub rtol: f64,
    /// When true, `atol` is relative to the largest reference magnitude (full-size models).
    pub scaled: bool,
}

impl Tolerance {
    /// Bit-for-bit / id-for-id equality.
    pub const EXACT: Tolerance = Tolerance {
        atol: 0.0,
        rtol: 0.0,
        scaled: false,
    };

    /// Absolute tolerance only.
    pub const fn abs(atol: f64) -> Self {
        Tolerance {
            atol,
            rtol: 0.0,
            scaled: false,
        }
    }

    /// Tolerance relative to the largest reference magnitude.
    pub const fn scaled(atol: f64) -> Self {
        Tolerance {
            atol,
            rtol: 0.0,
            scaled: true,
        }
    }

    /// Human-readable form for reports.
    pub fn describe(&self) -> String {
        if self.atol == 0.0 && self.rtol == 0.0 {
            "exact".to_string()
        } else if self.scaled {
            format!("{:.0e}·max|ref|", self.atol)
        } else if self.rtol == 0.0 {
            format!("abs {:.0e}", self.atol)
        } else {
            format!("abs {:.0e} + rel {:.0e}", self.atol, self.rtol)
        }
    }
}

/// The tolerance of a named component, from `tolerances.json` (each row says why). Unknown names are a
/// programming error and fall back to exact.
pub fn tolerance(component: &str) -> Tolerance {
    table().get(component).copied().unwrap_or(Tolerance::EXACT)
}

/// The table of `tolerances.json` (next to this crate's manifest), which the Python tests read too.
const TABLE: &str = include_str!("../tolerances.json");

fn table() -> &'static std::collections::HashMap<String, Tolerance> {
    static PARSED: std::sync::OnceLock<std::collections::HashMap<String, Tolerance>> =
        std::sync::OnceLock::new();
    PARSED.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Row {
            atol: f64,
            #[serde(default)]
            rtol: f64,
            #[serde(default)]
            scaled: bool,
        }
        let rows: std::collections::HashMap<String, Row> = match serde_json::from_str(TABLE) {
            Ok(rows) => rows,
            Err(e) => panic!("crates/clvp-parity/tolerances.json is not a tolerance table: {e}"),
        };
        rows.into_iter()
            .map(|(k, r)| {
                (
                    k,
                    Tolerance {
                        atol: r.atol,
                        rtol: r.rtol,
                        scaled: r.scaled,
                    },
                )
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_answers() {
        assert_eq!(tolerance("features"), Tolerance::abs(1e-4));
        assert_eq!(tolerance("nn_full_bf16"), Tolerance::scaled(2e-2));
        assert_eq!(tolerance("tokenizer"), Tolerance::EXACT);
        assert_eq!(tolerance("no such component"), Tolerance::EXACT);
        assert_eq!(table().len(), 20);
    }
}
