//! A probe of the lever for the compute-bound workloads (P2, P3): Intel AMX's bf16 tile products
//! (`tdpbf16ps`, f32 accumulation) against gemm's AVX-512 f32 kernel, on the speech encoder's shapes of
//! P3 (16 × 500 rows). f32 accuracy from bf16 products needs each operand split into bf16 parts: three
//! parts (`a = a0 + a1 + a2`, exact) and the six largest cross products keep f32's accuracy; two parts and
//! three products (`a0b0 + a0b1 + a1b0`) about 16 bits. Both are one bf16 product over a 6× (or 3×)
//! longer inner dimension. This times one bf16 product (`×1`) and reports the error of the `×3` and
//! `×6` schemes against an f64 reference. Not used by the library.
//!
//! `cargo run --release -p clvp-nn --example amx_probe` (Linux, x86-64 with AMX; set RAYON_NUM_THREADS).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;

    /// CPUID.(7, 0):EDX bits 22 (AMX-BF16) and 24 (AMX-TILE) (`is_x86_feature_detected!` has no stable
    /// name for them).
    pub fn has_bf16() -> bool {
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0
    }

    /// Ask Linux for the AMX tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`).
    pub fn request() -> bool {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain syscall with integer arguments.
        unsafe {
            asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret,
                 in("rdi") ARCH_REQ_XCOMP_PERM, in("rsi") XFEATURE_XTILEDATA,
                 lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret == 0
    }

    /// Palette 1, eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    fn configure() {
        let mut c = Config([0; 64]);
        c.0[0] = 1;
        for t in 0..8 {
            c.0[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
            c.0[48 + t] = 16;
        }
        // SAFETY: a valid palette-1 configuration; the process has the tile permission.
        unsafe { asm!("ldtilecfg [{}]", in(reg) c.0.as_ptr(), options(nostack)) };
    }

    /// `c[m, n] = a[m, k] · b[k, n]` with `a` row-major bf16 and `b` packed by [`pack_b`]; `m`, `n`
    /// multiples of 32, `k` of 32.
    pub fn matmul(a: &[u16], bp: &[u16], c: &mut [f32], [m, n, k]: [usize; 3]) {
        configure();
        let (sa, sc) = (k * 2, n * 4);
        for n0 in (0..n).step_by(32) {
            let b0 = bp[(n0 / 16) * k * 16..].as_ptr();
            let b1 = bp[(n0 / 16 + 1) * k * 16..].as_ptr();
            for m0 in (0..m).step_by(32) {
                let a0 = a[m0 * k..].as_ptr();
                let a1 = a[(m0 + 16) * k..].as_ptr();
                // SAFETY: every tile lies inside its slice (shapes checked by the caller).
                unsafe {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack)
                    );
                    for k0 in (0..k).step_by(32) {
                        asm!(
                            "tileloadd tmm4, [{a0} + {sa}*1]",
                            "tileloadd tmm5, [{a1} + {sa}*1]",
                            "tileloadd tmm6, [{b0} + {sb}*1]",
                            "tileloadd tmm7, [{b1} + {sb}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a0 = in(reg) a0.add(k0),
                            a1 = in(reg) a1.add(k0),
                            b0 = in(reg) b0.add(k0 * 16),
                            b1 = in(reg) b1.add(k0 * 16),
                            sa = in(reg) sa,
                            sb = in(reg) 64usize,
                            options(nostack),
                        );
                    }
                    let c0 = c[m0 * n + n0..].as_mut_ptr();
                    let c1 = c[(m0 + 16) * n + n0..].as_mut_ptr();
                    asm!(
                        "tilestored [{c0} + {sc}*1], tmm0",
                        "tilestored [{c1} + {sc}*1], tmm2",
                        c0 = in(reg) c0, c1 = in(reg) c1, sc = in(reg) sc, options(nostack),
                    );
                    asm!(
                        "tilestored [{c0} + {sc}*1], tmm1",
                        "tilestored [{c1} + {sc}*1], tmm3",
                        c0 = in(reg) c0.add(16), c1 = in(reg) c1.add(16), sc = in(reg) sc, options(nostack),
                    );
                }
            }
        }
        // SAFETY: releases the tile state configured above.
        unsafe { asm!("tilerelease", options(nostack)) };
    }

    /// `b` `[k, n]` row-major bf16 → per block of 16 columns, `[k/2, 16, 2]` (pairs of rows interleaved).
    pub fn pack_b(b: &[u16], k: usize, n: usize) -> Vec<u16> {
        let mut out = vec![0u16; k * n];
        for nb in 0..n / 16 {
            for kp in 0..k / 2 {
                for j in 0..16 {
                    for e in 0..2 {
                        out[nb * k * 16 + kp * 32 + j * 2 + e] = b[(2 * kp + e) * n + nb * 16 + j];
                    }
                }
            }
        }
        out
    }
}

