//! Bad input to `EncodecModel` is a typed error that names the problem, never a panic; and the model's own
//! invariants (batch equals single, default bandwidth, broken checkpoints) hold.

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_parity::fixture_path;
use encodec_codec::{EncodecError, EncodecModel};

fn load(name: &str) -> EncodecModel {
    let ckpt = Checkpoint::local(fixture_path(&format!("encodec/{name}"))).expect("fixture");
    EncodecModel::from_checkpoint(&ckpt, &Device::flex()).expect("loads")
}

fn noise(b: usize, c: usize, l: usize) -> Tensor<3> {
    let v: Vec<f32> = (0..b * c * l)
        .map(|i| ((i as f32 * 0.37).sin() * 0.3) + ((i as f32 * 0.011).cos() * 0.1))
        .collect();
    Tensor::from_data(TensorData::new(v, [b, c, l]), &Device::flex())
}

fn ints(v: Vec<i64>, shape: [usize; 4]) -> Tensor<4, Int> {
    Tensor::from_data(TensorData::new(v, shape), &Device::flex())
}

#[test]
fn bandwidth_not_offered_lists_the_allowed_ones() {
    let m = load("tiny_24k");
    let e = m.encode(noise(1, 1, 640), None, Some(6.0)).unwrap_err();
    assert!(matches!(e, EncodecError::Bandwidth { .. }));
    assert!(e.to_string().contains("0.9, 1.8, 3.6"), "{e}");
}

#[test]
fn default_bandwidth_is_the_smallest_as_in_transformers() {
    let m = load("tiny_24k");
    let a = m.encode(noise(1, 1, 1000), None, None).expect("encodes");
    let b = m
        .encode(noise(1, 1, 1000), None, Some(0.9))
        .expect("encodes");
    assert_eq!(a.audio_codes.dims(), [1, 1, 2, 4]);
    assert_eq!(
        a.audio_codes.into_data().convert::<i64>(),
        b.audio_codes.into_data().convert::<i64>()
    );
}

#[test]
fn wrong_channel_count_and_empty_audio_are_errors() {
    let m = load("tiny_24k");
    let e = m.encode(noise(1, 2, 640), None, None).unwrap_err();
    assert!(
        matches!(
            e,
            EncodecError::Channels {
                expected: 1,
                found: 2
            }
        ),
        "{e}"
    );
    let m48 = load("tiny_48k");
    let e = m48.encode(noise(1, 1, 640), None, None).unwrap_err();
    assert!(
        e.to_string()
            .contains("takes 2 audio channel(s), the input has 1"),
        "{e}"
    );
    let e = m
        .encode(Tensor::zeros([1, 1, 0], &Device::flex()), None, None)
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let mask = Tensor::<2>::ones([1, 10], &Device::flex());
    let e = m.encode(noise(1, 1, 640), Some(mask), None).unwrap_err();
    assert!(e.to_string().contains("padding_mask has shape"), "{e}");
}

#[test]
fn codes_out_of_range_name_the_position() {
    let m = load("tiny_24k");
    let mut v = vec![1i64; 2 * 5];
    v[7] = 64;
    let e = m.decode(ints(v, [1, 1, 2, 5]), None, 0, None).unwrap_err();
    match &e {
        EncodecError::CodeOutOfRange {
            value: 64,
            codebook: 1,
            frame: 2,
            size: 64,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    let e = m
        .decode(ints(vec![-1; 5], [1, 1, 1, 5]), None, 0, None)
        .unwrap_err();
    assert!(e.to_string().contains("code -1"), "{e}");
    // More codebooks than the model has.
    let e = m
        .decode(ints(vec![0; 9 * 3], [1, 1, 9, 3]), None, 0, None)
        .unwrap_err();
    assert!(e.to_string().contains("9 codebooks"), "{e}");
    // Padding that swallows the chunk; several chunks for a model that does not chunk.
    let e = m
        .decode(ints(vec![0; 2 * 3], [1, 1, 2, 3]), None, 3, None)
        .unwrap_err();
    assert!(e.to_string().contains("last_frame_pad_length"), "{e}");
    let e = m
        .decode(ints(vec![0; 2 * 2 * 3], [2, 1, 2, 3]), None, 0, None)
        .unwrap_err();
    assert!(e.to_string().contains("one chunk"), "{e}");
}

#[test]
fn normalising_models_need_their_scales() {
    let m = load("tiny_48k");
    let codes = ints(vec![0; 2 * 2 * 15], [2, 1, 2, 15]);
    let e = m.decode(codes.clone(), None, 0, None).unwrap_err();
    assert!(e.to_string().contains("audio_scales"), "{e}");
    let scales = Tensor::<2>::ones([3, 1], &Device::flex());
    let e = m.decode(codes, Some(scales), 0, None).unwrap_err();
    assert!(e.to_string().contains("[2, 1]"), "{e}");
}

#[test]
fn batch_equals_single() {
    for name in ["tiny_24k", "tiny_48k", "tiny_32k"] {
        let m = load(name);
        let c = m.config.audio_channels;
        let len = 5000;
        let batch = noise(2, c, len);
        let ours = m.encode(batch.clone(), None, None).expect("batch");
        let out_b = m
            .decode(
                ours.audio_codes.clone(),
                ours.audio_scales.clone(),
                ours.last_frame_pad_length,
                Some(len),
            )
            .expect("decode batch");
        for i in 0..2 {
            let single = batch.clone().slice([i..i + 1, 0..c, 0..len]);
            let one = m.encode(single, None, None).expect("single");
            let [chunks, _, n_q, t] = one.audio_codes.dims();
            let from_batch = ours
                .audio_codes
                .clone()
                .slice([0..chunks, i..i + 1, 0..n_q, 0..t]);
            assert_eq!(
                one.audio_codes.clone().into_data().convert::<i64>(),
                from_batch.into_data().convert::<i64>(),
                "{name} item {i} codes"
            );
            let out_1 = m
                .decode(
                    one.audio_codes,
                    one.audio_scales,
                    one.last_frame_pad_length,
                    Some(len),
                )
                .expect("decode single");
            let diff: f32 = (out_1 - out_b.clone().slice([i..i + 1, 0..c, 0..len]))
                .abs()
                .max()
                .into_scalar();
            assert!(diff <= 1e-5, "{name} item {i}: batch vs single {diff}");
        }
    }
}

#[test]
fn broken_checkpoints_are_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = fixture_path("encodec/tiny_24k");
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).expect("copy");
    // Truncated weights.
    let w = std::fs::read(src.join("model.safetensors")).expect("read");
    std::fs::write(dir.path().join("model.safetensors"), &w[..w.len() / 2]).expect("write");
    let ckpt = Checkpoint::local(dir.path()).expect("dir");
    let e = EncodecModel::from_checkpoint(&ckpt, &Device::flex()).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    // A config of another shape than the weights: every mismatch is named.
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).expect("read"))
            .expect("json");
    config["num_filters"] = serde_json::json!(3);
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write");
    std::fs::copy(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .expect("copy");
    let ckpt = Checkpoint::local(dir.path()).expect("dir");
    let e = EncodecModel::from_checkpoint(&ckpt, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("encoder.layers.15.conv") || e.contains("codebook.embed"),
        "{e}"
    );
    // A config that is not an object.
    std::fs::write(dir.path().join("config.json"), "[1, 2]").expect("write");
    let e = EncodecModel::from_checkpoint(
        &Checkpoint::local(dir.path()).expect("dir"),
        &Device::flex(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("config.json") && e.contains("JSON object"),
        "{e}"
    );
}
