//! Parity of the CLVP networks with transformers 5.23 on the random-init checkpoints written by
//! `xtask/python/ref_clvp_nn.py` (tiny: committed under fixtures/clvp; full: `cargo xtask parity-check --full`).

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_nn::host::Precision;
use clvp_nn::{ClvpForCausalLM, ClvpModelForConditionalGeneration, KvCache, LoadedClvp};
use clvp_parity::tensors::shaped as values;
use clvp_parity::{
    FixtureTensor, Recorder, Tolerance, compare, fixture_path, read_safetensors, tolerance,
};

/// The backend under test: `CLVP_TEST_DEVICE` = `flex` (default), `ndarray` or `wgpu` (with those features).
#[allow(deprecated)] // burn-ndarray is deprecated in 0.22 but still a supported backend of ours
fn device() -> Device {
    match std::env::var("CLVP_TEST_DEVICE").as_deref() {
        Err(_) | Ok("flex") | Ok("cpu") => Device::flex(),
        #[cfg(feature = "ndarray")]
        Ok("ndarray") => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        Ok("wgpu") => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        Ok(other) => panic!(
            "CLVP_TEST_DEVICE={other}: not a backend this test build has (features ndarray, wgpu)"
        ),
    }
}

struct Case {
    t: HashMap<String, FixtureTensor>,
}

impl Case {
    fn get(&self, key: &str) -> &FixtureTensor {
        self.t
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
    }

    fn ids(&self, key: &str) -> Vec<Vec<u32>> {
        let t = self.get(key);
        let cols = t.shape[1];
        t.i64
            .chunks(cols)
            .map(|r| r.iter().map(|&v| v as u32).collect())
            .collect()
    }

    fn ids_tensor(&self, key: &str) -> Tensor<2, Int> {
        let t = self.get(key);
        Tensor::from_data(
            TensorData::new(t.i64.clone(), [t.shape[0], t.shape[1]]),
            &device(),
        )
    }

    fn floats3(&self, key: &str) -> Tensor<3> {
        let t = self.get(key);
        let v: Vec<f32> = t.f64.iter().map(|&x| x as f32).collect();
        Tensor::from_data(
            TensorData::new(v, [t.shape[0], t.shape[1], t.shape[2]]),
            &device(),
        )
    }
}

/// `ours` against the reference `name`, recorded as `name` + `suffix`.
fn check_as<const D: usize>(
    rec: &mut Recorder,
    case: &Case,
    name: &str,
    suffix: &str,
    ours: Tensor<D>,
    tol: Tolerance,
) {
    let want = case.get(name);
    let (shape, v) = values(ours);
    let label = format!("{name}{suffix}");
    if shape != want.shape {
        rec.record_error(
            &label,
            &format!("shape ours {shape:?} vs reference {:?}", want.shape),
        );
        return;
    }
    rec.record(&label, &compare(&v, &want.f64, tol));
}

