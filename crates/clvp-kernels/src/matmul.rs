//! `y = x·Wᵀ + b` on the host for a weight kept `[out, in]` in f32 or bf16: the decoder's projections
//! while decoding on a CPU backend, where a step multiplies one to a few dozen rows by every weight
//! and the time goes to streaming the weights from memory.
//!
//! The outputs are split into one contiguous range per thread, so each thread streams its own rows of
//! `W` once per call; each pass of the inner loop multiplies four weight rows by up to four input rows
//! from registers. A bf16 weight is stored two values to a `u32` (element `2j` in the low half, `2j+1`
//! in the high half), so widening it to f32 is one shift or one mask per lane and the input is split
//! into its even and odd elements once per call. Products and sums are f32 (FMA where the CPU has it).

use crate::KernelError;
use crate::team;

/// How a [`PackedLinear`] stores its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32, as the checkpoint holds it: results equal a plain f32 matmul up to summation order.
    #[default]
    F32,
    /// bfloat16 (f32 rounded to nearest even, 8 significant bits): half the memory and half the bytes
    /// streamed per decoding step; each weight carries a relative rounding error up to 2⁻⁹.
    Bf16,
}

/// Multiply-adds below which a product runs on the calling thread.
const SERIAL_MACS: usize = 1 << 16;

/// Lanes of the portable inner loop.
const L: usize = 16;

/// Kernels: portable lanes without FMA, the same with FMA (AVX2), AVX-512 intrinsics.
const PLAIN: u8 = 0;
const LANES_FMA: u8 = 1;
const AVX512: u8 = 2;

#[derive(Debug, Clone)]
enum Data {
    F32(Vec<f32>),
    /// Rows of `in.div_ceil(2)` pairs.
    Bf16(Vec<u32>),
}