fn bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

fn f32_of(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `x` split into `parts` bf16 values whose sum is `x` (to bf16's precision for the last).
fn split(x: &[f32], parts: usize) -> Vec<Vec<u16>> {
    let mut rest = x.to_vec();
    (0..parts)
        .map(|_| {
            let p: Vec<u16> = rest.iter().map(|&v| bf16(v)).collect();
            for (r, &q) in rest.iter_mut().zip(&p) {
                *r -= f32_of(q);
            }
            p
        })
        .collect()
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    use std::time::Instant;
    if !amx::has_bf16() || !amx::request() {
        println!("no AMX-BF16 here (or the kernel refused the tile state)");
        return;
    }
    let threads = rayon::current_num_threads();
    // The speech encoder's fused q/k/v product on P3's 16 × 500 rows, and its MLP's first product.
    for (name, m, k, n) in [("qkv", 8000, 768, 2304), ("fc1", 8000, 768, 3072)] {
        let m = m / 32 * 32;
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        // gemm's f32 kernel, as burn-flex runs it.
        let mut c32 = vec![0.0f32; m * n];
        let gemm_run = |c: &mut [f32]| {
            // SAFETY: row-major views of the three buffers with their own shapes.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                );
            }
        };
        gemm_run(&mut c32);
        let t0 = Instant::now();
        for _ in 0..3 {
            gemm_run(&mut c32);
        }
        let t_gemm = t0.elapsed().as_secs_f64() / 3.0;
        let flop = 2.0 * (m * n * k) as f64;

        // One bf16 product (×1), rows split over the threads.
        let (ab, bb) = (split(&a, 1).remove(0), split(&b, 1).remove(0));
        let bp = amx::pack_b(&bb, k, n);
        let mut c = vec![0.0f32; m * n];
        let amx_run = |c: &mut [f32]| {
            let rows = (m / threads).div_ceil(32) * 32;
            std::thread::scope(|s| {
                for (i, part) in c.chunks_mut(rows * n).enumerate() {
                    let a = &ab[i * rows * k..];
                    let bp = &bp;
                    s.spawn(move || amx::matmul(a, bp, part, [part.len() / n, n, k]));
                }
            });
        };
        amx_run(&mut c);
        let t0 = Instant::now();
        for _ in 0..3 {
            amx_run(&mut c);
        }
        let t_amx = t0.elapsed().as_secs_f64() / 3.0;
        println!(
            "{name} [{m}x{k}]·[{k}x{n}]: gemm f32 {:.1} ms ({:.0} GFLOP/s); AMX bf16 x1 {:.1} ms ({:.0} GFLOP/s): \
             x3 ≈ {:.2}× gemm's time, x6 ≈ {:.2}×",
            t_gemm * 1e3,
            flop / t_gemm / 1e9,
            t_amx * 1e3,
            flop / t_amx / 1e9,
            3.0 * t_amx / t_gemm,
            6.0 * t_amx / t_gemm
        );
        // Accuracy on a sample of outputs: the split schemes (as sums of bf16 products in f32) and gemm's
        // f32, against f64.
        let (a3, b3) = (split(&a, 3), split(&b, 3));
        let mut worst = [0.0f64; 4];
        for idx in (0..m * n).step_by(9973) {
            let (i, j) = (idx / n, idx % n);
            let exact: f64 = (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                .sum();
            let scheme = |pairs: &[(usize, usize)]| -> f32 {
                let mut s = 0.0f32;
                for p in 0..k {
                    for &(x, y) in pairs {
                        s += f32_of(a3[x][i * k + p]) * f32_of(b3[y][p * n + j]);
                    }
                }
                s
            };
            let errs = [
                f64::from(c[idx]),
                f64::from(scheme(&[(0, 0), (0, 1), (1, 0)])),
                f64::from(scheme(&[(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0)])),
                f64::from(c32[idx]),
            ];
            for (w, e) in worst.iter_mut().zip(errs) {
                *w = w.max((e - exact).abs());
            }
        }
        println!(
            "    max abs error vs f64 (sampled): bf16 x1 {:.1e}, x3 {:.1e}, x6 {:.1e}, gemm f32 {:.1e}",
            worst[0], worst[1], worst[2], worst[3]
        );
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    println!("the AMX probe needs Linux on x86-64");
}
