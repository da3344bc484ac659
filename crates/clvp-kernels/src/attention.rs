//! The decoder's self-attention over a KV cache kept on the host, for the host projections: one step
//! of a few rows attends to at most a few hundred cached positions per head, which as tensor ops is a
//! tiny matmul per head and layer, each with its dispatch and copies, costing more than the arithmetic.

use crate::team;
use wide::f32x16;

/// Per-layer keys and values `[B, heads, capacity, head_dim]`, row-major.
#[derive(Debug, Clone)]
pub struct HostKv {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    batch: usize,
    heads: usize,
    capacity: usize,
    head_dim: usize,
}

impl HostKv {
    pub fn new(
        layers: usize,
        batch: usize,
        heads: usize,
        capacity: usize,
        head_dim: usize,
    ) -> Self {
        let n = batch * heads * capacity * head_dim;
        HostKv {
            keys: (0..layers).map(|_| vec![0.0; n]).collect(),
            values: (0..layers).map(|_| vec![0.0; n]).collect(),
            batch,
            heads,
            capacity,
            head_dim,
        }
    }

    /// Keep rows `indices`, in that order; each must be `< batch` (the caller, clvp-nn's `KvCache::select_rows`,
    /// checks).
    pub fn select_rows(&mut self, indices: &[usize]) {
        use rayon::prelude::*;
        let row = self.heads * self.capacity * self.head_dim;
        // Buffers in parallel: expanding a prefill to 16 rows writes ≈ 0.5 GB of fresh pages at full
        // size, and their first touch, not the copy, is most of the time.
        self.keys
            .par_iter_mut()
            .chain(self.values.par_iter_mut())
            .for_each(|buf| {
                let mut out = Vec::with_capacity(indices.len() * row);
                for &i in indices {
                    out.extend_from_slice(&buf[i * row..(i + 1) * row]);
                }
                *buf = out;
            });
        self.batch = indices.len();
    }

    /// Layer `layer`'s attention for `t` new positions after `past` cached ones: `qkv` is the fused
    /// projection `[B·t, 3·hidden]` (q, k, v; q not yet scaled). The new keys and values are written to
    /// the cache, and each query attends (scaled by `head_dim^-½`, causally) to positions
    /// `0..=past + i`. Returns the heads merged, `[B·t, hidden]`.
    pub fn attend(&mut self, layer: usize, past: usize, t: usize, qkv: &[f32]) -> Vec<f32> {
        let (heads, hd, cap) = (self.heads, self.head_dim, self.capacity);
        let hidden = heads * hd;
        let row = heads * cap * hd;
        let (keys, values) = (&mut self.keys[layer], &mut self.values[layer]);
        for (b, rows) in qkv.chunks_exact(t * 3 * hidden).enumerate() {
            for (i, r) in rows.chunks_exact(3 * hidden).enumerate() {
                for h in 0..heads {
                    let at = b * row + (h * cap + past + i) * hd;
                    keys[at..at + hd].copy_from_slice(&r[hidden + h * hd..hidden + (h + 1) * hd]);
                    values[at..at + hd]
                        .copy_from_slice(&r[2 * hidden + h * hd..2 * hidden + (h + 1) * hd]);
                }
            }
        }
        let step = Step {
            qkv,
            keys,
            values,
            past,
            t,
            heads,
            hd,
            row,
            scale: (hd as f64).powf(-0.5) as f32,
        };
        let mut merged = vec![0.0f32; self.batch * t * hidden];
        let chunk = (t * hidden).max(1);
        if self.batch * heads * (past + t) * hd < 1 << 16 {
            merged
                .chunks_mut(chunk)
                .enumerate()
                .for_each(|(b, out)| step.row(b, out));
        } else {
            // Contiguous ranges of rows, one per thread of the decoding team.
            let per = self.batch.div_ceil(rayon::current_num_threads().max(1));
            let parts = team::map_parts(self.batch.div_ceil(per), |k| {
                let rows = k * per..((k + 1) * per).min(self.batch);
                let mut out = vec![0.0f32; rows.len() * chunk];
                for (b, o) in rows.zip(out.chunks_mut(chunk)) {
                    step.row(b, o);
                }
                out
            });
            for (dst, part) in merged.chunks_mut(per * chunk).zip(parts) {
                dst.copy_from_slice(&part);
            }
        }
        merged
    }
}

/// One attention call's inputs.
struct Step<'a> {
    qkv: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    past: usize,
    t: usize,
    heads: usize,
    hd: usize,
    /// Cache values per batch row: `heads · capacity · head_dim`.
    row: usize,
    scale: f32,
}