/// A linear layer's weight `[out, in]` and bias `[out]` held on the host for [`PackedLinear::forward`].
#[derive(Debug, Clone)]
pub struct PackedLinear {
    d_out: usize,
    d_in: usize,
    data: Data,
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// Pack `weight` (`[d_out, d_in]` row-major, PyTorch's `nn.Linear` layout) and `bias` (`[d_out]`).
    /// Returns `None` when the lengths do not match the shape.
    pub fn new(
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        d_out: usize,
        d_in: usize,
        precision: Precision,
    ) -> Option<Self> {
        if weight.len() != d_out * d_in || bias.as_ref().is_some_and(|b| b.len() != d_out) {
            return None;
        }
        let data = match precision {
            Precision::F32 => Data::F32(weight),
            Precision::Bf16 => {
                let pairs = d_in.div_ceil(2);
                let mut packed = Vec::with_capacity(d_out * pairs);
                for row in weight.chunks_exact(d_in.max(1)).take(d_out) {
                    for j in 0..pairs {
                        let lo = bf16_bits(row[2 * j]);
                        let hi = row.get(2 * j + 1).map_or(0, |&v| bf16_bits(v));
                        packed.push(u32::from(lo) | (u32::from(hi) << 16));
                    }
                }
                Data::Bf16(packed)
            }
        };
        Some(PackedLinear {
            d_out,
            d_in,
            data,
            bias,
        })
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.d_out, self.d_in)
    }

    /// How the weight is stored.
    pub fn precision(&self) -> Precision {
        match self.data {
            Data::F32(_) => Precision::F32,
            Data::Bf16(_) => Precision::Bf16,
        }
    }

    /// Bytes the weight and bias take.
    pub fn bytes(&self) -> usize {
        let w = match &self.data {
            Data::F32(v) => v.len() * 4,
            Data::Bf16(v) => v.len() * 4,
        };
        w + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// The weight as f32 `[out, in]` (bf16 values widened exactly).
    pub fn weight_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::Bf16(v) => {
                let pairs = self.d_in.div_ceil(2);
                let mut out = Vec::with_capacity(self.d_out * self.d_in);
                for row in v.chunks_exact(pairs.max(1)).take(self.d_out) {
                    for i in 0..self.d_in {
                        out.push(widen(row[i / 2], i % 2 == 1));
                    }
                }
                out
            }
        }
    }

    /// `x·Wᵀ + b` of `rows` input rows `x` (`[rows, in]`) → `[rows, out]`; an `x` of another length is an
    /// [`KernelError::Shape`].
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, KernelError> {
        let (d_out, d_in) = (self.d_out, self.d_in);
        if rows.checked_mul(d_in) != Some(x.len()) {
            return Err(KernelError::Shape(format!(
                "a projection of width {d_in} got {} values for {rows} rows",
                x.len()
            )));
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        let input = Input::new(x, rows, d_in, matches!(self.data, Data::Bf16(_)));
        let threads = rayon::current_num_threads();
        let chunks = if rows * d_out * d_in < SERIAL_MACS || threads == 1 || d_out < 8 {
            1
        } else {
            threads
        };
        let per_chunk = d_out.div_ceil(chunks).div_ceil(4) * 4;
        if chunks == 1 {
            let mut y = vec![0.0f32; rows * d_out];
            self.range(0, &input, &mut y);
            self.add_bias(&mut y, 0, rows);
            return Ok(y);
        }
        // Each thread computes one contiguous range of outputs for every row, `[rows, n]`; the
        // ranges are then laid side by side.
        let parts = team::map_parts(d_out.div_ceil(per_chunk), |k| {
            let o0 = k * per_chunk;
            let mut part = vec![0.0f32; rows * per_chunk.min(d_out - o0)];
            self.range(o0, &input, &mut part);
            self.add_bias(&mut part, o0, rows);
            part
        });
        if let [only] = &parts[..] {
            return Ok(only.clone());
        }
        let mut y = vec![0.0f32; rows * d_out];
        for (k, part) in parts.iter().enumerate() {
            let (o0, n) = (k * per_chunk, part.len() / rows);
            for (dst, src) in y.chunks_exact_mut(d_out).zip(part.chunks_exact(n)) {
                dst[o0..o0 + n].copy_from_slice(src);
            }
        }
        Ok(y)
    }

    /// Add the bias of outputs `o0..` to `part` (`[rows, n]`).
    fn add_bias(&self, part: &mut [f32], o0: usize, rows: usize) {
        let Some(b) = &self.bias else { return };
        let n = part.len() / rows.max(1);
        if n == 0 {
            return;
        }
        for row in part.chunks_exact_mut(n) {
            row.iter_mut()
                .zip(&b[o0..o0 + n])
                .for_each(|(v, b)| *v += b);
        }
    }

    /// Outputs `o0..o0 + part.len() / rows` of every row into `part` (`[rows, outputs]`).
    fn range(&self, o0: usize, input: &Input, part: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::avx512f() {
                // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
                return unsafe { self.range_avx512(o0, input, part) };
            }
            if crate::simd::avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA, the features the function is compiled for.
                return unsafe { self.range_avx2(o0, input, part) };
            }
        }
        self.range_with::<PLAIN>(o0, input, part)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn range_avx512(&self, o0: usize, input: &Input, part: &mut [f32]) {
        self.range_with::<AVX512>(o0, input, part)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn range_avx2(&self, o0: usize, input: &Input, part: &mut [f32]) {
        self.range_with::<LANES_FMA>(o0, input, part)
    }

    /// The outputs of [`Self::range`] with kernel `K` ([`PLAIN`], [`LANES_FMA`] or [`AVX512`]).
    #[inline(always)]
    fn range_with<const K: u8>(&self, o0: usize, input: &Input, part: &mut [f32]) {
        let rows = input.rows;
        let n = part.len() / rows.max(1);
        let mut o = 0;
        while o < n {
            // Four weight rows per pass; past the range's end the last row is repeated and dropped.
            let idx = [0, 1, 2, 3].map(|k| o0 + (o + k).min(n - 1));
            let mut r = 0;
            while r < rows {
                let block = match rows - r {
                    1 => self.block::<1, K>(idx, input, r),
                    2 => self.block::<2, K>(idx, input, r),
                    3 => self.block::<3, K>(idx, input, r),
                    _ => self.block::<4, K>(idx, input, r),
                };
                for (dr, sums) in block.iter().enumerate().take(rows - r) {
                    for (k, s) in sums.iter().enumerate().take(n - o) {
                        part[(r + dr) * n + o + k] = *s;
                    }
                }
                r += 4;
            }
            o += 4;
        }
    }

    /// Dot products of weight rows `idx` with input rows `r0..r0 + R` (fewer past the end: those
    /// repeat the last row). Result `[R][4]`, padded to 4 rows.
    #[inline(always)]
    fn block<const R: usize, const K: u8>(
        &self,
        idx: [usize; 4],
        input: &Input,
        r0: usize,
    ) -> [[f32; 4]; 4] {
        let mut out = [[0.0f32; 4]; 4];
        let rows: [usize; R] = std::array::from_fn(|i| r0 + i);
        match &self.data {
            Data::F32(w) => {
                let d = self.d_in;
                let wr = idx.map(|o| &w[o * d..(o + 1) * d]);
                let xr = rows.map(|r| &input.x[r * d..(r + 1) * d]);
                let sums = match K {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `range_avx512` (AVX-512F) is the only caller with this kernel.
                    AVX512 => unsafe { x86::dot_f32::<R>(wr, xr) },
                    LANES_FMA => dot_f32::<R, true>(wr, xr),
                    _ => dot_f32::<R, false>(wr, xr),
                };
                out[..R].copy_from_slice(&sums);
            }
            Data::Bf16(w) => {
                let p = self.d_in.div_ceil(2);
                let wr = idx.map(|o| &w[o * p..(o + 1) * p]);
                let even = rows.map(|r| &input.even[r * p..(r + 1) * p]);
                let odd = rows.map(|r| &input.odd[r * p..(r + 1) * p]);
                let sums = match K {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `range_avx512` (AVX-512F) is the only caller with this kernel.
                    AVX512 => unsafe { x86::dot_bf16::<R>(wr, even, odd) },
                    LANES_FMA => dot_bf16::<R, true>(wr, even, odd),
                    _ => dot_bf16::<R, false>(wr, even, odd),
                };
                out[..R].copy_from_slice(&sums);
            }
        }
        out
    }
}

