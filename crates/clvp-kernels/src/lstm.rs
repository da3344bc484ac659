//! The LSTM recurrence as one host loop over plain `f32` slices, `torch.nn.LSTM`'s cell
//! (`c = σ(f)·c + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`, gates i, f, g, o).
//!
//! Every step depends on the last, and with a batch of one or two it is a `[B, H]·[H, 4H]` product
//! and a few thousand scalar gate updates: as tensor ops that is a dozen dispatches and allocations
//! per step, which cost more than the arithmetic. Here the hidden units are split across the threads
//! of the pool in groups of [`GROUP`], each thread keeps its groups' share of the recurrent matrix hot in
//! its own cache for the whole sequence, and the threads meet once per step at a spin barrier.
//!
//! The recurrent matrix is packed per group ([`PackedHh`]): row `j` holds the 64 weights from `h[j]` to
//! the group's i, f, g and o gates, so a group's pre-activations are 64 accumulators (four vector
//! registers) updated by one broadcast and four fused multiply-adds per `j`, and its cell update follows
//! at once. Four batch rows of one group, or up to two rows of two groups, share each sweep. Odd steps
//! visit the groups in reverse: a thread's share of a 512-unit LSTM is its whole L2 cache, and sweeping
//! back over what was read last keeps most of it there where a cyclic sweep would miss on all of it.
//! Each group's sums are taken in the same order either way.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Hidden units per group: one vector register of each gate (16 lanes of AVX-512).
pub const GROUP: usize = 16;
/// A group's gate columns: i, f, g, o of its [`GROUP`] units.
const COLS: usize = 4 * GROUP;

/// Hidden units per thread below which one thread does everything (the barrier would cost more).
const MIN_UNITS_PER_THREAD: usize = 64;

/// `W_hh` packed for the recurrence: per group `q` of [`GROUP`] hidden units, `[H, 64]` with row `j`
/// `[W_i[u, j] | W_f[u, j] | W_g[u, j] | W_o[u, j]]` over the group's units `u` (zeros past `H`).
#[derive(Debug)]
pub struct PackedHh {
    hidden: usize,
    data: Vec<f32>,
}

impl PackedHh {
    /// From `W_hh` as PyTorch stores it (`[4H, H]`, gates i, f, g, o).
    ///
    /// # Panics
    /// When `w_hh` does not hold `4·hidden²` values.
    pub fn new(w_hh: &[f32], hidden: usize) -> Self {
        assert_eq!(w_hh.len(), 4 * hidden * hidden, "W_hh is [4H, H]");
        let groups = hidden.div_ceil(GROUP);
        let mut data = vec![0.0; groups * hidden * COLS];
        for (q, packed) in data.chunks_exact_mut(hidden * COLS).enumerate() {
            for (j, row) in packed.chunks_exact_mut(COLS).enumerate() {
                for (g, gate) in row.chunks_exact_mut(GROUP).enumerate() {
                    for (l, w) in gate.iter_mut().enumerate() {
                        let u = q * GROUP + l;
                        if u < hidden {
                            *w = w_hh[(g * hidden + u) * hidden + j];
                        }
                    }
                }
            }
        }
        PackedHh { hidden, data }
    }

    fn groups(&self) -> usize {
        self.hidden.div_ceil(GROUP)
    }

    /// Group `q`'s rows, `[H, 64]`.
    fn group(&self, q: usize) -> &[[f32; COLS]] {
        let rows = &self.data[q * self.hidden * COLS..(q + 1) * self.hidden * COLS];
        rows.as_chunks::<COLS>().0
    }
}

/// The sequence's inputs and weights, row-major.
pub struct Recurrence<'a> {
    /// `x·W_ihᵀ + b_ih + b_hh` of every step: `[T, B, 4H]` (gates i, f, g, o).
    pub projected: &'a [f32],
    /// `W_hh`, packed.
    pub w_hh: &'a PackedHh,
    /// Steps and batch.
    pub steps: usize,
    pub batch: usize,
}

