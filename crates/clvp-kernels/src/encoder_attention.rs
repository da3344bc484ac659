//! `ClvpSelfAttention` over whole sequences (the text and speech encoders) on the host, for a CPU backend:
//! per (row, head), q's scale and the rotary embedding are applied while gathering the head's q, k and v
//! into contiguous blocks, `q·kᵀ` and `p·v` are `gemm` calls, and the softmax between them is one vectorised
//! pass per score row. The output is written in place, heads merged (`[B, T, H]`), so neither the heads'
//! permutes nor the rotary embedding's narrow/negate/cat passes exist as tensors. The same function as the
//! burn path, summed in another order.

use rayon::prelude::*;
use wide::f32x16;

/// A rotary embedding's tables for the sequence, `[T, r]` each (`cos`/`sin` of `concat(freqs, freqs)`).
pub struct RotaryTables {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    pub dim: usize,
}

/// The shapes of one call.
pub struct Shape {
    pub batch: usize,
    pub len: usize,
    pub hidden: usize,
    pub heads: usize,
}

/// `softmax(q·kᵀ + mask)·v` of q, k, v (`[B, T, H]` each, straight from their projections) with
/// `q ← rotary(q · scale)`, `k ← rotary(k)`, `v ← rotary(v)` per head (HF's CLVP rotates v too), and an
/// additive key mask `[B, T]`; returns `[B, T, H]`, heads merged.
///
/// # Panics
/// When a slice's length does not match `shape` (the caller builds both from one tensor's dims).
pub fn self_attention(
    [q, k, v]: [&[f32]; 3],
    shape: &Shape,
    scale: f32,
    rotary: Option<&RotaryTables>,
    key_mask: Option<&[f32]>,
) -> Vec<f32> {
    let Shape {
        batch: b,
        len: t,
        hidden: h,
        heads,
    } = *shape;
    let hd = h / heads.max(1);
    assert!(q.len() == b * t * h && k.len() == q.len() && v.len() == q.len());
    assert!(
        hd * heads == h,
        "hidden {h} is not a multiple of {heads} heads"
    );
    assert!(key_mask.is_none_or(|m| m.len() == b * t));
    assert!(
        rotary.is_none_or(|r| r.dim <= hd && r.cos.len() == t * r.dim && r.sin.len() == t * r.dim)
    );
    let mut out = vec![0.0f32; b * t * h];
    if out.is_empty() {
        return out;
    }
    let dst = SharedOut(out.as_mut_ptr());
    (0..b * heads).into_par_iter().for_each_init(
        || Scratch {
            q: vec![0.0; t * hd],
            k: vec![0.0; t * hd],
            v: vec![0.0; t * hd],
            scores: vec![0.0; t * t],
        },
        |s, job| {
            let (bi, hi) = (job / heads, job % heads);
            let rows = bi * t * h..(bi + 1) * t * h;
            gather(&q[rows.clone()], &mut s.q, h, hi * hd, scale, rotary);
            gather(&k[rows.clone()], &mut s.k, h, hi * hd, 1.0, rotary);
            gather(&v[rows], &mut s.v, h, hi * hd, 1.0, rotary);
            // SAFETY: row-major views inside the scratch buffers: scores [t, t] = q [t, hd] · kᵀ (k read
            // with its rows as columns).
            unsafe {
                gemm_into(
                    [t, t, hd],
                    s.scores.as_mut_ptr(),
                    t,
                    s.q.as_ptr(),
                    [hd, 1],
                    s.k.as_ptr(),
                    [1, hd],
                );
            }
            let mask = key_mask.map(|m| &m[bi * t..(bi + 1) * t]);
            for row in s.scores.chunks_exact_mut(t) {
                softmax_row(row, mask);
            }
            // SAFETY: this job's head of row `bi` is the [t, hd] block of `out` at (bi·t, hi·hd) with row
            // stride h, inside `out` and written by no other job (jobs are distinct (row, head) pairs);
            // `out` outlives the parallel loop.
            unsafe {
                gemm_into(
                    [t, hd, t],
                    dst.at(bi * t * h + hi * hd),
                    h,
                    s.scores.as_ptr(),
                    [t, 1],
                    s.v.as_ptr(),
                    [hd, 1],
                );
            }
        },
    );
    out
}

/// One job's buffers, reused across the jobs a thread runs.
struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
}

/// The output's base pointer, shared by jobs that write disjoint blocks.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
impl SharedOut {
    /// The element at `offset` (a method, so that closures capture the whole `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` lies inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(offset) }
    }
}

