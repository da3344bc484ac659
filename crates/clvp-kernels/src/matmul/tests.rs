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
/// f64 reference: f32 within summation-order rounding; bf16 and int8 as an f32 product of the
/// rounded weights.
#[test]
fn matches_the_reference_in_every_precision() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for &(d_out, d_in) in &[(1, 1), (7, 33), (64, 64), (130, 257), (600, 128)] {
        for rows in [1, 2, 3, 4, 5, 9] {
            let w = values(d_out * d_in, (d_out * 31 + d_in) as u64);
            let b = values(d_out, 5);
            let x = values(rows * d_in, rows as u64 + 11);
            for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
                let lin =
                    PackedLinear::new(w.clone(), Some(b.clone()), d_out, d_in, precision).unwrap();
                let rounded = lin.weight_f32();
                match precision {
                    Precision::F32 => assert_eq!(rounded, w),
                    Precision::Bf16 => {
                        for (r, v) in rounded.iter().zip(&w) {
                            assert!((r - v).abs() <= v.abs() * 2f32.powi(-8), "{r} vs {v}");
                        }
                    }
                    Precision::Int8 => {
                        for (row, want) in rounded.chunks(d_in).zip(w.chunks(d_in)) {
                            let amax = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                            for (r, v) in row.iter().zip(want) {
                                let step = amax / 127.0;
                                assert!((r - v).abs() <= step * 0.5001, "{r} vs {v}");
                            }
                        }
                    }
                }
                let want = reference(&rounded, Some(&b), &x, rows, d_out);
                for got in [
                    lin.forward(&x, rows).unwrap(),
                    pool.install(|| lin.forward(&x, rows)).unwrap(),
                    lin.forward_portable(&x, rows, false),
                    lin.forward_portable(&x, rows, true),
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

/// int8: the largest weight of a row is exactly ±127 steps, a zero row stays zero, the bytes are a
/// quarter of f32's, and a weight that is not finite is refused.
#[test]
fn int8_quantisation() {
    let w = vec![0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.003];
    let lin = PackedLinear::new(w.clone(), None, 3, 3, Precision::Int8).unwrap();
    assert_eq!(lin.precision(), Precision::Int8);
    assert_eq!(lin.bytes(), 9 + 3 * 4);
    let r = lin.weight_f32();
    assert_eq!(r[1], -1.0);
    assert_eq!(r[6], 2.0);
    assert_eq!(&r[3..6], &[0.0; 3]);
    // 0.5 / (1/127) = 63.5 rounds to even, 64; -0.003 / (2/127) = -0.19 rounds to 0.
    assert_eq!(r[0], 64.0 / 127.0);
    assert_eq!(r[8], 0.0);
    assert_eq!(lin.forward(&[1.0, 1.0, 1.0], 1).unwrap().len(), 3);
    for bad in [f32::NAN, f32::INFINITY] {
        let mut w = w.clone();
        w[4] = bad;
        assert!(PackedLinear::new(w, None, 3, 3, Precision::Int8).is_none());
    }
}
