//! Activations over host buffers, vectorised: the decoder's `gelu_new` and the encoders' gated unit.

use wide::f32x16;

/// `√(2/π)`.
const SQRT_2_OVER_PI: f32 =
    (std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2) as f32;

/// `gelu_new(x) = 0.5·x·(1 + tanh(u))`, `u = √(2/π)·(x + 0.044715·x³)`, computed as `x / (1 + e^(−2u))`
/// (the same function: `1 + tanh(u) = 2·σ(2u)`), one vectorised exponential per value instead of a libm
/// `tanhf` call. Matches the tanh form to a few ulp; for `u → −∞` the exponential overflows to +∞ and
/// the result is `−0`, as the tanh form gives.
pub fn gelu_new_in_place(values: &mut [f32]) {
    let mut chunks = values.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let mut lanes = [0.0f32; 16];
        lanes.copy_from_slice(chunk);
        let x = f32x16::from(lanes);
        let inner = (x * x * x * 0.044715 + x) * (-2.0 * SQRT_2_OVER_PI);
        let y = x / (inner.exp() + 1.0);
        chunk.copy_from_slice(&y.to_array());
    }
    for v in chunks.into_remainder() {
        let inner = (*v * *v * *v * 0.044715 + *v) * (-2.0 * SQRT_2_OVER_PI);
        *v /= inner.exp() + 1.0;
    }
}

/// `ClvpGatedLinearUnit` after its projection: `a · GELU(g)` for each row `[a | g]` of `h`
/// (`[rows, 2·width]`), erf GELU `0.5·g·(1 + erf(g/√2))` as PyTorch's; `[rows, width]`.
pub fn gated_gelu(h: &[f32], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(h.len() / 2);
    for row in h.chunks_exact(2 * width.max(1)) {
        let (a, g) = row.split_at(width);
        let mut ca = a.chunks_exact(16);
        let mut cg = g.chunks_exact(16);
        for (a, g) in (&mut ca).zip(&mut cg) {
            let mut la = [0.0f32; 16];
            let mut lg = [0.0f32; 16];
            la.copy_from_slice(a);
            lg.copy_from_slice(g);
            let g = f32x16::from(lg);
            let y = f32x16::from(la) * (g * 0.5 * (erf(g * std::f32::consts::FRAC_1_SQRT_2) + 1.0));
            out.extend_from_slice(&y.to_array());
        }
        for (a, g) in ca.remainder().iter().zip(cg.remainder()) {
            let e = erf(f32x16::splat(g * std::f32::consts::FRAC_1_SQRT_2)).to_array()[0];
            out.push(a * (g * 0.5 * (e + 1.0)));
        }
    }
    out
}

/// `erf`, the rational approximation of Eigen's `generic_fast_erf_float` (as TensorFlow's and XLA's
/// CPU kernels use): inputs clamped to ±4, where f32's erf is ±1; within a few ulp of the exact value
/// (checked against f64 in the tests below).
fn erf(x: f32x16) -> f32x16 {
    let x = x.fast_max(f32x16::splat(-4.0)).fast_min(f32x16::splat(4.0));
    let x2 = x * x;
    let mut p = x2.mul_add(
        f32x16::splat(-2.726_142_3e-10),
        f32x16::splat(2.770_681_4e-8),
    );
    for c in [
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = x2.mul_add(p, f32x16::splat(c));
    }
    let p = x * p;
    let mut q = x2.mul_add(
        f32x16::splat(-1.456_607_2e-5),
        f32x16::splat(-2.133_740_6e-4),
    );
    for c in [-1.682_827e-3, -7.373_329_3e-3, -1.426_474e-2] {
        q = x2.mul_add(q, f32x16::splat(c));
    }
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The approximation against f64 `erf` (libm) over the range and past the clamp.
    #[test]
    fn erf_is_within_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in -7000..=7000 {
            let x = i as f32 * 0.001;
            let got = f64::from(erf(f32x16::splat(x)).to_array()[0]);
            let want = libm_erf(f64::from(x));
            worst = worst.max((got - want).abs());
        }
        assert!(
            worst <= 4.0 * f64::from(f32::EPSILON),
            "max |erf error| {worst:e}"
        );
    }

    /// `erf` in f64 from its everywhere-convergent series (Abramowitz–Stegun 7.1.6):
    /// `erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ·x^(2n+1) / (1·3·…·(2n+1))`, all terms of one sign.
    fn libm_erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term.abs() > 1e-300 && n < 500.0 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
    }

    /// `a · GELU(g)` against the f64 formula, lanes and remainder alike. Far left, `1 + erf` cancels
    /// (as in PyTorch's f32 kernel), so the error is erf's absolute one times `a·g/2`.
    #[test]
    fn gated_gelu_matches_the_formula() {
        let width = 37;
        let h: Vec<f32> = (0..3 * 2 * width)
            .map(|i| (i as f32 * 0.37).sin() * 5.0)
            .collect();
        let got = gated_gelu(&h, width);
        assert_eq!(got.len(), 3 * width);
        for (r, row) in h.chunks_exact(2 * width).enumerate() {
            for j in 0..width {
                let (a, g) = (f64::from(row[j]), f64::from(row[width + j]));
                let want = a * 0.5 * g * (1.0 + libm_erf(g / 2f64.sqrt()));
                let got = f64::from(got[r * width + j]);
                // erf's own error (≤ 4 eps, above) scaled by a·g/2, plus the products' rounding.
                let eps = f64::from(f32::EPSILON);
                let tol = 2.0 * (a * g).abs() * eps + 4.0 * eps * want.abs() + 1e-30;
                assert!((got - want).abs() <= tol, "[{r}, {j}]: {got} vs {want}");
            }
        }
    }

    /// Against f64 over the range activations take, lanes and remainder alike: within the same
    /// form's f32 rounding, and to 1e-6 of the tanh form (which rounds to 0 far left, where this keeps `x·e^(2u)`).
    #[test]
    fn matches_the_tanh_form() {
        let xs: Vec<f32> = (-4000..=4000)
            .map(|i| i as f32 * 0.005)
            .chain([-60.0, 60.0, -1e-6, 0.0])
            .collect();
        let mut got = xs.clone();
        gelu_new_in_place(&mut got);
        for (x, g) in xs.iter().zip(&got) {
            let x64 = f64::from(*x);
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3));
            let want = x64 / (1.0 + (-2.0 * u).exp());
            // Below ~1e-36 the exponential overflows to +inf and the result is -0.
            // e^v carries v's own rounding (|v|·eps relative), as any f32 evaluation does.
            let tol = (8.0 + 4.0 * u.abs()) * f64::from(f32::EPSILON) * want.abs() + 1e-36;
            assert!(
                (f64::from(*g) - want).abs() <= tol,
                "gelu_new({x}) = {g}, want {want}"
            );
            let tanh_form = 0.5 * x64 * (1.0 + u.tanh());
            assert!(
                (f64::from(*g) - tanh_form).abs() <= 1e-6,
                "gelu_new({x}) = {g} vs {tanh_form}"
            );
        }
    }
}