impl Step<'_> {
    /// Batch row `b`'s merged heads `[t, hidden]` into `out`, with the widest vectors the CPU has.
    fn row(&self, b: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::avx512f() {
                // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
                return unsafe { self.row_avx512(b, out) };
            }
            if crate::simd::avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA, the features the function is compiled for.
                return unsafe { self.row_avx2(b, out) };
            }
        }
        self.row_lanes(b, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn row_avx512(&self, b: usize, out: &mut [f32]) {
        self.row_lanes(b, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2(&self, b: usize, out: &mut [f32]) {
        self.row_lanes(b, out)
    }

    #[inline(always)]
    fn row_lanes(&self, b: usize, out: &mut [f32]) {
        let (heads, hd, t, past) = (self.heads, self.hd, self.t, self.past);
        let hidden = heads * hd;
        let cap = self.row / hidden.max(1);
        let mut probs = vec![0.0f32; past + t];
        let mut q = vec![0.0f32; hd];
        for i in 0..t {
            let r = &self.qkv[(b * t + i) * 3 * hidden..];
            for h in 0..heads {
                for (qd, x) in q.iter_mut().zip(&r[h * hd..(h + 1) * hd]) {
                    *qd = x * self.scale;
                }
                let base = b * self.row + h * cap * hd;
                let n = past + i + 1;
                let ks = &self.keys[base..base + n * hd];
                let vs = &self.values[base..base + n * hd];
                let p = &mut probs[..n];
                for (s, k) in p.iter_mut().zip(ks.chunks_exact(hd)) {
                    *s = dot(&q, k);
                }
                softmax_in_place(p);
                let o = &mut out[i * hidden + h * hd..i * hidden + (h + 1) * hd];
                for (w, v) in p.iter().zip(vs.chunks_exact(hd)) {
                    o.iter_mut().zip(v).for_each(|(o, v)| *o += w * v);
                }
            }
        }
    }
}

/// `a·b` over 16 partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// `softmax` over `p` in place (max subtracted, exponentials vectorised, each divided by the sum).
fn softmax_in_place(p: &mut [f32]) {
    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut chunks = p.chunks_exact_mut(16);
    for c in &mut chunks {
        let mut lanes = [0.0f32; 16];
        lanes.copy_from_slice(c);
        c.copy_from_slice(&(f32x16::from(lanes) - max).exp().to_array());
    }
    for v in chunks.into_remainder() {
        *v = (*v - max).exp();
    }
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_values as values;

    /// `softmax(q·kᵀ/√hd + causal)·v` in f64 over the whole history `qkv_steps` (`[B, T, 3H]` rows).
    fn reference(qkv: &[f32], b: usize, t: usize, heads: usize, hd: usize) -> Vec<f64> {
        let hidden = heads * hd;
        let at = |bi: usize, ti: usize, part: usize, h: usize, d: usize| {
            f64::from(qkv[(bi * t + ti) * 3 * hidden + part * hidden + h * hd + d])
        };
        let mut out = vec![0.0; b * t * hidden];
        for bi in 0..b {
            for i in 0..t {
                for h in 0..heads {
                    let s: Vec<f64> = (0..=i)
                        .map(|j| {
                            (0..hd)
                                .map(|d| at(bi, i, 0, h, d) * at(bi, j, 1, h, d))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hd {
                        out[(bi * t + i) * hidden + h * hd + d] =
                            (0..=i).map(|j| e[j] / z * at(bi, j, 2, h, d)).sum();
                    }
                }
            }
        }
        out
    }

    /// A prefill then single steps, on head sizes with and without a 16-lane tail, on batches below
    /// and above the size whose rows are split across threads, and after reordering the rows, against
    /// an f64 reference over the same history.
    #[test]
    fn cached_steps_match_the_reference() {
        for (heads, hd, b, t, prefill) in [(2, 4, 3, 7, 4), (3, 40, 3, 7, 4), (4, 64, 5, 60, 56)] {
            let hidden = heads * hd;
            let qkv = values(b * t * 3 * hidden, hd as u64);
            let rows = |bi: usize, range: std::ops::Range<usize>| {
                qkv[(bi * t + range.start) * 3 * hidden..(bi * t + range.end) * 3 * hidden].to_vec()
            };
            let mut kv = HostKv::new(2, b, heads, t + 2, hd);
            let mut got = vec![vec![Vec::new(); t]; b];
            let mut past = 0;
            for (start, len) in std::iter::once((0, prefill)).chain((prefill..t).map(|i| (i, 1))) {
                let input: Vec<f32> = (0..b).flat_map(|bi| rows(bi, start..start + len)).collect();
                let out = kv.attend(1, past, len, &input);
                for (bi, history) in got.iter_mut().enumerate() {
                    for i in 0..len {
                        let at = (bi * len + i) * hidden;
                        history[start + i] = out[at..at + hidden].to_vec();
                    }
                }
                past += len;
            }
            let want = reference(&qkv, b, t, heads, hd);
            for (bi, history) in got.iter().enumerate() {
                for (i, row) in history.iter().enumerate() {
                    for (d, g) in row.iter().enumerate() {
                        let w = want[(bi * t + i) * hidden + d];
                        assert!(
                            (f64::from(*g) - w).abs() < 1e-5,
                            "row {bi} pos {i} [{d}]: {g} vs {w}"
                        );
                    }
                }
            }
            // Rows reordered (and one repeated): the next step attends to each chosen row's history.
            kv.select_rows(&[2, 0, 2]);
            let next = values(3 * 3 * hidden, 99);
            let out = kv.attend(1, past, 1, &next);
            let mut again = HostKv::new(2, 1, heads, t + 2, hd);
            for (r, &src) in [2, 0, 2].iter().enumerate() {
                let history = rows(src, 0..t);
                again.attend(1, 0, t, &history);
                let one = again.attend(1, t, 1, &next[r * 3 * hidden..(r + 1) * 3 * hidden]);
                assert_eq!(
                    one,
                    out[r * hidden..(r + 1) * hidden],
                    "row {r} after select_rows"
                );
                again = HostKv::new(2, 1, heads, t + 2, hd);
            }
        }
    }
}