/// Output `[T, B, H]` and the state `(h, c)` (`[B, H]` each) after the last step.
pub struct Run {
    pub out: Vec<f32>,
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

impl Recurrence<'_> {
    /// Run every step from `(h, c)` on up to `threads` threads.
    pub fn run(&self, h: Vec<f32>, c: Vec<f32>, threads: usize) -> Run {
        let (b, hd) = (self.batch, self.w_hh.hidden);
        debug_assert_eq!(self.projected.len(), self.steps * b * 4 * hd);
        debug_assert_eq!((h.len(), c.len()), (b * hd, b * hd));
        let groups = self.w_hh.groups();
        let n = threads.clamp(1, (hd / MIN_UNITS_PER_THREAD).max(1));
        // Whole pairs of groups per thread where possible (a pair shares each sweep).
        let chunk = groups.div_ceil(n).next_multiple_of(2).min(groups.max(1));
        let ranges: Vec<(usize, usize)> = (0..n)
            .map(|k| (k * chunk, ((k + 1) * chunk).min(groups)))
            .filter(|(q0, q1)| q0 < q1)
            .collect();
        // The hidden state, double-buffered: step s reads buffer s % 2 and writes the other, so one
        // barrier per step orders every write before every read of the next step.
        let shared: [Vec<AtomicU32>; 2] = [
            h.iter().map(|v| AtomicU32::new(v.to_bits())).collect(),
            (0..b * hd).map(|_| AtomicU32::new(0)).collect(),
        ];
        let barrier = SpinBarrier::new(ranges.len());
        let units = |&(q0, q1): &(usize, usize)| (q0 * GROUP, (q1 * GROUP).min(hd));
        let work = |r: &(usize, usize)| {
            let (u0, u1) = units(r);
            let c0: Vec<f32> = (0..b)
                .flat_map(|bi| c[bi * hd + u0..bi * hd + u1].iter().copied())
                .collect();
            self.groups(*r, c0, &shared, &barrier)
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
        for (part, r) in parts.iter().zip(&ranges) {
            let (u0, u1) = units(r);
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

    /// Groups `q0..q1` of every step (one thread's share), with the widest instructions the CPU has.
    fn groups(
        &self,
        range: (usize, usize),
        c: Vec<f32>,
        shared: &[Vec<AtomicU32>; 2],
        barrier: &SpinBarrier,
    ) -> Part {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::avx512f() {
                // SAFETY: the CPU has AVX-512F, the only feature the function is compiled for.
                return unsafe { self.groups_avx512(range, c, shared, barrier) };
            }
            if crate::simd::avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA, the features the function is compiled for.
                return unsafe { self.groups_avx2(range, c, shared, barrier) };
            }
        }
        self.groups_lanes::<false>(range, c, shared, barrier)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn groups_avx512(
        &self,
        range: (usize, usize),
        c: Vec<f32>,
        shared: &[Vec<AtomicU32>; 2],
        barrier: &SpinBarrier,
    ) -> Part {
        self.groups_lanes::<true>(range, c, shared, barrier)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn groups_avx2(
        &self,
        range: (usize, usize),
        c: Vec<f32>,
        shared: &[Vec<AtomicU32>; 2],
        barrier: &SpinBarrier,
    ) -> Part {
        self.groups_lanes::<true>(range, c, shared, barrier)
    }

    /// `FMA`: use `mul_add`, which is one instruction only where the caller enabled FMA (a libm call
    /// otherwise).
    #[inline(always)]
    fn groups_lanes<const FMA: bool>(
        &self,
        (q0, q1): (usize, usize),
        mut c: Vec<f32>,
        shared: &[Vec<AtomicU32>; 2],
        barrier: &SpinBarrier,
    ) -> Part {
        let (b, hd) = (self.batch, self.w_hh.hidden);
        let (u0, u1) = (q0 * GROUP, (q1 * GROUP).min(hd));
        let w = u1 - u0;
        let mut h = vec![0.0f32; b * hd];
        let mut out = vec![0.0f32; self.steps * b * w];
        // The sweeps of a step: up to two batch rows by up to two groups.
        // The sweeps of a step: four batch rows of one group while four rows remain, then up to two
        // rows of up to two groups (16 accumulator registers either way).
        let mut tiles: Vec<Tile> = Vec::new();
        let mut r0 = 0;
        while r0 < b {
            let (rows, step) = if b - r0 >= 4 { (4, 1) } else { (2, 2) };
            let r1 = (r0 + rows).min(b);
            tiles.extend(
                (q0..q1)
                    .step_by(step)
                    .map(|g0| (r0, r1, g0, (g0 + step).min(q1))),
            );
            r0 = r1;
        }
        for s in 0..self.steps {
            let (read, write) = (&shared[s % 2], &shared[(s + 1) % 2]);
            for (dst, src) in h.iter_mut().zip(read) {
                *dst = f32::from_bits(src.load(Ordering::Relaxed));
            }
            let mut state = StepState {
                s,
                u0,
                h: &h,
                c: &mut c,
                out: &mut out,
                write,
            };
            // Closures would not inherit the caller's target features: the tiles are methods.
            if s % 2 == 0 {
                for &t in &tiles {
                    self.tile::<FMA>(t, &mut state);
                }
            } else {
                for &t in tiles.iter().rev() {
                    self.tile::<FMA>(t, &mut state);
                }
            }
            barrier.wait();
        }
        Part { out, c }
    }
}

/// What a step's tiles read and write.
struct StepState<'a> {
    s: usize,
    u0: usize,
    h: &'a [f32],
    c: &'a mut [f32],
    out: &'a mut [f32],
    write: &'a [AtomicU32],
}

impl Recurrence<'_> {
    /// Rows `r0..r1` (four, or at most two) of groups `g0..g1` (one, or at most two) of one step.
    #[inline(always)]
    fn tile<const FMA: bool>(&self, (r0, r1, g0, g1): Tile, st: &mut StepState) {
        let hd = self.w_hh.hidden;
        let row0 = &st.h[r0 * hd..(r0 + 1) * hd];
        let grp0 = self.w_hh.group(g0);
        match (r1 - r0, g1 - g0) {
            (4, _) => {
                let row = |k: usize| &st.h[(r0 + k) * hd..(r0 + k + 1) * hd];
                let acc = sweep::<4, 1, FMA>([row0, row(1), row(2), row(3)], [grp0]);
                for (r, accs) in acc.iter().enumerate() {
                    self.update(r0 + r, g0, &accs[0], st);
                }
            }
            (2, 2) => {
                let (row1, grp1) = (&st.h[(r0 + 1) * hd..(r0 + 2) * hd], self.w_hh.group(g0 + 1));
                let acc = sweep::<2, 2, FMA>([row0, row1], [grp0, grp1]);
                for (r, accs) in acc.iter().enumerate() {
                    for (g, a) in accs.iter().enumerate() {
                        self.update(r0 + r, g0 + g, a, st);
                    }
                }
            }
            (2, _) => {
                let row1 = &st.h[(r0 + 1) * hd..(r0 + 2) * hd];
                let acc = sweep::<2, 1, FMA>([row0, row1], [grp0]);
                self.update(r0, g0, &acc[0][0], st);
                self.update(r0 + 1, g0, &acc[1][0], st);
            }
            (_, 2) => {
                let acc = sweep::<1, 2, FMA>([row0], [grp0, self.w_hh.group(g0 + 1)]);
                self.update(r0, g0, &acc[0][0], st);
                self.update(r0, g0 + 1, &acc[0][1], st);
            }
            _ => self.update(r0, g0, &sweep::<1, 1, FMA>([row0], [grp0])[0][0], st),
        }
    }

    /// The cell update of batch row `bi`, group `q`, from the group's recurrent sums `acc`.
    #[inline(always)]
    fn update(&self, bi: usize, q: usize, acc: &[f32; COLS], st: &mut StepState) {
        let (b, hd, s) = (self.batch, self.w_hh.hidden, st.s);
        let w = st.c.len() / b;
        let proj = &self.projected[(s * b + bi) * 4 * hd..(s * b + bi + 1) * 4 * hd];
        let (lo, hi) = (q * GROUP, ((q + 1) * GROUP).min(hd));
        let n = hi - lo;
        let mut pre = [0.0f32; COLS];
        for gate in 0..4 {
            let src = &proj[gate * hd + lo..gate * hd + hi];
            let sums = &acc[gate * GROUP..gate * GROUP + n];
            for ((p, x), a) in pre[gate * n..(gate + 1) * n].iter_mut().zip(src).zip(sums) {
                *p = x + a;
            }
        }
        let at = bi * w + lo - st.u0;
        let hs = &mut st.out[(s * b + bi) * w + lo - st.u0..][..n];
        cell_lanes(&pre[..4 * n], &mut st.c[at..at + n], hs);
        for (dst, v) in st.write[bi * hd + lo..bi * hd + hi].iter().zip(hs.iter()) {
            dst.store(v.to_bits(), Ordering::Relaxed);
        }
    }
}

/// Batch rows `r0..r1` and groups `g0..g1` swept together.
type Tile = (usize, usize, usize, usize);

/// `Σ_j h[r][j] · w[g][j]` for `R` batch rows and `G` packed groups in one pass over the groups' rows:
/// `R·G` sets of 64 accumulators (`R·G·4` vector registers with AVX-512), summed in `j` order.
#[inline(always)]
fn sweep<const R: usize, const G: usize, const FMA: bool>(
    h: [&[f32]; R],
    w: [&[[f32; COLS]]; G],
) -> [[[f32; COLS]; G]; R] {
    let n = h[0].len();
    let h = h.map(|x| &x[..n]);
    let w = w.map(|x| &x[..n]);
    let mut acc = [[[0.0f32; COLS]; G]; R];
    for j in 0..n {
        for g in 0..G {
            let row = &w[g][j];
            for r in 0..R {
                let x = h[r][j];
                let a = &mut acc[r][g];
                for k in 0..COLS {
                    a[k] = if FMA {
                        row[k].mul_add(x, a[k])
                    } else {
                        a[k] + row[k] * x
                    };
                }
            }
        }
    }
    acc
}

/// One thread's output `[T, B, units]` and final cell state `[B, units]`.
struct Part {
    out: Vec<f32>,
    c: Vec<f32>,
}

/// The cell update of `c.len()` units from their gate pre-activations `pre = [i | f | g | o]`: `c ← σ(f)·c +
/// σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`. Branch-free (`exp` is [`crate::simd::exp`]) so that it vectorises.
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
    1.0 / (1.0 + crate::simd::exp(-x))
}