fn run(name: &str, tol: Tolerance, bf16_tol: Tolerance, int8_tol: Tolerance) {
    let dir = fixture_path(&format!("clvp/{name}"));
    let cases = fixture_path(&format!("clvp/{name}.cases.safetensors"));
    let ckpt = Checkpoint::local(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let loaded = LoadedClvp::from_checkpoint(&ckpt, &device())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    let m = &loaded.model;
    let case = Case {
        t: read_safetensors(&cases).unwrap_or_else(|e| panic!("{e}")),
    };
    let mut rec = Recorder::new(if name == "full" {
        "clvp-nn-full"
    } else {
        "clvp-nn"
    });
    let label = |s: &str| format!("{name}/{s}");

    // Encoders and the conditioning encoder on the path the CPU load chose (the host kernels), then the same
    // through burn's ops (the path of every other backend), forced by the model's one switch.
    let cond = check_networks(&mut rec, &case, name, m, "", tol);
    let mut on_burn = m.clone();
    match on_burn.set_host_kernels(false) {
        Ok(()) => {
            assert!(
                !on_burn.host_kernels(),
                "the switch turns the host kernels off"
            );
            // Its conditioning is checked inside; the decoder's burn path is checked below.
            let _ = check_networks(&mut rec, &case, name, &on_burn, "@burn", tol);
        }
        Err(e) => rec.record_error(&label("networks@burn"), &e.to_string()),
    }
    let ce = &m.conditioning_encoder;

    // Several clips averaged (Tortoise): the mean of the per-clip vectors the reference computed.
    let pairs = case.get("cond_pairs.out");
    let (n, len, hidden) = (pairs.shape[0], pairs.shape[1], pairs.shape[2]);
    let mean: Vec<f64> = (0..hidden)
        .map(|c| (0..n).map(|b| pairs.f64[b * len * hidden + c]).sum::<f64>() / n as f64)
        .collect();
    let (shape, ours) = values(ce.mel_vector_mean(case.floats3("inputs.features")));
    if shape == [1, 1, hidden] {
        rec.record(&label("cond_clips_mean"), &compare(&ours, &mean, tol));
    } else {
        rec.record_error(&label("cond_clips_mean"), &format!("shape {shape:?}"));
    }

    // Decoder: full sequence, then the same with a KV cache (prefill 5, then one token per step), on
    // the host projections the CPU load chose (f32), on burn's matmul, and with bf16 and int8 weights.
    let mut lm = m.speech_decoder_model.clone();
    assert_eq!(
        lm.host_projections(),
        Some(Precision::F32),
        "a CPU load runs the decoder's projections on the host"
    );
    let variants = [
        (Some(Precision::F32), "", tol),
        (None, "@burn", tol),
        (Some(Precision::Bf16), "@bf16", bf16_tol),
        (Some(Precision::Int8), "@int8", int8_tol),
    ];
    for (precision, suffix, tol) in variants {
        if let Err(e) = lm.set_host_projections(precision) {
            rec.record_error(&label(&format!("decoder{suffix}")), &e.to_string());
            continue;
        }
        check_decoder(
            &mut rec,
            &case,
            (name, &loaded),
            &lm,
            cond.as_ref().ok(),
            suffix,
            tol,
        );
    }
    rec.finish();
}

/// The encoders and the conditioning encoder of `m` against the reference, labels suffixed by `suffix`;
/// returns the pairs' conditioning for the decoder checks.
fn check_networks(
    rec: &mut Recorder,
    case: &Case,
    name: &str,
    m: &ClvpModelForConditionalGeneration,
    suffix: &str,
    tol: Tolerance,
) -> Result<Tensor<3>, String> {
    let mask = case.ids("inputs.text_batch_mask");
    let runs = [
        (
            "text_single",
            &m.text_encoder_model,
            "inputs.text_single_ids",
            None,
        ),
        (
            "text_batch",
            &m.text_encoder_model,
            "inputs.text_batch_ids",
            Some(&mask),
        ),
        (
            "speech_codes",
            &m.speech_encoder_model,
            "inputs.speech_codes",
            None,
        ),
    ];
    for (key, encoder, ids, mask) in runs {
        let out = encoder.forward(case.ids_tensor(ids), mask.map(Vec::as_slice));
        check_as(rec, case, &format!("{key}.embeds"), suffix, out.embeds, tol);
        let last = out.last_hidden_state;
        check_as(
            rec,
            case,
            &format!("{key}.last_hidden_state"),
            suffix,
            last,
            tol,
        );
        let pooled = out.pooler_output;
        check_as(
            rec,
            case,
            &format!("{key}.pooler_output"),
            suffix,
            pooled,
            tol,
        );
    }

    let feats = case.floats3("inputs.features");
    let single = case.ids("inputs.text_single_ids");
    let batch = case.ids("inputs.text_batch_ids");
    let ce = &m.conditioning_encoder;
    let first = feats.clone().narrow(0, 0, 1);
    let label = |s: &str| format!("{name}/{s}{suffix}");
    match ce.forward(first.clone(), &single, None) {
        Ok(t) => check_as(rec, case, "cond_single.out", suffix, t, tol),
        Err(e) => rec.record_error(&label("cond_single"), &e.to_string()),
    }
    match ce.forward(first, &batch, Some(&mask)) {
        Ok(t) => check_as(rec, case, "cond_broadcast.out", suffix, t, tol),
        Err(e) => rec.record_error(&label("cond_broadcast"), &e.to_string()),
    }
    let cond = ce.forward(feats, &batch, Some(&mask));
    match &cond {
        Ok(t) => check_as(rec, case, "cond_pairs.out", suffix, t.clone(), tol),
        Err(e) => rec.record_error(&label("cond_pairs"), &e.to_string()),
    }
    cond.map_err(|e| e.to_string())
}

fn check_decoder(
    rec: &mut Recorder,
    case: &Case,
    (name, loaded): (&str, &LoadedClvp),
    lm: &ClvpForCausalLM,
    cond: Option<&Tensor<3>>,
    suffix: &str,
    tol: Tolerance,
) {
    let mut check = |key: &str, ours: Tensor<3>| check_as(rec, case, key, suffix, ours, tol);
    let ids = case.ids_tensor("inputs.decoder_ids");
    let [b, t] = ids.dims();
    let mut errors = Vec::new();
    match lm.forward_ids(ids.clone(), None) {
        Ok(l) => check("decoder_ids.logits", l),
        Err(e) => errors.push(("decoder_ids", e.to_string())),
    }
    let mut cache = KvCache::new(&loaded.config.decoder_config, b, t, &device());
    let steps: Result<Vec<_>, _> = std::iter::once((0, 5))
        .chain((5..t).map(|i| (i, 1)))
        .map(|(start, len)| lm.forward_ids(ids.clone().narrow(1, start, len), Some(&mut cache)))
        .collect();
    match steps {
        Ok(steps) => check("decoder_ids.cached_logits", Tensor::cat(steps, 1)),
        Err(e) => errors.push(("decoder_ids.cached", e.to_string())),
    }
    if let Some(c) = cond {
        match lm.forward_embeds(c.clone(), None) {
            Ok(l) => check("decoder_embeds.logits", l),
            Err(e) => errors.push(("decoder_embeds", e.to_string())),
        }
    }
    for (what, e) in errors {
        rec.record_error(&format!("{name}/{what}{suffix}"), &e);
    }
}

#[test]
fn tiny_checkpoint_matches_transformers() {
    run(
        "tiny",
        tolerance("nn"),
        tolerance("nn_bf16"),
        tolerance("nn_int8"),
    );
}

#[test]
#[ignore = "full-size random-init checkpoint: generated by `cargo xtask parity-check --full`"]
fn full_checkpoint_matches_transformers() {
    run(
        "full",
        tolerance("nn_full"),
        tolerance("nn_full_bf16"),
        tolerance("nn_full_int8"),
    );
}
