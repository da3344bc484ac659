//! Every fixture variant of `xtask/python/ref_hub.py` (f32, f16, bf16, 2 shards, pytorch_model.bin) loads into
//! the burn twin and reproduces the PyTorch outputs.

mod common;

use clvp_hub::{Checkpoint, WeightFormat, Weights, load_module_with_report};
use clvp_parity::Recorder;
use common::{HubRef, check_outputs, device, hub_fixture, table};

fn load_dir(dir: &str) -> (HubRef, clvp_hub::LoadReport, WeightFormat) {
    let ckpt = Checkpoint::local(hub_fixture(dir)).unwrap_or_else(|e| panic!("{e}"));
    let weights = ckpt.weights().unwrap_or_else(|e| panic!("{dir}: {e}"));
    let format = weights.format();
    let (m, report) = load_module_with_report(HubRef::new(&device()), &weights, &table())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    (m, report, format)
}

#[test]
fn every_variant_matches_the_reference() {
    let mut rec = Recorder::new("hub");
    for (dir, reference, format) in [
        ("f32", "f32", WeightFormat::Safetensors),
        ("f16", "f16", WeightFormat::Safetensors),
        ("bf16", "bf16", WeightFormat::Safetensors),
        ("sharded", "f32", WeightFormat::ShardedSafetensors),
        ("pytorch", "f32", WeightFormat::Pytorch),
    ] {
        let (m, report, found) = load_dir(dir);
        assert_eq!(found, format, "{dir}");
        // 2 + 2 + 1 + 2 + 3 × 2 weight-norm convs + 8 LSTM tensors × 4 gates + 1 codebook
        assert_eq!(report.loaded.len(), 46, "{dir}: {:?}", report.loaded);
        let mut ignored = report.ignored.clone();
        ignored.sort();
        assert_eq!(
            ignored,
            [
                "codebook.cluster_size",
                "codebook.embed_avg",
                "codebook.inited"
            ],
            "{dir}"
        );
        check_outputs(&m, reference, &mut rec, dir);
    }
    rec.finish();
}

#[test]
fn half_precision_is_widened_not_kept() {
    let (m, _, _) = load_dir("bf16");
    assert_eq!(m.linear.weight.val().dtype(), burn::tensor::DType::F32);
}

#[test]
fn weights_report_their_files_dtypes_and_shapes() {
    let w = Weights::open(hub_fixture("sharded/model.safetensors.index.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.len(), 28);
    let v = w
        .get("wn_old.weight_v")
        .unwrap_or_else(|| panic!("no wn_old.weight_v"));
    assert_eq!(v.shape(), [5, 4, 3]);
    assert!(
        v.file().ends_with("model-00001-of-00002.safetensors"),
        "{}",
        v.file().display()
    );
    let f16 = Weights::open(hub_fixture("f16/model.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    let e = f16
        .get("mlp.c_fc.weight")
        .unwrap_or_else(|| panic!("no c_fc"));
    assert_eq!(
        (e.dtype().to_string(), e.shape().to_vec()),
        ("F16".to_string(), vec![6, 7])
    );
    let pt =
        Weights::open(hub_fixture("pytorch/pytorch_model.bin")).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = pt.keys().collect();
    let st: Vec<&str> = w.keys().collect();
    assert_eq!(keys, st);
    for key in keys {
        let a = pt.get(key).map(|e| e.to_f32());
        let b = w.get(key).map(|e| e.to_f32());
        assert!(
            matches!((&a, &b), (Some(Ok(x)), Some(Ok(y))) if x == y),
            "{key} differs"
        );
    }
}

#[test]
fn typed_access_to_checkpoint_files() {
    let ckpt = Checkpoint::local(hub_fixture("f32")).unwrap_or_else(|e| panic!("{e}"));
    let config = ckpt.config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.require::<usize>("hidden_size").ok(), Some(6));
    assert_eq!(
        config
            .field::<String>("model_type")
            .ok()
            .flatten()
            .as_deref(),
        Some("hub_ref")
    );
    let gen_config = ckpt
        .generation_config()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no generation config"));
    assert_eq!(gen_config.field::<f64>("top_p").ok().flatten(), Some(0.8));
    let pre = ckpt
        .preprocessor_config()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no preprocessor config"));
    assert_eq!(pre.require::<u32>("sampling_rate").ok(), Some(22050));
    let tok = ckpt.tokenizer_files().unwrap_or_else(|e| panic!("{e}"));
    assert!(tok.vocab.is_some() && tok.merges.is_some() && tok.tokenizer_config.is_some());
    assert!(tok.tokenizer_json.is_none() && tok.special_tokens_map.is_none());
    // The sharded copy has no generation config: absent, not an error.
    let sharded = Checkpoint::local(hub_fixture("sharded")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        sharded
            .generation_config()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
}