// SAFETY: each job writes only its own (row, head) block (see `self_attention`).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// Head columns `c0..c0 + hd` of every position of `src` (`[T, h]`) into `dst` (`[T, hd]`), times `scale`,
/// then rotated: the first `r` channels `x·cos + rotate_half(x)·sin` (`rotate_half(x) = [−x₂, x₁]`).
fn gather(
    src: &[f32],
    dst: &mut [f32],
    h: usize,
    c0: usize,
    scale: f32,
    rotary: Option<&RotaryTables>,
) {
    let hd = dst.len() / (src.len() / h).max(1);
    for (ti, (row, out)) in src
        .chunks_exact(h)
        .zip(dst.chunks_exact_mut(hd))
        .enumerate()
    {
        let x = &row[c0..c0 + hd];
        if scale == 1.0 {
            out.copy_from_slice(x);
        } else {
            for (o, v) in out.iter_mut().zip(x) {
                *o = v * scale;
            }
        }
        if let Some(rt) = rotary {
            let r = rt.dim;
            let half = r / 2;
            let (cos, sin) = (&rt.cos[ti * r..(ti + 1) * r], &rt.sin[ti * r..(ti + 1) * r]);
            let mut rotated = [0.0f32; 64];
            let mut rot = vec![];
            let rotated: &mut [f32] = if r <= 64 {
                &mut rotated[..r]
            } else {
                rot.resize(r, 0.0);
                &mut rot
            };
            for d in 0..half {
                rotated[d] = -out[d + half];
                rotated[d + half] = out[d];
            }
            for d in 0..r {
                out[d] = out[d] * cos[d] + rotated[d] * sin[d];
            }
        }
    }
}

