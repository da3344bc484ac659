//! The LSTM recurrence as one host loop over plain `f32` slices, `torch.nn.LSTM`'s cell
//! (`c = σ(f)·c + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`, gates i, f, g, o).
//!
//! Every step depends on the last, and with a batch of one or two it is a `[B, H]·[H, 4H]` product
//! and a few thousand scalar gate updates: as tensor ops that is a dozen dispatches and allocations
//! per step, which cost more than the arithmetic. Here the hidden units are split across the threads
//! of the pool, each thread keeps its share of the recurrent matrix hot in its own cache for the
//! whole sequence, and the threads meet once per step at a spin barrier.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Hidden units per thread below which one thread does everything (the barrier would cost more).
const MIN_UNITS_PER_THREAD: usize = 64;

/// The sequence's inputs and weights, row-major.
pub(crate) struct Recurrence<'a> {
    /// `x·W_ihᵀ + b_ih + b_hh` of every step: `[T, B, 4H]`.
    pub projected: &'a [f32],
    /// `W_hh` as PyTorch stores it: `[4H, H]`.
    pub w_hh: &'a [f32],
    /// Steps, batch and hidden size.
    pub steps: usize,
    pub batch: usize,
    pub hidden: usize,
}

/// Output `[T, B, H]` and the state `(h, c)` (`[B, H]` each) after the last step.
pub(crate) struct Run {
    pub out: Vec<f32>,
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

impl Recurrence<'_> {
    /// Run every step from `(h, c)` on up to `threads` threads.
    pub fn run(&self, h: Vec<f32>, c: Vec<f32>, threads: usize) -> Run {
        let (b, hd) = (self.batch, self.hidden);
        debug_assert_eq!(self.projected.len(), self.steps * b * 4 * hd);
        debug_assert_eq!(self.w_hh.len(), 4 * hd * hd);
        let n = threads.clamp(1, (hd / MIN_UNITS_PER_THREAD).max(1));
        let chunk = hd.div_ceil(n);
        let ranges: Vec<(usize, usize)> = (0..n)
            .map(|k| (k * chunk, ((k + 1) * chunk).min(hd)))
            .filter(|(u0, u1)| u0 < u1)
            .collect();
        // The hidden state, double-buffered: step s reads buffer s % 2 and writes the other, so one
        // barrier per step orders every write before every read of the next step.
        let shared: [Vec<AtomicU32>; 2] = [
            h.iter().map(|v| AtomicU32::new(v.to_bits())).collect(),
            (0..b * hd).map(|_| AtomicU32::new(0)).collect(),
        ];
        let barrier = SpinBarrier::new(ranges.len());
        let work = |&(u0, u1): &(usize, usize)| {
            let c0: Vec<f32> = (0..b)
                .flat_map(|bi| c[bi * hd + u0..bi * hd + u1].iter().copied())
                .collect();
            self.units(u0, u1, c0, &shared, &barrier)
        };
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .skip(1)
                .map(|r| scope.spawn(move || work(r)))
                .collect();
            let mut parts = ranges.first().map(work).into_iter().collect::<Vec<_>>();
            // A worker can only end by returning (the loop has no panicking operation on valid
            // shapes); if one did panic, re-raise it here rather than return a partial result.
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            parts
        });
        let last = &shared[self.steps % 2];
        let mut run = Run {
            out: vec![0.0; self.steps * b * hd],
            h: last
                .iter()
                .map(|v| f32::from_bits(v.load(Ordering::Relaxed)))
                .collect(),
            c: vec![0.0; b * hd],
        };
        for (part, &(u0, u1)) in parts.iter().zip(&ranges) {
            let w = u1 - u0;
            for (row, dst) in part.out.chunks_exact(w).zip(run.out.chunks_exact_mut(hd)) {
                dst[u0..u1].copy_from_slice(row);
            }
            for (row, dst) in part.c.chunks_exact(w).zip(run.c.chunks_exact_mut(hd)) {
                dst[u0..u1].copy_from_slice(row);
            }
        }
        run
    }

    /// Units `u0..u1` of every step (one thread's share).
    fn units(
        &self,
        u0: usize,
        u1: usize,
        mut c: Vec<f32>,
        shared: &[Vec<AtomicU32>; 2],
        barrier: &SpinBarrier,
    ) -> Part {
        let (b, hd, w) = (self.batch, self.hidden, u1 - u0);
        let mut h = vec![0.0f32; b * hd];
        let mut out = Vec::with_capacity(self.steps * b * w);
        // The gates' pre-activations `[i | f | g | o]` of this thread's units, and their new hidden values.
        let mut pre = vec![0.0f32; 4 * w];
        let mut hv = vec![0.0f32; w];
        for s in 0..self.steps {
            let (read, write) = (&shared[s % 2], &shared[(s + 1) % 2]);
            for (dst, src) in h.iter_mut().zip(read) {
                *dst = f32::from_bits(src.load(Ordering::Relaxed));
            }
            for bi in 0..b {
                let x = &h[bi * hd..(bi + 1) * hd];
                let proj = &self.projected[(s * b + bi) * 4 * hd..(s * b + bi + 1) * 4 * hd];
                for u in u0..u1 {
                    let row = |g: usize| &self.w_hh[(g * hd + u) * hd..(g * hd + u + 1) * hd];
                    let dots = dot4([row(0), row(1), row(2), row(3)], x);
                    for (g, dot) in dots.into_iter().enumerate() {
                        pre[g * w + u - u0] = proj[g * hd + u] + dot;
                    }
                }
                cell(&pre, &mut c[bi * w..(bi + 1) * w], &mut hv);
                for (dst, v) in write[bi * hd + u0..bi * hd + u1].iter().zip(&hv) {
                    dst.store(v.to_bits(), Ordering::Relaxed);
                }
                out.extend_from_slice(&hv);
            }
            barrier.wait();
        }
        Part { out, c }
    }
}

