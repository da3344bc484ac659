//! The one wrapper of the `gemm` crate (the products burn-flex runs on) that the kernels call: strided `f32`
//! views, the destination overwritten or accumulated into.

/// `dst[m, n] = Σ_k lhs[m, k] · rhs[k, n]`, or `dst += …` when `accumulate`, on strided views (element strides
/// `[row, column]`), on `threads` of rayon's threads (1: the calling thread alone).
///
/// # Safety
/// Every view lies inside its allocation; `dst`'s elements are distinct and not aliased by the others.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    [dst_rs, dst_cs]: [usize; 2],
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [usize; 2],
    accumulate: bool,
    threads: usize,
) {
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
