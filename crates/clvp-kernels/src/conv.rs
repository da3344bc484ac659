//! EnCodec's SEANet kernels: ELU (AVX-512 where the CPU has it), padding with ELU fused in, the GEMM wrappers
//! the convolutions are made of, GroupNorm's passes and the in-place adds. encodec-codec's `host/blocks.rs`
//! builds the convolutions and residual blocks from them and tests them against its burn path.

use rayon::prelude::*;

/// How [`pad_row`] fills the padding (`torch.nn.functional.pad`'s modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// Reflection excluding the edge sample, with HF's small-input rule (a row shorter than the padding is
    /// zero-extended first).
    Reflect,
    /// Zeros.
    Constant,
    /// The edge sample repeated.
    Replicate,
}

/// `ELU(α = 1)` of `src` into `dst` (`expm1` for the negative side).
pub fn elu_into(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512f() {
        // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
        return unsafe { x86::elu_avx512(src, dst) };
    }
    for (s, d) in src.iter().zip(dst) {
        *d = elu(*s);
    }
}

pub fn elu(x: f32) -> f32 {
    if x > 0.0 { x } else { x.exp_m1() }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::elu_into`] sixteen lanes at a time: `expm1(x)` for `x ≤ 0` as Cephes' `expf`
    /// (`x = n·ln 2 + r`, a degree-7 polynomial in `r`) written `2ⁿ·(e^r − 1) + (2ⁿ − 1)`, which keeps
    /// the small values' digits. The last, partial group goes through the same lanes (masked): a value's
    /// result never depends on where it sits in the row, so a tile of a stream gives the whole pass's bits.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn elu_avx512(src: &[f32], dst: &mut [f32]) {
        let len = src.len().min(dst.len());
        let mut i = 0;
        while i < len {
            let left = len - i;
            let mask: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            // SAFETY: the mask covers lanes i..min(i + 16, len), inside both slices.
            let x = unsafe { _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i)) };
            let out = elu16(x);
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), mask, out) };
            i += 16;
        }
    }

    /// ELU of sixteen lanes.
    #[target_feature(enable = "avx512f")]
    fn elu16(x: __m512) -> __m512 {
        let (zero, one) = (_mm512_setzero_ps(), _mm512_set1_ps(1.0));
        let xn = _mm512_max_ps(_mm512_min_ps(x, zero), _mm512_set1_ps(-88.0));
        let (k, em1) = crate::simd::x86::expm1_parts(xn);
        let scale = _mm512_scalef_ps(one, k);
        let neg = _mm512_add_ps(_mm512_scalef_ps(em1, k), _mm512_sub_ps(scale, one));
        // x > 0, or NaN (which stays NaN, as in PyTorch).
        let keep = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(x, zero);
        _mm512_mask_blend_ps(keep, neg, x)
    }
}

/// One channel `row` (through ELU when `elu`) padded by (`left`, `right`) into `out` (`left + len + right`
/// values, HF's `_pad1d` short-input rule for reflect; as encodec-codec's `reflect_pad`).
pub fn pad_row(row: &[f32], left: usize, right: usize, mode: PadMode, elu: bool, out: &mut [f32]) {
    let len = row.len();
    let mid = &mut out[left..left + len];
    if elu {
        elu_into(row, mid);
    } else {
        mid.copy_from_slice(row);
    }
    if left == 0 && right == 0 {
        return;
    }
    let total = left + len + right;
    match mode {
        PadMode::Constant => {
            out[..left].fill(0.0);
            out[left + len..total].fill(0.0);
        }
        PadMode::Replicate => {
            let (first, last) = (out[left], out[left + len - 1]);
            out[..left].fill(first);
            out[left + len..total].fill(last);
        }
        PadMode::Reflect => {
            // Reflect over the row extended with zeros to `n` values when it is too short.
            let n = len.max(left.max(right) + 1);
            let ext = |j: usize| if j < len { out[left + j] } else { 0.0 };
            let before: Vec<f32> = (0..left).map(|i| ext(left - i)).collect();
            let after: Vec<f32> = (0..right).map(|i| ext(n - 2 - i)).collect();
            // The extension's zeros sit between the row and the right reflection; everything past
            // `total` is dropped (HF drops the extension's length from the end).
            let mut tail = vec![0.0; n - len];
            tail.extend(after);
            out[left + len..total].copy_from_slice(&tail[..right]);
            out[..left].copy_from_slice(&before);
        }
    }
}

/// `dst[m, n] += Σ_k lhs[m, k] · rhs[k, n]` for row-major `dst` `[m, n]`, `lhs` `[m, k]` and `rhs` `[k, n]`.
///
/// # Panics
/// When a slice's length is not its shape's.
pub fn matmul_acc(dst: &mut [f32], lhs: &[f32], rhs: &[f32], [m, n, k]: [usize; 3]) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    if m * n * k == 0 {
        return;
    }
    // SAFETY: the three views are the slices themselves (lengths checked above); `dst` is borrowed
    // mutably, so nothing aliases it.
    unsafe {
        gemm_acc(
            [m, n, k],
            dst.as_mut_ptr(),
            [n, 1],
            lhs.as_ptr(),
            [k, 1],
            rhs.as_ptr(),
            [n, 1],
        );
    }
}

/// `dst[m, n] += Σ_k lhs[m, k] · rhs[k, n]` on strided views (element strides: rows `*_rs`, columns
/// `*_cs`).
///
/// # Safety
/// Every view lies inside its allocation; `dst`'s elements are distinct and not aliased by the others.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_acc(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    [dst_rs, dst_cs]: [usize; 2],
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [usize; 2],
) {
    if (m == 1 || n == 1) && k > 2 {
        // SAFETY: the caller's.
        return unsafe {
            gemm_acc_vector(
                [m, n, k],
                dst,
                [dst_rs, dst_cs],
                lhs,
                [lhs_rs, lhs_cs],
                rhs,
                [rhs_rs, rhs_cs],
            )
        };
    }
    let threads = rayon::current_num_threads();
    let threads = if m * n * k >= 1 << 17 { threads } else { 1 };
    // SAFETY: the caller's.
    unsafe {
        crate::gemm::gemm(
            [m, n, k],
            dst,
            [dst_rs, dst_cs],
            lhs,
            [lhs_rs, lhs_cs],
            rhs,
            [rhs_rs, rhs_cs],
            true,
            threads,
        );
    }
}

/// [`gemm_acc`] of one row or one column, through the matrix kernel rather than `gemm`'s vector kernels
/// (which it picks for `m == 1` or `n == 1` and which sum in another order): the row or column is read twice
/// (stride 0) into a two-row or two-column scratch, and the first copied back. A stream's tile of one frame
/// then gets the bits of the whole pass, where the same row is one of many.
///
/// # Safety
/// As [`gemm_acc`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_acc_vector(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    [dst_rs, dst_cs]: [usize; 2],
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [usize; 2],
) {
    let (m2, n2) = (m.max(2), n.max(2));
    let at = |i: usize, j: usize| i.min(m - 1) * dst_rs + j.min(n - 1) * dst_cs;
    // SAFETY: `at` stays inside the caller's `m × n` view of `dst`.
    let mut tmp: Vec<f32> = (0..m2 * n2)
        .map(|e| unsafe { *dst.add(at(e / n2, e % n2)) })
        .collect();
    // SAFETY: the scratch is `m2 × n2` row-major; a stride of 0 reads the caller's one row (column) twice,
    // inside its view.
    unsafe {
        gemm_acc(
            [m2, n2, k],
            tmp.as_mut_ptr(),
            [n2, 1],
            lhs,
            [if m == 1 { 0 } else { lhs_rs }, lhs_cs],
            rhs,
            [rhs_rs, if n == 1 { 0 } else { rhs_cs }],
        );
    }
    for i in 0..m {
        for j in 0..n {
            // SAFETY: inside the caller's view.
            unsafe { *dst.add(i * dst_rs + j * dst_cs) = tmp[i * n2 + j] };
        }
    }
    tmp.clear();
}

/// `nn.GroupNorm(1, C)` (eps 1e-5) of one item `[C, T]` in place: two passes for the statistics (mean,
/// then squared deviations), per channel on the pool's threads.
pub fn group_norm(y: &mut [f32], t: usize, (w, b): &(Vec<f32>, Vec<f32>)) {
    let t = t.max(1);
    let n = y.len().max(1) as f64;
    let mean = y.par_chunks(t).map(|row| sum(row, |v| v)).sum::<f64>() / n;
    let m = mean as f32;
    let var = y
        .par_chunks(t)
        .map(|row| sum(row, |v| (v - m) * (v - m)))
        .sum::<f64>()
        / n;
    let rstd = (1.0 / (var + 1e-5).sqrt()) as f32;
    y.par_chunks_mut(t)
        .zip(w.par_iter().zip(b))
        .for_each(|(row, (&w, &b))| {
            let scale = rstd * w;
            row.iter_mut().for_each(|v| *v = (*v - m) * scale + b);
        });
}

/// `Σ f(v)` over `row`: f32 lanes within blocks of 1024 values, the blocks summed in f64.
#[inline(always)]
pub fn sum(row: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    row.chunks(1024)
        .map(|block| {
            let mut acc = [0.0f32; 16];
            let lanes = block.chunks_exact(16);
            let tail: f32 = lanes.remainder().iter().map(|&v| f(v)).sum();
            for chunk in lanes {
                for (a, &v) in acc.iter_mut().zip(chunk) {
                    *a += f(v);
                }
            }
            f64::from(tail) + acc.iter().map(|&a| f64::from(a)).sum::<f64>()
        })
        .sum()
}

pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.par_chunks_mut(1 << 16)
        .zip(y.par_chunks(1 << 16))
        .for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(x, y)| *x += y));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elu_does_not_depend_on_the_position() {
        // A stream's tiles start anywhere in a row: a value must get the same bits in the vector body and
        // in the last, partial group.
        let src: Vec<f32> = (0..67).map(|i| -0.037 * i as f32 - 1e-3).collect();
        let mut whole = vec![0.0; src.len()];
        elu_into(&src, &mut whole);
        for start in 0..src.len() {
            for end in start..=src.len() {
                let mut part = vec![0.0; end - start];
                elu_into(&src[start..end], &mut part);
                assert!(
                    part.iter()
                        .zip(&whole[start..end])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "ELU of [{start}, {end}) differs from the whole row's"
                );
            }
        }
    }

    #[test]
    fn elu_matches_f64() {
        let mut src: Vec<f32> = (0..1000).map(|i| (i as f32 - 700.0) * 0.023).collect();
        src.extend([
            -1e-7, -3e-4, -0.01, -0.3466, -0.3467, -87.0, -88.5, -200.0, 0.0, 1e-7, 50.0,
        ]);
        let mut dst = vec![0.0; src.len()];
        elu_into(&src, &mut dst);
        let mut nan = [0.5f32; 17];
        nan[3] = f32::NAN;
        nan[16] = f32::NAN;
        let mut out = [0.0; 17];
        elu_into(&nan, &mut out);
        assert!(out[3].is_nan() && out[16].is_nan() && out[2] == 0.5);
        for (s, d) in src.iter().zip(&dst) {
            let want = if *s > 0.0 {
                f64::from(*s)
            } else {
                f64::from(*s).exp_m1()
            };
            let err = (f64::from(*d) - want).abs();
            assert!(
                err <= 2.0 * f64::from(f32::EPSILON) * want.abs().max(1e-30),
                "ELU({s}) = {d}, want {want}"
            );
        }
    }
}