/// The input rows, and for a bf16 weight their even and odd elements (`[rows, in.div_ceil(2)]`,
/// zero-padded).
struct Input<'a> {
    x: &'a [f32],
    rows: usize,
    even: Vec<f32>,
    odd: Vec<f32>,
}

impl<'a> Input<'a> {
    fn new(x: &'a [f32], rows: usize, d_in: usize, split: bool) -> Self {
        let (mut even, mut odd) = (Vec::new(), Vec::new());
        if split {
            let p = d_in.div_ceil(2);
            even.reserve(rows * p);
            odd.reserve(rows * p);
            for row in x.chunks_exact(d_in.max(1)).take(rows) {
                for j in 0..p {
                    even.push(row[2 * j]);
                    odd.push(row.get(2 * j + 1).copied().unwrap_or(0.0));
                }
            }
        }
        Input { x, rows, even, odd }
    }
}

#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    // `mul_add` is one instruction only where the caller enabled FMA (a libm call otherwise).
    if FMA { a.mul_add(b, c) } else { c + a * b }
}

/// `[R][4]` dot products of four f32 weight rows with `R` input rows.
#[inline(always)]
fn dot_f32<const R: usize, const FMA: bool>(w: [&[f32]; 4], x: [&[f32]; R]) -> [[f32; 4]; R] {
    let d = x.first().map_or(0, |r| r.len());
    let n = d / L * L;
    let mut acc = [[[0.0f32; L]; 4]; R];
    for j in (0..n).step_by(L) {
        let ws: [&[f32]; 4] = w.map(|row| &row[j..j + L]);
        for (a, xr) in acc.iter_mut().zip(&x) {
            let xs = &xr[j..j + L];
            for (ak, wk) in a.iter_mut().zip(&ws) {
                for l in 0..L {
                    ak[l] = fma::<FMA>(wk[l], xs[l], ak[l]);
                }
            }
        }
    }
    let mut out = [[0.0f32; 4]; R];
    for ((o, a), xr) in out.iter_mut().zip(&acc).zip(&x) {
        for ((ok, ak), wk) in o.iter_mut().zip(a).zip(&w) {
            let tail: f32 = wk[n..].iter().zip(&xr[n..d]).map(|(p, q)| p * q).sum();
            *ok = ak.iter().sum::<f32>() + tail;
        }
    }
    out
}

