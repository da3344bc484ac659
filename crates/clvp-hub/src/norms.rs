//! Reproduces `torch._weight_norm(v, g, dim=0)`: `w = v * (g / ‖v‖)`, the norm over every dim but 0, no epsilon.
//!
//! Both spellings are recognised: legacy `torch.nn.utils.weight_norm` (`{p}.weight_g`, `{p}.weight_v`) and
//! `torch.nn.utils.parametrizations.weight_norm` (`{p}.parametrizations.weight.original0` = g,
//! `{p}.parametrizations.weight.original1` = v). Both fold to `{p}.weight`.
//!
//! For `ConvTranspose1d` (v `[cin, cout, k]`) dim 0 is the *input* channel, exactly as torch does.

/// Suffix pairs (g, v) that fold to `{prefix}.weight`.
pub const WEIGHT_NORM_SUFFIXES: [(&str, &str); 2] = [
    (".weight_g", ".weight_v"),
    (
        ".parametrizations.weight.original0",
        ".parametrizations.weight.original1",
    ),
];

/// Which half of a weight-norm pair a key is, with its module prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightNormPart {
    /// The magnitude `g`.
    G,
    /// The direction `v`.
    V,
}

/// Split `{prefix}.weight_g` (or `_v`, or `parametrizations.weight.original0/1`) into prefix and part.
pub fn weight_norm_part(key: &str) -> Option<(&str, WeightNormPart, usize)> {
    for (i, (g, v)) in WEIGHT_NORM_SUFFIXES.iter().enumerate() {
        if let Some(p) = key.strip_suffix(g) {
            return Some((p, WeightNormPart::G, i));
        }
        if let Some(p) = key.strip_suffix(v) {
            return Some((p, WeightNormPart::V, i));
        }
    }
    None
}

/// Check that `g` (shape `[v0, 1, ..., 1]` or `[v0]`) fits `v`; returns an explanation when not.
pub fn check_weight_norm_shapes(g_shape: &[usize], v_shape: &[usize]) -> Result<(), String> {
    let Some(&rows) = v_shape.first() else {
        return Err(format!(
            "v has shape {v_shape:?}; it needs at least one dimension"
        ));
    };
    let g_numel: usize = g_shape.iter().product();
    let g_ok = g_shape.first() == Some(&rows)
        && g_numel == rows
        && (g_shape.len() == 1 || g_shape.len() == v_shape.len());
    if !g_ok {
        return Err(format!(
            "g has shape {g_shape:?} but v has shape {v_shape:?}; only dim=0 weight norm (g of shape [{rows}, 1, ...]) is supported"
        ));
    }
    Ok(())
}

/// `w = v * (g / ‖v‖)` with the norm of each slice `v[i, ...]`; `g` has one value per slice.
pub fn fold_weight_norm(g: &[f32], v: &[f32], v_shape: &[usize]) -> Result<Vec<f32>, String> {
    let rows = v_shape.first().copied().unwrap_or(0);
    let numel: usize = v_shape.iter().product();
    if v.len() != numel || g.len() != rows || rows == 0 {
        return Err(format!(
            "g has {} values and v {} for v shape {v_shape:?}",
            g.len(),
            v.len()
        ));
    }
    let per_row = numel / rows;
    let mut w = Vec::with_capacity(numel);
    for (row, &gi) in v.chunks_exact(per_row).zip(g) {
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt() as f32;
        let scale = gi / norm;
        w.extend(row.iter().map(|&x| x * scale));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_per_output_row() {
        // v rows [3, 4] (norm 5) and [0, 2] (norm 2); g = [10, 1].
        let w =
            fold_weight_norm(&[10.0, 1.0], &[3.0, 4.0, 0.0, 2.0], &[2, 1, 2]).unwrap_or_default();
        assert_eq!(w, vec![6.0, 8.0, 0.0, 1.0]);
    }

    #[test]
    fn recognises_both_spellings() {
        assert_eq!(
            weight_norm_part("a.conv.weight_g"),
            Some(("a.conv", WeightNormPart::G, 0))
        );
        assert_eq!(
            weight_norm_part("a.conv.parametrizations.weight.original1"),
            Some(("a.conv", WeightNormPart::V, 1))
        );
        assert_eq!(weight_norm_part("a.conv.weight"), None);
    }

    #[test]
    fn shape_checks() {
        assert!(check_weight_norm_shapes(&[5, 1, 1], &[5, 4, 3]).is_ok());
        assert!(check_weight_norm_shapes(&[5], &[5, 4, 3]).is_ok());
        assert!(check_weight_norm_shapes(&[1, 4, 1], &[5, 4, 3]).is_err());
        assert!(check_weight_norm_shapes(&[4, 1, 1], &[5, 4, 3]).is_err());
    }
}
