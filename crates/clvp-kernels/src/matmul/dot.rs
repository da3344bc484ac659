//! The portable dot-product blocks of [`super::PackedLinear`]: plain lanes the compiler vectorises, with
//! or without FMA.

use super::{L, widen};

#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    // `mul_add` is one instruction only where the caller enabled FMA (a libm call otherwise).
    if FMA { a.mul_add(b, c) } else { c + a * b }
}

/// `[R][4]` dot products of four weight rows (f32, or int8 left unscaled: the caller multiplies each sum
/// by its row's scale) with `R` input rows.
#[inline(always)]
pub(super) fn dot<T: Copy + Into<f32>, const R: usize, const FMA: bool>(
    w: [&[T]; 4],
    x: [&[f32]; R],
) -> [[f32; 4]; R] {
    let d = x.first().map_or(0, |r| r.len());
    let n = d / L * L;
    let mut acc = [[[0.0f32; L]; 4]; R];
    for j in (0..n).step_by(L) {
        let ws: [[f32; L]; 4] = w.map(|row| std::array::from_fn(|l| row[j + l].into()));
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
            let tail: f32 = wk[n..d]
                .iter()
                .zip(&xr[n..d])
                .map(|(&p, q)| p.into() * q)
                .sum();
            *ok = ak.iter().sum::<f32>() + tail;
        }
    }
    out
}

/// [`dot`] for bf16 weight rows stored as pairs, against the inputs' even and odd elements.
#[inline(always)]
pub(super) fn dot_bf16<const R: usize, const FMA: bool>(
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
