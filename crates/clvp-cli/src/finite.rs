//! Results are checked before anything is written or printed: a NaN embedding, logit or feature written with
//! exit status 0 looks like a result and is garbage. Configs (norm epsilons) and weights (every value) are
//! checked when a model loads, so what is left to blame is named in each error.

use anyhow::{Result, bail};

/// The likely cause of a non-finite CLVP result once the config and weights have passed their checks.
pub const MODEL_CAUSE: &str = "the checkpoint's weights are finite but so large that the model overflows \
     float32; re-download or re-export the checkpoint";

/// Fail, naming `what`, `cause` and the first bad value, when `values` hold a NaN or an infinity.
pub fn ensure_finite(what: &str, values: &[f32], cause: &str) -> Result<()> {
    let Some(first) = values.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let count = values.iter().filter(|v| !v.is_finite()).count();
    bail!(
        "{what} has {count} non-finite values (NaN or infinity; the first is {} at index {first}), so \
         nothing was written: {cause}",
        values[first]
    )
}

#[cfg(test)]
mod tests {
    use super::ensure_finite;

    #[test]
    fn names_what_and_where() {
        assert!(ensure_finite("x", &[1.0, -2.0], "c").is_ok());
        let e = ensure_finite(
            "the text embedding",
            &[1.0, f32::NAN, f32::INFINITY],
            "cause",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("the text embedding has 2 non-finite values")
                && e.contains("NaN at index 1")
                && e.ends_with("cause"),
            "{e}"
        );
    }
}
