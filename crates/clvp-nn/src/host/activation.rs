//! `NewGELUActivation` (`gelu_new`) over a host buffer, in place and vectorised.

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

#[cfg(test)]
mod tests {
    use super::*;

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
