//! The AVX-512 kernels of [`super::PackedLinear`]: the portable blocks of `dot.rs` with the weight rows
//! prefetched ahead, and a later block of rows prefetched into L2 while the current one is multiplied.

use std::arch::x86_64::*;

/// Bytes ahead of the loads that each weight row is prefetched.
const AHEAD: usize = 1024;

/// The part of a later weight block that one call prefetches into L2 while it works from its own block: `bytes`
/// from `at` on each pass of the loop. The decoder's weights stream from memory once per step, and a row's own
/// prefetch ([`AHEAD`]) is too close to hide that latency; the later block is at least one block and 32 KiB
/// ahead (`super::next_block`).
#[derive(Clone, Copy)]
pub(super) struct Next {
    /// The first byte.
    pub at: *const i8,
    /// Bytes per pass of the loop (a multiple of 64).
    pub bytes: usize,
}

impl Next {
    /// Prefetches this pass's lines into L2 and moves on to the next pass's.
    #[inline(always)]
    fn step(&mut self) {
        let mut k = 0;
        while k < self.bytes {
            // SAFETY: a prefetch never faults, wherever it points.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(self.at.wrapping_add(k)) };
            k += 64;
        }
        self.at = self.at.wrapping_add(self.bytes);
    }
}

/// The lane sums of each input row's four accumulators, `[[Σa0, Σa1, Σa2, Σa3]; R]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn sum4<const R: usize>(acc: [[__m512; 4]; R]) -> [[f32; 4]; R] {
    acc.map(|a| hsum4(a))
}

/// `[Σa0, Σa1, Σa2, Σa3]` in one transposing tree: interleave and add pairs within each 128-bit lane until
/// every lane holds `[a0, a1, a2, a3]` partial sums, then add the four lanes. Eleven shuffles and adds
/// where four `_mm512_reduce_add_ps` take about thirty (the reduction was a ninth of P8's profile).
#[target_feature(enable = "avx512f")]
#[inline]
fn hsum4([a0, a1, a2, a3]: [__m512; 4]) -> [f32; 4] {
    // Per 128-bit lane: [a0₀+a0₂, a1₀+a1₂, a0₁+a0₃, a1₁+a1₃] and the same for a2, a3.
    let b01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    let b23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    // Per lane: [Σa0, Σa1, Σa2, Σa3] of that lane's four values.
    let c = _mm512_add_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(b01, b23),
        _mm512_shuffle_ps::<0b11_10_11_10>(b01, b23),
    );
    let half = _mm256_add_ps(
        _mm512_castps512_ps256(c),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(c))),
    );
    let quarter = _mm_add_ps(
        _mm256_castps256_ps128(half),
        _mm256_extractf128_ps::<1>(half),
    );
    let mut out = [0.0f32; 4];
    // SAFETY: `out` holds four f32.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), quarter) };
    out
}

/// # Safety
/// The CPU has AVX-512F; every row of `w` and `x` is at least `x[0].len()` long.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn dot_f32<const R: usize>(
    w: [&[f32]; 4],
    x: [&[f32]; R],
    mut next: Next,
) -> [[f32; 4]; R] {
    let d = x.first().map_or(0, |r| r.len());
    let n = d / 16 * 16;
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    let (wp, xp) = (w.map(<[f32]>::as_ptr), x.map(<[f32]>::as_ptr));
    let mut j = 0;
    while j < n {
        next.step();
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
    mut next: Next,
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
        next.step();
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

/// # Safety
/// The CPU has AVX-512F; every row of `w` and `x` is at least `x[0].len()` long.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn dot_i8<const R: usize>(
    w: [&[i8]; 4],
    x: [&[f32]; R],
    mut next: Next,
) -> [[f32; 4]; R] {
    let d = x.first().map_or(0, |r| r.len());
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    let (wp, xp) = (w.map(<[i8]>::as_ptr), x.map(<[f32]>::as_ptr));
    // 16 weights of each row widened to f32 and multiplied into every input row.
    let step = |acc: &mut [[__m512; 4]; R], j: usize| {
        // SAFETY: j + 16 <= d <= every row's length.
        unsafe {
            let ws = wp.map(|p| {
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(j).cast())))
            });
            for (a, xr) in acc.iter_mut().zip(xp) {
                let xs = _mm512_loadu_ps(xr.add(j));
                for (ak, wk) in a.iter_mut().zip(ws) {
                    *ak = _mm512_fmadd_ps(wk, xs, *ak);
                }
            }
        }
    };
    let mut j = 0;
    // One cache line (64 weights) of each row per pass, prefetched once: the same line of the row four
    // ahead, which the next block reads (a row of int8 is short, so a fixed distance inside it would
    // mostly land on lines already loaded).
    let ahead = 4 * d;
    while j + 64 <= d {
        next.step();
        for p in wp {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(j + ahead));
        }
        for s in 0..4 {
            step(&mut acc, j + 16 * s);
        }
        j += 64;
    }
    while j + 16 <= d {
        step(&mut acc, j);
        j += 16;
    }
    let mut out = sum4(acc);
    for (o, xr) in out.iter_mut().zip(&x) {
        for (ok, wk) in o.iter_mut().zip(&w) {
            *ok += wk[j..d]
                .iter()
                .zip(&xr[j..d])
                .map(|(&p, q)| f32::from(p) * q)
                .sum::<f32>();
        }
    }
    out
}