/// `row ← softmax(row + mask)` (torch's: the row's maximum subtracted before `exp`), sixteen lanes at a
/// time: with AVX-512 where the CPU has it (checked at run time), else `wide`'s portable lanes.
fn softmax_row(row: &mut [f32], mask: Option<&[f32]>) {
    if let Some(m) = mask {
        for (s, a) in row.iter_mut().zip(m) {
            *s += a;
        }
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    #[cfg(target_arch = "x86_64")]
    let sum = if crate::simd::avx512f() {
        // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
        unsafe { x86::exp_sub_sum(row, max) }
    } else {
        exp_sub_sum(row, max)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sum = exp_sub_sum(row, max);
    let inv = 1.0 / sum;
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// `row ← e^(row − max)`, returning the sum.
fn exp_sub_sum(row: &mut [f32], max: f32) -> f32 {
    let n = row.len() / 16 * 16;
    let mut acc = f32x16::ZERO;
    let vmax = f32x16::splat(max);
    for chunk in row[..n].chunks_exact_mut(16) {
        let e = (f32x16::from(&chunk[..]) - vmax).exp();
        chunk.copy_from_slice(e.as_array());
        acc += e;
    }
    let mut sum = acc.reduce_add();
    for s in &mut row[n..] {
        *s = (*s - max).exp();
        sum += *s;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::exp_sub_sum`] with AVX-512: `e^x` for `x = v − max ≤ 0` as Cephes' `expf` (`x = k·ln 2 + r`,
    /// a degree-6 polynomial in `r`, `2^k` by `scalef`), `x` clamped below at −88 (where `e^x` is below
    /// f32's normal range and its share of the sum nothing).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_sub_sum(row: &mut [f32], max: f32) -> f32 {
        let n = row.len() / 16 * 16;
        let c = |v: f32| _mm512_set1_ps(v);
        let (lo, vmax) = (c(-88.0), c(max));
        let one = c(1.0);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= row.len().
            let v = unsafe { _mm512_loadu_ps(row.as_ptr().add(i)) };
            let x = _mm512_max_ps(_mm512_sub_ps(v, vmax), lo);
            let (k, em1) = crate::simd::x86::expm1_parts(x);
            // e^r = 1 + r + r²·P(r)
            let er = _mm512_add_ps(em1, one);
            let e = _mm512_scalef_ps(er, k);
            acc = _mm512_add_ps(acc, e);
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(i), e) };
            i += 16;
        }
        let mut sum = _mm512_reduce_add_ps(acc);
        for s in &mut row[n..] {
            *s = (*s - max).exp();
            sum += *s;
        }
        sum
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` on one thread; `dst` row-major with row stride `dst_rs`, the others
/// given as (row, column) strides.
///
/// # Safety
/// Every view lies inside its allocation and `dst`'s elements are aliased by nothing else.
unsafe fn gemm_into(
    dims: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_strides: [usize; 2],
    rhs: *const f32,
    rhs_strides: [usize; 2],
) {
    // SAFETY: the caller's.
    unsafe {
        crate::gemm::gemm(
            dims,
            dst,
            [dst_rs, 1],
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
            false,
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values;

    /// The same attention in f64, position by position.
    fn reference(
        [q, k, v]: [&[f32]; 3],
        shape: &Shape,
        scale: f32,
        rotary: Option<&RotaryTables>,
        mask: Option<&[f32]>,
    ) -> Vec<f64> {
        let (b, t, h, heads) = (shape.batch, shape.len, shape.hidden, shape.heads);
        let hd = h / heads;
        let rot = |x: &[f32], ti: usize, s: f32| -> Vec<f64> {
            let x: Vec<f64> = x.iter().map(|&v| f64::from(v * s)).collect();
            let Some(rt) = rotary else { return x };
            let (r, half) = (rt.dim, rt.dim / 2);
            (0..hd)
                .map(|d| {
                    if d >= r {
                        return x[d];
                    }
                    let other = if d < half { -x[d + half] } else { x[d - half] };
                    x[d] * f64::from(rt.cos[ti * r + d]) + other * f64::from(rt.sin[ti * r + d])
                })
                .collect()
        };
        let mut out = vec![0.0f64; b * t * h];
        for bi in 0..b {
            for hi in 0..heads {
                let head = |src: &[f32], ti: usize, s: f32| {
                    rot(&src[(bi * t + ti) * h + hi * hd..][..hd], ti, s)
                };
                for i in 0..t {
                    let qi = head(q, i, scale);
                    let scores: Vec<f64> = (0..t)
                        .map(|j| {
                            let kj = head(k, j, 1.0);
                            let m = mask.map_or(0.0, |m| f64::from(m[bi * t + j]));
                            qi.iter().zip(&kj).map(|(a, c)| a * c).sum::<f64>() + m
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for (j, ej) in e.iter().enumerate() {
                        let vj = head(v, j, 1.0);
                        for d in 0..hd {
                            out[(bi * t + i) * h + hi * hd + d] += ej / sum * vj[d];
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn both_exponentials_match_f64() {
        let row: Vec<f32> = (0..37).map(|i| i as f32 * 0.7 - 20.0).collect();
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want: Vec<f64> = row
            .iter()
            .map(|&v| (f64::from(v) - f64::from(max)).exp())
            .collect();
        let mut portable = row.clone();
        let mut runs = vec![exp_sub_sum(&mut portable, max)];
        let mut outs = vec![portable];
        #[cfg(target_arch = "x86_64")]
        if crate::simd::avx512f() {
            let mut v = row.clone();
            // SAFETY: the CPU has AVX-512F.
            runs.push(unsafe { x86::exp_sub_sum(&mut v, max) });
            outs.push(v);
        }
        // Within 16 eps relative (wide's portable `exp` is a few ulp off at the far end of the row).
        for (path, (sum, out)) in runs.iter().zip(&outs).enumerate() {
            for (g, w) in out.iter().zip(&want) {
                let err = (f64::from(*g) - w).abs() / w / f64::from(f32::EPSILON);
                assert!(err <= 16.0, "path {path}: {g} vs {w} ({err:.1} eps)");
            }
            let total: f64 = want.iter().sum();
            assert!((f64::from(*sum) - total).abs() < 1e-5 * total);
        }
    }

    #[test]
    fn matches_the_reference_with_and_without_rotary_and_mask() {
        // Lengths below and above 16 lanes with a tail, partial rotary (16 of 32) and full (32 of 32).
        for (b, t, h, heads, r, masked) in [
            (2, 21, 64, 2, Some(16), true),
            (1, 40, 64, 2, Some(32), false),
            (3, 7, 96, 3, None, true),
        ] {
            let shape = Shape {
                batch: b,
                len: t,
                hidden: h,
                heads,
            };
            let n = b * t * h;
            let (q, k, v) = (test_values(n, 1), test_values(n, 2), test_values(n, 3));
            let rotary = r.map(|r| {
                let angle = |ti: usize, d: usize| ti as f32 * 0.1 / (1.0 + (d % (r / 2)) as f32);
                let table = |f: fn(f32) -> f32| {
                    (0..t)
                        .flat_map(|ti| (0..r).map(move |d| f(angle(ti, d))))
                        .collect::<Vec<f32>>()
                };
                RotaryTables {
                    cos: table(f32::cos),
                    sin: table(f32::sin),
                    dim: r,
                }
            });
            // The last row's final three keys masked (HF's finfo.min).
            let mask = masked.then(|| {
                (0..b * t)
                    .map(|i| {
                        if i / t == b - 1 && i % t >= t - 3 {
                            f32::MIN
                        } else {
                            0.0
                        }
                    })
                    .collect::<Vec<f32>>()
            });
            let scale = 0.125;
            let got = self_attention(
                [&q, &k, &v],
                &shape,
                scale,
                rotary.as_ref(),
                mask.as_deref(),
            );
            let want = reference(
                [&q, &k, &v],
                &shape,
                scale,
                rotary.as_ref(),
                mask.as_deref(),
            );
            let err = got
                .iter()
                .zip(&want)
                .map(|(&g, w)| (f64::from(g) - w).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5, "[{b}, {t}, {h}] / {heads} heads: off by {err}");
        }
    }
}