/// [`dot_f32`] for bf16 weight rows stored as pairs, against the inputs' even and odd elements.
#[inline(always)]
fn dot_bf16<const R: usize, const FMA: bool>(
    w: [&[u32]; 4],
    even: [&[f32]; R],
    odd: [&[f32]; R],
) -> [[f32; 4]; R] {
    let p = even.first().map_or(0, |r| r.len());
    let n = p / L * L;
    let mut acc = [[[0.0f32; L]; 4]; R];
    for j in (0..n).step_by(L) {
        let ws: [[f32; L]; 4] = w.map(|row| std::array::from_fn(|l| widen(row[j + l], false)));
        let wo: [[f32; L]; 4] = w.map(|row| std::array::from_fn(|l| widen(row[j + l], true)));
        for ((a, er), or) in acc.iter_mut().zip(&even).zip(&odd) {
            let (es, os) = (&er[j..j + L], &or[j..j + L]);
            for ((ak, we), wd) in a.iter_mut().zip(&ws).zip(&wo) {
                for l in 0..L {
                    ak[l] = fma::<FMA>(we[l], es[l], ak[l]);
                    ak[l] = fma::<FMA>(wd[l], os[l], ak[l]);
                }
            }
        }
    }
    let mut out = [[0.0f32; 4]; R];
    for (((o, a), er), or) in out.iter_mut().zip(&acc).zip(&even).zip(&odd) {
        for ((ok, ak), wk) in o.iter_mut().zip(a).zip(&w) {
            let tail: f32 = (n..p)
                .map(|j| widen(wk[j], false) * er[j] + widen(wk[j], true) * or[j])
                .sum();
            *ok = ak.iter().sum::<f32>() + tail;
        }
    }
    out
}

/// The AVX-512 kernels: [`dot_f32`] and [`dot_bf16`] with the weight rows prefetched ahead.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Bytes ahead of the loads that each weight row is prefetched.
    const AHEAD: usize = 1024;

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sum4<const R: usize>(acc: [[__m512; 4]; R]) -> [[f32; 4]; R] {
        acc.map(|a| a.map(|v| _mm512_reduce_add_ps(v)))
    }

    /// # Safety
    /// The CPU has AVX-512F; every row of `w` and `x` is at least `x[0].len()` long.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn dot_f32<const R: usize>(w: [&[f32]; 4], x: [&[f32]; R]) -> [[f32; 4]; R] {
        let d = x.first().map_or(0, |r| r.len());
        let n = d / 16 * 16;
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let (wp, xp) = (w.map(<[f32]>::as_ptr), x.map(<[f32]>::as_ptr));
        let mut j = 0;
        while j < n {
            // SAFETY: j + 16 <= n <= every row's length; a prefetch never faults.
            unsafe {
                let ws = wp.map(|p| {
                    _mm_prefetch::<_MM_HINT_T0>(p.add(j).cast::<i8>().wrapping_add(AHEAD));
                    _mm512_loadu_ps(p.add(j))
                });
                for (a, xr) in acc.iter_mut().zip(xp) {
                    let xs = _mm512_loadu_ps(xr.add(j));
                    for (ak, wk) in a.iter_mut().zip(ws) {
                        *ak = _mm512_fmadd_ps(wk, xs, *ak);
                    }
                }
            }
            j += 16;
        }
        let mut out = sum4(acc);
        for (o, xr) in out.iter_mut().zip(&x) {
            for (ok, wk) in o.iter_mut().zip(&w) {
                *ok += wk[n..d]
                    .iter()
                    .zip(&xr[n..d])
                    .map(|(p, q)| p * q)
                    .sum::<f32>();
            }
        }
        out
    }

    /// # Safety
    /// The CPU has AVX-512F; every row of `w`, `even` and `odd` is at least `even[0].len()` long.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn dot_bf16<const R: usize>(
        w: [&[u32]; 4],
        even: [&[f32]; R],
        odd: [&[f32]; R],
    ) -> [[f32; 4]; R] {
        let p = even.first().map_or(0, |r| r.len());
        let n = p / 16 * 16;
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let high = _mm512_set1_epi32(0xffff_0000_u32 as i32);
        let (wp, ep, op) = (
            w.map(<[u32]>::as_ptr),
            even.map(<[f32]>::as_ptr),
            odd.map(<[f32]>::as_ptr),
        );
        let mut j = 0;
        while j < n {
            // SAFETY: j + 16 <= n <= every row's length; a prefetch never faults.
            unsafe {
                let ws = wp.map(|p| {
                    _mm_prefetch::<_MM_HINT_T0>(p.add(j).cast::<i8>().wrapping_add(AHEAD));
                    _mm512_loadu_si512(p.add(j).cast())
                });
                let lo = ws.map(|v| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)));
                let hi = ws.map(|v| _mm512_castsi512_ps(_mm512_and_si512(v, high)));
                for ((a, er), or) in acc.iter_mut().zip(ep).zip(op) {
                    let (es, os) = (_mm512_loadu_ps(er.add(j)), _mm512_loadu_ps(or.add(j)));
                    for ((ak, l), h) in a.iter_mut().zip(lo).zip(hi) {
                        *ak = _mm512_fmadd_ps(h, os, _mm512_fmadd_ps(l, es, *ak));
                    }
                }
            }
            j += 16;
        }
        let mut out = sum4(acc);
        for ((o, er), or) in out.iter_mut().zip(&even).zip(&odd) {
            for (ok, wk) in o.iter_mut().zip(&w) {
                *ok += (n..p)
                    .map(|j| super::widen(wk[j], false) * er[j] + super::widen(wk[j], true) * or[j])
                    .sum::<f32>();
            }
        }
        out
    }
}