/// `tanh(x) = 1 − 2 / (e^{2x} + 1)`: within 1e-7 of `tanh` (absolute), saturating cleanly at ±1.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (crate::simd::exp(2.0 * x) + 1.0)
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
    fn reference(r: &Recurrence, w_hh: &[f32], h0: &[f32], c0: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (b, hd) = (r.batch, r.w_hh.hidden);
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
                                .map(|k| f64::from(w_hh[row * hd + k]) * h[bi * hd + k])
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
    fn threads_and_batches_match_the_plain_recurrence() {
        // Partial last groups (130, 200), an odd group count on a thread (200 on 3), batches that
        // leave a single row (3, 5) or two after four (6), a single group (16) and the full-size width (512).
        for (steps, batch, hidden, threads) in [
            (7, 1, 130, 1),
            (9, 2, 256, 2),
            (5, 3, 200, 3),
            (4, 5, 512, 2),
            (6, 1, 16, 2),
            (8, 1, 512, 2),
            (3, 6, 96, 1),
        ] {
            let projected = values(steps * batch * 4 * hidden, 1, 2.0);
            let w_hh = values(4 * hidden * hidden, 2, 0.3);
            let (h0, c0) = (
                values(batch * hidden, 3, 1.0),
                values(batch * hidden, 4, 1.0),
            );
            let packed = PackedHh::new(&w_hh, hidden);
            let r = Recurrence {
                projected: &projected,
                w_hh: &packed,
                steps,
                batch,
            };
            let got = r.run(h0.clone(), c0.clone(), threads);
            let (out, c) = reference(&r, &w_hh, &h0, &c0);
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