/// One thread's output `[T, B, units]` and final cell state `[B, units]`.
struct Part {
    out: Vec<f32>,
    c: Vec<f32>,
}

/// The cell update of `c.len()` units from their gate pre-activations `pre = [i | f | g | o]`: `c ← σ(f)·c +
/// σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`. Vectorised like [`dot4`]; `exp` is [`exp_poly`] so that it can be.
fn cell(pre: &[f32], c: &mut [f32], h: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
            return unsafe { cell_avx512(pre, c, h) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, the features the function is compiled for.
            return unsafe { cell_avx2(pre, c, h) };
        }
    }
    cell_lanes(pre, c, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn cell_avx512(pre: &[f32], c: &mut [f32], h: &mut [f32]) {
    cell_lanes(pre, c, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_avx2(pre: &[f32], c: &mut [f32], h: &mut [f32]) {
    cell_lanes(pre, c, h)
}

#[inline(always)]
fn cell_lanes(pre: &[f32], c: &mut [f32], h: &mut [f32]) {
    let w = c.len();
    let (i, rest) = pre.split_at(w);
    let (f, rest) = rest.split_at(w);
    let (g, o) = rest.split_at(w);
    for ((((c, h), i), f), (g, o)) in c.iter_mut().zip(h).zip(i).zip(f).zip(g.iter().zip(o)) {
        *c = sigmoid(*f) * *c + sigmoid(*i) * tanh(*g);
        *h = sigmoid(*o) * tanh(*c);
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_poly(-x))
}

/// `tanh(x) = 1 − 2 / (e^{2x} + 1)`: within 1e-7 of `tanh` (absolute), saturating cleanly at ±1.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp_poly(2.0 * x) + 1.0)
}

/// `e^x` for `x` clamped to `[−87.3, 88.3]` (where `2^n` stays a normal f32), Cephes' `expf`: `x = n·ln 2 + r`
/// with ln 2 split in two parts, a degree-6 polynomial in `r`, and `2^n` built from its exponent bits. About
/// 1 ulp; branch-free, so that the loops calling it vectorise (libm's `expf` is a call per value).
/// (Cephes' last coefficient, 5.0000001201e-1, is 0.5 in f32.)
#[inline(always)]
fn exp_poly(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The four gate rows `w[g]·x` of one unit at once: four independent accumulators of 16 lanes each,
/// vectorised with the widest instructions the CPU has (fused multiply-adds where it has them).
fn dot4(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
            return unsafe { dot4_avx512(w, x) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, the features the function is compiled for.
            return unsafe { dot4_avx2(w, x) };
        }
    }
    dot4_lanes::<false>(w, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dot4_avx512(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    dot4_lanes::<true>(w, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot4_avx2(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    dot4_lanes::<true>(w, x)
}

/// `FMA`: use `mul_add`, which is one instruction only where the caller enabled FMA (a libm call
/// otherwise).
#[inline(always)]
fn dot4_lanes<const FMA: bool>(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    const L: usize = 16;
    let mut acc = [[0.0f32; L]; 4];
    let n = x.len() / L * L;
    for (j, xs) in x[..n].chunks_exact(L).enumerate() {
        for (a, wg) in acc.iter_mut().zip(&w) {
            let ws = &wg[j * L..(j + 1) * L];
            for k in 0..L {
                a[k] = if FMA {
                    ws[k].mul_add(xs[k], a[k])
                } else {
                    a[k] + ws[k] * xs[k]
                };
            }
        }
    }
    let mut out = [0.0f32; 4];
    for ((o, a), wg) in out.iter_mut().zip(&acc).zip(&w) {
        let tail: f32 = wg[n..].iter().zip(&x[n..]).map(|(p, q)| p * q).sum();
        *o = a.iter().sum::<f32>() + tail;
    }
    out
}

/// A barrier for threads that each own a core: spins, then yields if a peer is descheduled.
struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        SpinBarrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        if self.n == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < 1 << 12 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same recurrence, one unit at a time on one thread, in f64.
    fn reference(r: &Recurrence, h0: &[f32], c0: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (b, hd) = (r.batch, r.hidden);
        let mut h: Vec<f64> = h0.iter().map(|&v| v.into()).collect();
        let mut c: Vec<f64> = c0.iter().map(|&v| v.into()).collect();
        let mut out = Vec::new();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        for s in 0..r.steps {
            let mut next = vec![0.0; b * hd];
            for bi in 0..b {
                for u in 0..hd {
                    let gate = |g: usize| {
                        let row = g * hd + u;
                        f64::from(r.projected[(s * b + bi) * 4 * hd + row])
                            + (0..hd)
                                .map(|k| f64::from(r.w_hh[row * hd + k]) * h[bi * hd + k])
                                .sum::<f64>()
                    };
                    let cell = &mut c[bi * hd + u];
                    *cell = sig(gate(1)) * *cell + sig(gate(0)) * gate(2).tanh();
                    next[bi * hd + u] = sig(gate(3)) * cell.tanh();
                }
            }
            h = next;
            out.extend_from_slice(&h);
        }
        (out, c)
    }

    fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (x as f32 / (1u32 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    #[test]
    fn exp_poly_is_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.3 {
            let (got, want) = (exp_poly(x), f64::from(x).exp());
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (f64::from(got) - want).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.0137;
        }
        assert_eq!(tanh(30.0), 1.0);
        assert_eq!(tanh(-30.0), -1.0);
        assert!((tanh(1e-3) - 1e-3f32.tanh()).abs() < 1e-7);
        assert!(exp_poly(1000.0).is_finite() && exp_poly(-1000.0) > 0.0);
        assert!(sigmoid(-200.0) < 1e-37);
        assert_eq!(sigmoid(200.0), 1.0);
    }

    #[test]
    fn threads_and_batches_match_the_plain_recurrence() {
        for (steps, batch, hidden, threads) in [(7, 1, 130, 1), (9, 2, 256, 2), (5, 3, 200, 3)] {
            let projected = values(steps * batch * 4 * hidden, 1, 2.0);
            let w_hh = values(4 * hidden * hidden, 2, 0.3);
            let (h0, c0) = (
                values(batch * hidden, 3, 1.0),
                values(batch * hidden, 4, 1.0),
            );
            let r = Recurrence {
                projected: &projected,
                w_hh: &w_hh,
                steps,
                batch,
                hidden,
            };
            let got = r.run(h0.clone(), c0.clone(), threads);
            let (out, c) = reference(&r, &h0, &c0);
            let max_err = |a: &[f32], b: &[f64]| {
                assert_eq!(a.len(), b.len());
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| (f64::from(x) - y).abs())
                    .fold(0.0, f64::max)
            };
            let last = &out[(steps - 1) * batch * hidden..];
            for (what, err) in [
                ("out", max_err(&got.out, &out)),
                ("h", max_err(&got.h, last)),
                ("c", max_err(&got.c, &c)),
            ] {
                assert!(
                    err < 1e-4,
                    "{steps}x{batch}x{hidden} on {threads}: {what} off by {err}"
                );
            }
        }
    }
}