/// One bf16 of a pair as f32 (exact).
#[inline(always)]
fn widen(pair: u32, high: bool) -> f32 {
    f32::from_bits(if high { pair & 0xffff_0000 } else { pair << 16 })
}

/// `v` rounded to the nearest bf16 (ties to even), as bits; NaN stays NaN.
fn bf16_bits(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &[f32], b: Option<&[f32]>, x: &[f32], rows: usize, d_out: usize) -> Vec<f32> {
        let d_in = w.len() / d_out;
        let mut y = Vec::with_capacity(rows * d_out);
        for r in 0..rows {
            for o in 0..d_out {
                let s: f64 = (0..d_in)
                    .map(|i| f64::from(w[o * d_in + i]) * f64::from(x[r * d_in + i]))
                    .sum();
                y.push((s + b.map_or(0.0, |b| f64::from(b[o]))) as f32);
            }
        }
        y
    }

    use crate::test_values as values;

    #[test]
    fn an_input_of_the_wrong_length_is_an_error() {
        let lin = PackedLinear::new(vec![1.0; 6], None, 2, 3, Precision::F32).unwrap();
        let err = lin
            .forward(&[1.0; 7], 2)
            .expect_err("7 values for 2 rows of 3");
        assert!(
            err.to_string().contains("width 3 got 7 values for 2 rows"),
            "{err}"
        );
        assert_eq!(lin.forward(&[1.0; 6], 2).unwrap(), vec![3.0; 4]);
    }

    /// Every path (1–4 input rows per pass, row and column tails, one or several threads) against an
    /// f64 reference: f32 within summation-order rounding; bf16 exactly as an f32 product of the
    /// rounded weights.
    #[test]
    fn matches_the_reference_in_both_precisions() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for &(d_out, d_in) in &[(1, 1), (7, 33), (64, 64), (130, 257), (600, 128)] {
            for rows in [1, 2, 3, 4, 5, 9] {
                let w = values(d_out * d_in, (d_out * 31 + d_in) as u64);
                let b = values(d_out, 5);
                let x = values(rows * d_in, rows as u64 + 11);
                for precision in [Precision::F32, Precision::Bf16] {
                    let lin = PackedLinear::new(w.clone(), Some(b.clone()), d_out, d_in, precision)
                        .unwrap();
                    let rounded = lin.weight_f32();
                    if precision == Precision::F32 {
                        assert_eq!(rounded, w);
                    } else {
                        for (r, v) in rounded.iter().zip(&w) {
                            assert!((r - v).abs() <= v.abs() * 2f32.powi(-8), "{r} vs {v}");
                        }
                    }
                    let want = reference(&rounded, Some(&b), &x, rows, d_out);
                    for got in [
                        lin.forward(&x, rows).unwrap(),
                        pool.install(|| lin.forward(&x, rows)).unwrap(),
                    ] {
                        assert_eq!(got.len(), want.len());
                        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                            let tol = 1e-5 * (d_in as f32).sqrt().max(1.0);
                            assert!(
                                (g - e).abs() <= tol,
                                "{precision:?} {d_out}x{d_in} rows {rows} [{i}]: {g} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_mismatched_lengths() {
        assert!(PackedLinear::new(vec![0.0; 6], None, 2, 2, Precision::F32).is_none());
        assert!(PackedLinear::new(vec![0.0; 4], Some(vec![0.0]), 2, 2, Precision::Bf16).is_none());
    }
}
