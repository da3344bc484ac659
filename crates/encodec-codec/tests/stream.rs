//! Streaming equals the whole pass (issue 9, long input in bounded memory): the unchunked tiny 24 kHz (causal)
//! and 32 kHz (non-causal) checkpoints encode and decode block by block ([`EncodecModel::with_stream_frames`],
//! down to one code frame per block, and block sizes that do not divide the length) with the codes of the
//! whole pass and its audio within `tolerance("stream")`. The whole pass itself is checked against
//! transformers by `tests/parity.rs`.

use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_parity::tensors::{floats, ints};
use clvp_parity::{compare, fixture_path, tolerance};
use encodec_codec::EncodecModel;

fn device() -> Device {
    Device::flex()
}

fn load(name: &str) -> EncodecModel {
    let ckpt = Checkpoint::local(fixture_path(&format!("encodec/{name}")))
        .unwrap_or_else(|e| panic!("{e}"));
    EncodecModel::from_checkpoint(&ckpt, &device()).unwrap_or_else(|e| panic!("{e}"))
}

/// A chirp plus pseudo-random noise, different in every item.
fn clip(seed: u64, len: usize, rate: usize) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
            let t = i as f32 / rate as f32;
            0.4 * (std::f32::consts::TAU * (150.0 + 900.0 * t + 40.0 * seed as f32) * t).sin()
                + 0.15 * noise
        })
        .collect()
}

#[test]
fn streamed_encode_and_decode_equal_the_whole_pass() {
    for name in ["tiny_24k", "tiny_32k"] {
        let whole = load(name);
        let rate = whole.config.sampling_rate;
        let hop = whole.config.hop_length();
        let bandwidth = whole.config.target_bandwidths.last().copied();
        // 2 items; lengths: a multiple of the hop, one sample past it, and one short of it.
        for len in [24 * hop, 24 * hop + 1, 31 * hop - 1] {
            let data: Vec<f32> = (1..=2).flat_map(|s| clip(s, len, rate)).collect();
            let x = Tensor::<3>::from_data(TensorData::new(data, [2, 1, len]), &device());
            let want = whole
                .encode(x.clone(), None, bandwidth)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let want_codes = ints(want.audio_codes.clone());
            let want_audio = floats(
                whole
                    .decode(want.audio_codes.clone(), None, 0, Some(len))
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
            assert_eq!(want_audio.len(), 2 * len, "{name}: whole-pass length");
            for frames in [1, 2, 5, 7, 16] {
                let streamed = load(name).with_stream_frames(frames);
                let got = streamed
                    .encode(x.clone(), None, bandwidth)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    got.audio_codes.dims(),
                    want.audio_codes.dims(),
                    "{name} L={len} block={frames}: code shape"
                );
                assert_eq!(
                    ints(got.audio_codes.clone()),
                    want_codes,
                    "{name} L={len} block={frames}: codes"
                );
                // The decoder on the same codes, streamed vs whole.
                let audio = floats(
                    streamed
                        .decode(want.audio_codes.clone(), None, 0, Some(len))
                        .unwrap_or_else(|e| panic!("{name}: {e}")),
                );
                let c = compare(&audio, &want_audio, tolerance("stream"));
                let label = format!("{name} L={len} block={frames}: streamed decode");
                assert!(c.passed(), "{}", c.report(&label));
            }
        }
    }
}

#[test]
fn streaming_never_applies_to_groupnorm_models() {
    // tiny_48k has time_group_norm: whatever the block size, it runs whole and matches the default.
    let whole = load("tiny_48k");
    let rate = whole.config.sampling_rate;
    let len = rate / 5 + 3;
    let data: Vec<f32> = (1..=2).flat_map(|s| clip(s, len, rate)).collect();
    let x = Tensor::<3>::from_data(TensorData::new(data, [1, 2, len]), &device());
    let bandwidth = whole.config.target_bandwidths.first().copied();
    let a = whole
        .encode_segments(x.clone(), None, bandwidth)
        .unwrap_or_else(|e| panic!("{e}"));
    let b = load("tiny_48k")
        .with_stream_frames(1)
        .encode_segments(x, None, bandwidth)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.len(), b.len());
    for (sa, sb) in a.into_iter().zip(b) {
        assert_eq!(ints(sa.codes), ints(sb.codes));
    }
}
