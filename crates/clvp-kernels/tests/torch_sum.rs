//! `clvp_kernels::torch_sum` against PyTorch 2.15 (one thread), to the bit: the sums of `xtask/python/ref_torch_sum.py`
//! (committed in fixtures/kernels; `cargo xtask parity-check --only kernels` regenerates them with any seed).
//! The inputs are integer formulas both sides round to the same float32 values once.

use clvp_kernels::torch_sum::{mean_square, rms_scale, torch_sum};
use clvp_parity::{FixtureTensor, Recorder, compare, fixture_path, read_safetensors, tolerance};
use std::collections::HashMap;

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect()
}

fn hashed(n: usize, salt: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let k = i
                .wrapping_mul(2_654_435_761)
                .wrapping_add(salt.wrapping_mul(40_503))
                % (1 << 32);
            k as f32 / 4_294_967_296.0 - 0.5
        })
        .collect()
}

fn value(t: &HashMap<String, FixtureTensor>, key: &str) -> f32 {
    match t.get(key).and_then(|v| v.f64.first()) {
        Some(&v) => v as f32,
        None => panic!("{key} missing from the fixture"),
    }
}

/// One bit-exact row: `ours` against the reference's float32.
fn bits(rec: &mut Recorder, case: &str, ours: f32, want: f32) {
    let failures = if ours.to_bits() == want.to_bits() {
        vec![]
    } else {
        vec![format!(
            "{ours:e} ({:#010x}) vs torch {want:e} ({:#010x})",
            ours.to_bits(),
            want.to_bits()
        )]
    };
    rec.record_exact(case, 1, &failures);
}

#[test]
fn sums_and_scales_are_torchs_to_the_bit() {
    let path = fixture_path("kernels/torch_sum.safetensors");
    let t = read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"));
    let seed = match t.get("seed").and_then(|s| s.i64.first()) {
        Some(&s) => s as u64,
        None => panic!("{}: no seed", path.display()),
    };
    let mut rec = Recorder::new("kernels");
    let mut keys: Vec<&String> = t.keys().collect();
    keys.sort();
    for key in keys {
        if let Some(n) = key.strip_prefix("sum.ramp_") {
            let n: usize = n.parse().unwrap_or_else(|e| panic!("{key}: {e}"));
            bits(&mut rec, key, torch_sum(&ramp(n)), value(&t, key));
        } else if let Some(n) = key.strip_prefix("sum.hash_") {
            let n: usize = n.parse().unwrap_or_else(|e| panic!("{key}: {e}"));
            bits(&mut rec, key, torch_sum(&hashed(n, seed)), value(&t, key));
        } else if let Some(shape) = key.strip_prefix("scale.chunk_") {
            let (c, l) = shape
                .split_once('x')
                .and_then(|(c, l)| Some((c.parse::<usize>().ok()?, l.parse::<usize>().ok()?)))
                .unwrap_or_else(|| panic!("{key}: not chunk_<c>x<l>"));
            let x: Vec<f32> = hashed(c * l, seed + 1).iter().map(|v| v * 0.1).collect();
            // The mean square to the bit; the scale within torch's float32 `sqrt`, which is not correctly
            // rounded (one ulp).
            let ms = mean_square(&x, c, l).unwrap_or_else(|e| panic!("{key}: {e}"));
            let ms_key = format!("mean_square.chunk_{shape}");
            bits(&mut rec, &ms_key, ms, value(&t, &ms_key));
            let ours = rms_scale(&x, c, l).unwrap_or_else(|e| panic!("{key}: {e}"));
            let want = f64::from(value(&t, key));
            rec.record(
                key,
                &compare(&[f64::from(ours)], &[want], tolerance("kernels_scale")),
            );
        }
    }
    assert!(
        rec.rows().len() >= 20,
        "{} rows: the fixture lost cases",
        rec.rows().len()
    );
    rec.finish();
}
