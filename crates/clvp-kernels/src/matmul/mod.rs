//! `y = x·Wᵀ + b` on the host for a weight kept `[out, in]` in f32, bf16 or int8: the decoder's projections
//! while decoding on a CPU backend, where a step multiplies one to a few dozen rows by every weight
//! and the time goes to streaming the weights from memory.
//!
//! The outputs are split into one contiguous range per thread, so each thread streams its own rows of
//! `W` once per call; each pass of the inner loop multiplies four weight rows by up to four input rows
//! from registers. A bf16 weight is stored two values to a `u32` (element `2j` in the low half, `2j+1`
//! in the high half), so widening it to f32 is one shift or one mask per lane and the input is split
//! into its even and odd elements once per call. An int8 weight is one signed byte per value and one f32
//! scale per output row (weight-only, symmetric, per output channel: `w ≈ q · scale`); the bytes are widened
//! to f32 in registers and the row's sum is scaled once. Products and sums are f32 (FMA where the CPU has it).

mod dot;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use dot::{dot, dot_bf16};

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
    /// int8 with one f32 scale per output row (`scale = max|w_row| / 127`, `q = round(w / scale)`,
    /// ties to even): a quarter of f32's memory and bytes streamed; each weight carries an absolute
    /// rounding error up to half its row's scale. The activations stay f32.
    Int8,
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
    /// Rows of `in` signed bytes, and each row's scale.
    Int8 {
        q: Vec<i8>,
        scale: Vec<f32>,
    },
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
    /// Returns `None` when the lengths do not match the shape, or, for [`Precision::Int8`], when a
    /// weight is not finite (it has no int8 value).
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
            Precision::Int8 => {
                let (q, scale) = quantize_rows(&weight, d_out, d_in)?;
                Data::Int8 { q, scale }
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
            Data::Int8 { .. } => Precision::Int8,
        }
    }

    /// Bytes the weight and bias take.
    pub fn bytes(&self) -> usize {
        let w = match &self.data {
            Data::F32(v) => v.len() * 4,
            Data::Bf16(v) => v.len() * 4,
            Data::Int8 { q, scale } => q.len() + scale.len() * 4,
        };
        w + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// The weight as f32 `[out, in]` (bf16 values widened exactly, int8 values times their row's scale).
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
            Data::Int8 { q, scale } => q
                .chunks_exact(self.d_in.max(1))
                .zip(scale)
                .flat_map(|(row, &s)| row.iter().map(move |&v| f32::from(v) * s))
                .take(self.d_out * self.d_in)
                .collect(),
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

    /// [`Self::forward`] on one thread through the portable kernel (`fma`: the FMA variant), whatever
    /// the CPU has: the tests' way to reach the fallbacks on an AVX-512 machine.
    #[cfg(test)]
    fn forward_portable(&self, x: &[f32], rows: usize, fma: bool) -> Vec<f32> {
        let input = Input::new(x, rows, self.d_in, matches!(self.data, Data::Bf16(_)));
        let mut y = vec![0.0f32; rows * self.d_out];
        if fma {
            self.range_with::<LANES_FMA>(0, &input, &mut y);
        } else {
            self.range_with::<PLAIN>(0, &input, &mut y);
        }
        self.add_bias(&mut y, 0, rows);
        y
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
                    AVX512 => unsafe {
                        x86::dot_f32::<R>(wr, xr, next_block(w, d, 16, idx, input, r0))
                    },
                    LANES_FMA => dot::<f32, R, true>(wr, xr),
                    _ => dot::<f32, R, false>(wr, xr),
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
                    AVX512 => unsafe {
                        x86::dot_bf16::<R>(wr, even, odd, next_block(w, p, 16, idx, input, r0))
                    },
                    LANES_FMA => dot_bf16::<R, true>(wr, even, odd),
                    _ => dot_bf16::<R, false>(wr, even, odd),
                };
                out[..R].copy_from_slice(&sums);
            }
            Data::Int8 { q, scale } => {
                let d = self.d_in;
                let wr = idx.map(|o| &q[o * d..(o + 1) * d]);
                let xr = rows.map(|r| &input.x[r * d..(r + 1) * d]);
                let sums = match K {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `range_avx512` (AVX-512F) is the only caller with this kernel.
                    AVX512 => unsafe {
                        x86::dot_i8::<R>(wr, xr, next_block(q, d, 64, idx, input, r0))
                    },
                    LANES_FMA => dot::<i8, R, true>(wr, xr),
                    _ => dot::<i8, R, false>(wr, xr),
                };
                let s = idx.map(|o| scale[o]);
                for (o, row) in out.iter_mut().zip(&sums) {
                    for ((v, sum), s) in o.iter_mut().zip(row).zip(s) {
                        *v = sum * s;
                    }
                }
            }
        }
        out
    }
}

/// How far ahead of the block being multiplied [`next_block`] prefetches, at least (bytes).
#[cfg(target_arch = "x86_64")]
const NEXT_BYTES: usize = 32 << 10;

/// What the block of weight rows `idx` (`len` elements each) prefetches of a later block while it multiplies
/// input rows `r0..r0 + 4`: the block of 4 rows that starts at least one block and [`NEXT_BYTES`] after `idx[0]`.
/// Each of the current block's passes over its inputs takes an equal share of it, spread over the pass's loop
/// iterations (`per_iteration` elements each). Past the weight's end the addresses are only prefetched, never
/// read.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn next_block<T>(
    w: &[T],
    len: usize,
    per_iteration: usize,
    idx: [usize; 4],
    input: &Input,
    r0: usize,
) -> x86::Next {
    let row_bytes = len * std::mem::size_of::<T>();
    let passes = input.rows.div_ceil(4).max(1);
    let share = (4 * row_bytes).div_ceil(passes);
    let iterations = (len / per_iteration).max(1);
    let bytes = share.div_ceil(iterations).div_ceil(64) * 64;
    // At least one block ahead, and at least NEXT_BYTES: a block of short rows is done before its
    // successor's lines could arrive from memory.
    let ahead = (NEXT_BYTES / row_bytes.max(1)).max(4).div_ceil(4) * 4;
    let at = w
        .as_ptr()
        .cast::<i8>()
        .wrapping_add((idx[0] + ahead) * row_bytes + r0 / 4 * share);
    x86::Next { at, bytes }
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

/// One bf16 of a pair as f32 (exact).
#[inline(always)]
fn widen(pair: u32, high: bool) -> f32 {
    f32::from_bits(if high { pair & 0xffff_0000 } else { pair << 16 })
}

/// `v` rounded to the nearest bf16 (ties to even), as bits; NaN stays NaN.
fn bf16_bits(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

/// Symmetric per-row int8 quantisation of `[d_out, d_in]`: each row's bytes and scale; `None` if a
/// weight is not finite. A row of zeros gets scale 0.
fn quantize_rows(w: &[f32], d_out: usize, d_in: usize) -> Option<(Vec<i8>, Vec<f32>)> {
    let mut q = Vec::with_capacity(d_out * d_in);
    let mut scales = Vec::with_capacity(d_out);
    for row in w.chunks_exact(d_in.max(1)).take(d_out) {
        if row.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        // |v / scale| <= 127 up to one rounding; the clamp keeps that rounding inside the range.
        q.extend(row.iter().map(|&v| {
            if scale > 0.0 {
                (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8
            } else {
                0
            }
        }));
        scales.push(scale);
    }
    // d_in == 0: no rows were read; every row is empty.
    if d_in == 0 {
        scales.resize(d_out, 0.0);
    }
    Some((q, scales))
}
