//! The one place the kernels ask which vector instructions the CPU has (std caches the answer after the
//! first call). Every `#[target_feature]` kernel is reached through these.

/// AVX-512F (the f32x16 kernels: ELU, softmax exponentials, the LSTM step, the packed products).
#[inline]
pub fn avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX2 with FMA (the f32x8 fallbacks of the packed products, the decoder's attention and the LSTM step).
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ln 2 in two parts (Cephes' `expf`): `x − k·LN2_HI − k·LN2_LO` keeps the digits of `r` for large `k`.
pub const LN2_HI: f32 = 0.693_359_4;
/// The low part of ln 2 (see [`LN2_HI`]).
pub const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' `expf` polynomial `P`: `e^r − 1 ≈ r + r²·P(r)` for `|r| ≤ ln 2 / 2`, highest degree first (its last
/// coefficient, 5.0000001201e-1, is 0.5 in f32). The one `exp` of every kernel: [`exp`] and
/// `x86::expm1_parts`.
pub const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// `e^x` for `x` clamped to `[−87.3, 88.3]` (where `2^n` stays a normal f32): `x = n·ln 2 + r`, [`EXP_P`], and
/// `2^n` built from its exponent bits. About 1 ulp; branch-free, so that the loops calling it vectorise
/// (libm's `expf` is a call per value).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let [p0, p1, p2, p3, p4, p5] = EXP_P;
    let p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Sixteen lanes at once (AVX-512F).
#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use std::arch::x86_64::*;

    use super::{EXP_P, LN2_HI, LN2_LO};

    /// For `x` already clamped (at −88 below, under the overflow above): `k = round(x·log₂e)` and
    /// `e^r − 1 = r + r²·P(r)` with `r = x − k·ln 2`. `e^x` is `scalef(e^r − 1 + 1, k)`, `e^x − 1` is
    /// `scalef(e^r − 1, k) + (2^k − 1)`.
    ///
    /// # Safety
    /// Called from outside an `avx512f` function, the caller must know the CPU has AVX-512F
    /// ([`super::avx512f`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn expm1_parts(x: __m512) -> (__m512, __m512) {
        let c = |v: f32| _mm512_set1_ps(v);
        let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, c(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(k, c(LN2_LO), _mm512_fnmadd_ps(k, c(LN2_HI), x));
        let p = EXP_P.map(c);
        let mut y = p[0];
        for &q in &p[1..] {
            y = _mm512_fmadd_ps(y, r, q);
        }
        (k, _mm512_fmadd_ps(_mm512_mul_ps(y, r), r, r))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (super::exp(x), f64::from(x).exp());
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (f64::from(got) - want).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, f64 {want}"
            );
        }
        assert!(super::exp(1000.0).is_finite() && super::exp(-1000.0) > 0.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sixteen_lane_exp_is_within_two_ulp_of_f64() {
        use std::arch::x86_64::*;
        if !super::avx512f() {
            return;
        }
        let xs: Vec<f32> = (0..8800).map(|i| -87.9 + i as f32 * 0.01).collect();
        for chunk in xs.chunks_exact(16) {
            // SAFETY: the CPU has AVX-512F (checked above); the chunk holds 16 values.
            let out: [f32; 16] = unsafe {
                let x = _mm512_loadu_ps(chunk.as_ptr());
                let (k, em1) = super::x86::expm1_parts(x);
                let e = _mm512_scalef_ps(_mm512_add_ps(em1, _mm512_set1_ps(1.0)), k);
                std::mem::transmute(e)
            };
            for (x, got) in chunk.iter().zip(out) {
                let want = f64::from(*x).exp();
                assert!(
                    (f64::from(got) - want).abs() <= 2.0 * f64::from(f32::EPSILON) * want,
                    "exp({x}) = {got}, f64 {want}"
                );
            }
        }
    }

    #[test]
    fn avx512_implies_avx2_fma_on_real_cpus() {
        // Every CPU with AVX-512F also has AVX2 and FMA; the kernels' dispatch relies on that order.
        if super::avx512f() {
            assert!(super::avx2_fma());
        }
    }
}
