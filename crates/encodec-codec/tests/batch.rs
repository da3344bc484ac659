//! Batch equals single (issue 9): EnCodec encode + decode of a batch of equal-length clips give every item the
//! codes of that clip alone (identical) and its audio within `tolerance("batch")`, on the tiny 24/48/32 kHz
//! checkpoints (48 kHz: stereo, chunked, normalised).
//!
//! A batch of clips of different lengths is padded with a `padding_mask`; as in transformers, the padding then
//! enters the 48 kHz model's RMS scale and the convolutions' receptive field near the end of a shorter clip, so
//! those items differ from the clip alone (docs/errors.md § "Batches"). Encode such clips one by one.

use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_parity::tensors::{floats, ints};
use clvp_parity::{compare, fixture_path, tolerance};
use encodec_codec::EncodecModel;

fn device() -> Device {
    Device::flex()
}

/// Deterministic test audio: a sine plus pseudo-random noise (ours is compared with ours; no reference values).
fn clip(seed: u64, channels: usize, len: usize, rate: usize) -> Vec<f32> {
    let mut s = seed;
    let freq = 220.0 + 110.0 * seed as f32;
    (0..channels * len)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
            let t = (i % len) as f32 / rate as f32;
            0.3 * (std::f32::consts::TAU * freq * t).sin() + 0.2 * noise
        })
        .collect()
}

#[test]
fn encode_decode_batch_equals_single() {
    for name in ["tiny_24k", "tiny_48k", "tiny_32k"] {
        let ckpt = Checkpoint::local(fixture_path(&format!("encodec/{name}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let model =
            EncodecModel::from_checkpoint(&ckpt, &device()).unwrap_or_else(|e| panic!("{e}"));
        let cfg = &model.config;
        let (rate, ch) = (cfg.sampling_rate, cfg.audio_channels);
        // Chunked models: every chunk full (chunk + k · stride samples), so the codes stack as HF's do.
        let len = match cfg.chunk_length() {
            Some(chunk) => {
                let stride = ((1.0 - cfg.overlap.unwrap_or(0.0)) * chunk as f64).max(1.0) as usize;
                chunk + 2 * stride
            }
            None => rate / 3 + 17,
        };
        let bandwidth = cfg.target_bandwidths.last().copied();
        let items: Vec<Vec<f32>> = (0..3).map(|i| clip(i + 1, ch, len, rate)).collect();
        let batch: Vec<f32> = items.iter().flatten().copied().collect();
        let x = Tensor::<3>::from_data(TensorData::new(batch, [3, ch, len]), &device());
        let enc = model
            .encode(x, None, bandwidth)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let [chunks, b, n_q, frames] = enc.audio_codes.dims();
        assert_eq!(b, 3, "{name}: batch size of the codes");
        let codes = ints(enc.audio_codes.clone());
        let audio = floats(
            model
                .decode(
                    enc.audio_codes,
                    enc.audio_scales,
                    enc.last_frame_pad_length,
                    Some(len),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        );
        for (i, item) in items.iter().enumerate() {
            let x = Tensor::<3>::from_data(TensorData::new(item.clone(), [1, ch, len]), &device());
            let one = model
                .encode(x, None, bandwidth)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let one_codes = ints(one.audio_codes.clone());
            // [chunks, B, n_q, T]: item i of every chunk.
            let per = n_q * frames;
            let mine: Vec<i64> = (0..chunks)
                .flat_map(|c| codes[(c * b + i) * per..(c * b + i + 1) * per].to_vec())
                .collect();
            assert_eq!(mine, one_codes, "{name}: item {i} codes batched vs alone");
            let one_audio = floats(
                model
                    .decode(
                        one.audio_codes,
                        one.audio_scales,
                        one.last_frame_pad_length,
                        Some(len),
                    )
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
            let n = ch * len;
            let c = compare(&audio[i * n..(i + 1) * n], &one_audio, tolerance("batch"));
            assert!(
                c.passed(),
                "{}",
                c.report(&format!("{name}: item {i} audio"))
            );
        }
    }
}
