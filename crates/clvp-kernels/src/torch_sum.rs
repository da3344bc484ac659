//! torch's float32 `sum` order, and with it EnCodec's per-chunk RMS scale of `_encode_frame` (transformers and Meta's `encodec` alike:
//! `1e-8 + sqrt(mean_t(mean_c(x)²))`) computed in PyTorch's order of float32 operations, so that it is torch's value
//! to the bit: the scale is written into `.ecdc` files as a float32, and a sum over 48000 samples in another order
//! differs in the last bits (1–2 ulp measured at full size).
//!
//! torch's CPU `mean` over a contiguous row is `sum / n` with the sum of `SumKernel.cpp`'s `vectorized_inner_sum`:
//! vectors of 8 lanes (the AVX2 kernel, which x86 CPUs with AVX-512 run too: the sum has no AVX-512 variant; the
//! generic build has 8 lanes as well), summed 4 at a time (`row_sum`'s ILP) into a 4-level cascade of chunks of 16
//! (`multi_row_sum`), the lanes then added in order after the scalar tail. This is torch with **one thread**: with
//! more, torch splits a row of more than 32768 samples (its grain) into one cascade per thread and adds those, so
//! Meta's own package writes scales one ulp apart with 1 and 2 threads (docs/encodec.md, "Meta's checkpoints").

use crate::KernelError;

/// Lanes of torch's float vector in the sum kernel.
const LANES: usize = 8;
/// `row_sum`'s `ilp_factor`.
const ILP: usize = 4;
/// `multi_row_sum`'s `num_levels`.
const LEVELS: usize = 4;

/// `c10::utils::CeilLog2` (1 for 0, 1, 2).
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}

/// `multi_row_sum<T, ILP>` over `size` groups of `ILP` consecutive elements of `x`, an element being `W` lanes:
/// `W = LANES` is `Vectorized<float>` (the vectorised path), `W = 1` a scalar (rows shorter than a vector).
fn multi_row_sum<const W: usize>(x: &[f32], size: usize) -> [[f32; W]; ILP] {
    let level_power = 4.max(ceil_log2(size) / LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; W]; ILP]; LEVELS];
    let add_row = |acc: &mut [[f32; W]; ILP], i: usize| {
        for (k, a) in acc.iter_mut().enumerate() {
            let v = &x[(i * ILP + k) * W..(i * ILP + k + 1) * W];
            for (s, e) in a.iter_mut().zip(v) {
                *s += e;
            }
        }
    };
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            add_row(&mut acc[0], i);
            i += 1;
        }
        for j in 1..LEVELS {
            let (lower, upper) = acc.split_at_mut(j);
            for (hi, lo) in upper[0].iter_mut().zip(lower[j - 1].iter_mut()) {
                for (h, l) in hi.iter_mut().zip(lo.iter_mut()) {
                    *h += *l;
                    *l = 0.0;
                }
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        add_row(&mut acc[0], i);
        i += 1;
    }
    let (first, rest) = acc.split_at_mut(1);
    for level in rest.iter() {
        for (a, l) in first[0].iter_mut().zip(level) {
            for (s, e) in a.iter_mut().zip(l) {
                *s += e;
            }
        }
    }
    first[0]
}

/// torch's single-threaded float32 `sum` of a contiguous row: `cascade_sum`'s `vectorized_inner_sum`, or for a
/// row shorter than one vector its `scalar_inner_sum` (`row_sum` over scalars: 4 interleaved partial sums).
pub fn torch_sum(x: &[f32]) -> f32 {
    if x.len() < LANES {
        let size_ilp = x.len() / ILP;
        let mut partial = multi_row_sum::<1>(x, size_ilp);
        for &e in &x[size_ilp * ILP..] {
            partial[0][0] += e;
        }
        let mut acc = partial[0][0];
        for p in &partial[1..] {
            acc += p[0];
        }
        return acc;
    }
    let vec_size = x.len() / LANES;
    let size_ilp = vec_size / ILP;
    let mut partial = multi_row_sum::<LANES>(x, size_ilp);
    let (first, rest) = partial.split_at_mut(1);
    for v in size_ilp * ILP..vec_size {
        for (s, e) in first[0].iter_mut().zip(&x[v * LANES..(v + 1) * LANES]) {
            *s += e;
        }
    }
    for p in rest.iter() {
        for (s, e) in first[0].iter_mut().zip(p) {
            *s += e;
        }
    }
    let mut acc = 0.0f32;
    for &e in &x[vec_size * LANES..] {
        acc += e;
    }
    for &p in &first[0] {
        acc += p;
    }
    acc
}

/// `mean_t(mean_c(x)²)` of one chunk, planar `[channels][len]` in `x`, as torch computes it: `mean_c` as
/// `sum(dim=1) / C` (channels added in order from 0), squared, then [`torch_sum`]` / len`, every step in
/// float32. `x` must hold `channels × len` values.
pub fn mean_square(x: &[f32], channels: usize, len: usize) -> Result<f32, KernelError> {
    let c = channels.max(1);
    if c.checked_mul(len) != Some(x.len()) {
        return Err(KernelError::Shape(format!(
            "mean_square: {} values for {channels} channels × {len} samples",
            x.len()
        )));
    }
    let squares: Vec<f32> = (0..len)
        .map(|t| {
            let mut s = 0.0f32;
            for ch in 0..c {
                s += x[ch * len + t];
            }
            let m = s / c as f32;
            m * m
        })
        .collect();
    Ok(torch_sum(&squares) / len.max(1) as f32)
}

/// EnCodec's scale of one chunk (`_encode_frame`): `sqrt(`[`mean_square`]`) + 1e-8` in float32. The square
/// root is correctly rounded here; torch 2.15's float32 `sqrt` is not (1 ulp off for about 1 in 6 inputs), so
/// the scale is torch's within one ulp, the mean square to the bit.
pub fn rms_scale(x: &[f32], channels: usize, len: usize) -> Result<f32, KernelError> {
    Ok(mean_square(x, channels, len)?.sqrt() + 1e-8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Close to the exact (f64) sum at every length class: the scalar path, a tail, vectors outside the ILP groups
    /// and several cascade levels. torch's own bits are checked by `tests/torch_sum.rs` against
    /// `xtask/python/ref_torch_sum.py`'s fixture.
    #[test]
    fn sums_are_close_to_the_f64_sum() {
        for n in [0usize, 1, 3, 7, 8, 37, 1000, 48_000, 300_000] {
            let x = crate::test_values(n, n as u64 + 1);
            let s = torch_sum(&x);
            let exact: f64 = x.iter().map(|&v| f64::from(v)).sum();
            let scale: f64 = x
                .iter()
                .map(|&v| f64::from(v).abs())
                .sum::<f64>()
                .max(1e-30);
            assert!(
                (f64::from(s) - exact).abs() <= 1e-6 * scale,
                "n = {n}: {s} vs {exact}"
            );
        }
    }

    #[test]
    fn scale_of_silence_is_the_epsilon() {
        assert_eq!(rms_scale(&[0.0; 10], 2, 5).ok(), Some(1e-8));
        assert_eq!(rms_scale(&[0.5; 4], 1, 4).ok(), Some(0.5 + 1e-8));
        assert!(rms_scale(&[0.5; 4], 2, 4).is_err(), "8 values needed");
    }
}
