//! `EncodecModel` (transformers 5.23): `encode` (chunking, per-chunk RMS scale, RVQ, zero-padded last chunk
//! plus `last_frame_pad_length`), `decode` (per-chunk decoding, linear overlap-add, truncation to the mask)
//! and `forward`, loaded from a hub checkpoint or one of Meta's own `.th` files through a name table each
//! (`names.rs`, `meta.rs`).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use clvp_hub::{Checkpoint, HubError, ModelKind, Weights, load_module};

use crate::config::EncodecConfig;
use crate::error::EncodecError;
use crate::quantizer::EncodecResidualVectorQuantizer;
use crate::seanet::{EncodecDecoder, EncodecEncoder};
use crate::stream;

mod decode;
mod encode;
mod meta;
mod names;

pub use meta::meta_config;
pub use names::{HF, META, Spelling, encodec_name_map, meta_name_map, name_map};

/// The networks of `EncodecModel`.
#[derive(Module, Debug)]
pub struct EncodecNetworks {
    /// SEANet encoder.
    pub encoder: EncodecEncoder,
    /// SEANet decoder.
    pub decoder: EncodecDecoder,
    /// Residual VQ.
    pub quantizer: EncodecResidualVectorQuantizer,
}

/// `EncodecModel`: the networks and the configuration.
#[derive(Debug)]
pub struct EncodecModel {
    /// The modules.
    pub nets: EncodecNetworks,
    /// The checkpoint's configuration.
    pub config: EncodecConfig,
    /// Code frames per streamed block; inputs longer than one block stream ([`crate::stream`]).
    stream_frames: usize,
}

/// The output of [`EncodecModel::encode`] (HF's `EncodecEncoderOutput`).
#[derive(Debug, Clone)]
pub struct EncodedAudio {
    /// `[chunks, B, n_q, T]`; the last chunk's codes are right-padded with 0 by `last_frame_pad_length`.
    pub audio_codes: Tensor<4, Int>,
    /// `[chunks, B]` RMS scales when the model normalises.
    pub audio_scales: Option<Tensor<2>>,
    /// Code frames of padding at the end of the last chunk.
    pub last_frame_pad_length: usize,
}

/// One chunk's codes `[B, n_q, T]` and scale `[B]` (models that normalise).
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    /// Codes `[B, n_q, T]`.
    pub codes: Tensor<3, Int>,
    /// RMS scale `[B]`.
    pub scale: Option<Tensor<1>>,
}

/// Input samples (batch rows × samples per row) the networks take at once when chunks are batched: five
/// 1 s chunks of `encodec_48khz`, about 30 MiB per activation of its first layer (P6: two chunks 1.89 s,
/// five 1.59–1.71 s, ten 1.79–1.80 s with 160 MB more peak memory).
const CHUNK_BATCH_SAMPLES: usize = 1 << 18;

/// `items` split into runs of consecutive items of equal `len(item)`, each run of at most
/// [`CHUNK_BATCH_SAMPLES`] `/ (rows · len)` items (at least one).
pub(crate) fn batches<T>(items: &[T], len: impl Fn(&T) -> usize, rows: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while let Some(first) = rest.first() {
        let n = len(first);
        let most = (CHUNK_BATCH_SAMPLES / (rows * n).max(1)).max(1);
        let k = rest
            .iter()
            .take(most)
            .take_while(|item| len(item) == n)
            .count();
        let (run, tail) = rest.split_at(k);
        out.push(run);
        rest = tail;
    }
    out
}

/// `linspace(0, 1, n + 2)[1:-1]` as torch computes it in float32, then the triangle `0.5 - |t - 0.5|`.
pub(crate) fn overlap_weights(n: usize) -> Vec<f32> {
    let steps = n + 2;
    let step = 1.0f32 / (steps - 1) as f32;
    let half = steps / 2;
    (1..=n)
        .map(|j| {
            let t = if j < half {
                j as f32 * step
            } else {
                1.0 - (steps - 1 - j) as f32 * step
            };
            0.5 - (t - 0.5).abs()
        })
        .collect()
}

impl EncodecModel {
    /// A zero-initialised model of `config`'s shape.
    pub fn new(config: EncodecConfig, device: &Device) -> Result<Self, EncodecError> {
        config.validate("<memory>")?;
        let nets = EncodecNetworks {
            encoder: EncodecEncoder::new(&config, device),
            decoder: EncodecDecoder::new(&config, device),
            quantizer: EncodecResidualVectorQuantizer::new(
                config.num_quantizers(),
                config.codebook_size,
                config.hidden_size,
                device,
            ),
        };
        let stream_frames = (stream::TILE_SAMPLES / config.hop_length().max(1)).max(1);
        Ok(EncodecModel {
            nets,
            config,
            stream_frames,
        })
    }

    /// Stream inputs of more than `frames` code frames in blocks of that many (default: about
    /// [`stream::TILE_SAMPLES`] samples); smaller blocks use less memory and more time, the result is the
    /// same. A stream ([`crate::EncodeStream`], [`crate::DecodeStream`]) runs a block as soon as its frames are
    /// in, so this is also its latency; chunked models batch no more chunks than such a block holds (one
    /// chunk for a small value). Models with GroupNorm always run whole.
    pub fn with_stream_frames(mut self, frames: usize) -> Self {
        self.set_stream_frames(frames);
        self
    }

    /// [`Self::with_stream_frames`] in place.
    pub fn set_stream_frames(&mut self, frames: usize) {
        self.stream_frames = frames.max(1);
    }

    /// Run SEANet's convolutions on the host kernels (`true`, the default on a CPU backend: `gemm` on the
    /// padded input's shifted views, ELU fused into the padding) or through burn's ops (`false`, the only
    /// choice on a GPU: `true` there is an [`EncodecError::Input`]). Both compute the same functions.
    pub fn set_host_kernels(&mut self, on: bool) -> Result<(), EncodecError> {
        let device = self.device();
        if on && !clvp_hub::is_cpu(&device) {
            return Err(EncodecError::Input(format!(
                "host kernels need a CPU backend (flex or ndarray), the model is on {device:?}"
            )));
        }
        self.nets.encoder.host_kernels = on;
        self.nets.decoder.host_kernels = on;
        Ok(())
    }

    /// Whether SEANet's convolutions run on the host kernels ([`Self::set_host_kernels`]).
    pub fn host_kernels(&self) -> bool {
        self.nets.encoder.host_kernels
    }

    /// Whether a frame of `frames` code frames streams.
    pub(crate) fn streams(&self, frames: usize) -> bool {
        frames > self.stream_frames && self.tiles()
    }

    /// Whether the networks can run in tiles (no GroupNorm).
    pub(crate) fn tiles(&self) -> bool {
        self.nets.encoder.is_local() && self.nets.decoder.is_local()
    }

    /// Code frames per streamed block ([`Self::with_stream_frames`]).
    pub(crate) fn stream_frames(&self) -> usize {
        self.stream_frames
    }

    /// Chunks of `len` samples the stream encoder and decoder take at once: as many as the whole pass, or as
    /// the samples of a block of [`Self::stream_frames`] hold if fewer (at least one: a stream of one-frame
    /// blocks codes each chunk as soon as it is in). Each chunk's result is the same in any batch.
    pub(crate) fn chunk_batch(&self, len: usize) -> usize {
        let len = len.max(1);
        let block = self.stream_frames.saturating_mul(self.config.hop_length()) / len;
        (CHUNK_BATCH_SAMPLES / len).min(block).max(1)
    }

    /// The device the weights are on.
    pub(crate) fn device(&self) -> Device {
        self.nets.encoder.conv_in.conv.weight.val().device()
    }

    /// Read `config.json` and the weights of `checkpoint` onto `device`, strictly.
    pub fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, EncodecError> {
        checkpoint.expect_model(ModelKind::Encodec)?;
        let config = EncodecConfig::from_file(checkpoint.require("config.json")?)?;
        let weights = checkpoint.weights()?;
        Self::from_weights(config, &weights, device)
    }

    /// Build from a configuration and opened weights.
    pub fn from_weights(
        config: EncodecConfig,
        weights: &Weights,
        device: &Device,
    ) -> Result<Self, EncodecError> {
        weights.expect_model(ModelKind::Encodec)?;
        let map = encodec_name_map(&config);
        Self::load(config, weights, &map, device)
    }

    /// A model of `config`'s shape with `weights` loaded strictly through `map`.
    fn load(
        config: EncodecConfig,
        weights: &Weights,
        map: &clvp_hub::NameMap,
        device: &Device,
    ) -> Result<Self, EncodecError> {
        let model = Self::new(config, device)?;
        let nets = load_module(model.nets, weights, map).map_err(HubError::from)?;
        Ok(EncodecModel {
            nets,
            config: model.config,
            stream_frames: model.stream_frames,
        })
    }

    /// The latent `[B, D, ceil(L / hop)]` of audio `[B, C, L]` (no chunking, no normalisation).
    pub fn encoder_latent(&self, audio: Tensor<3>) -> Tensor<3> {
        self.nets.encoder.forward(audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_weights_are_torchs_triangle() {
        // torch.linspace(0, 1, 6, dtype=float32)[1:-1] = [0.2, 0.4, 0.6, 0.8] -> 0.5 - |t - 0.5|
        let w = overlap_weights(4);
        let want = [0.2f32, 0.4, 0.4, 0.2];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{w:?}");
        }
    }

    #[test]
    fn name_map_covers_the_24khz_key_list() {
        // spec §8.1: a few keys and where they go.
        let map = encodec_name_map(&EncodecConfig::default());
        for (key, target) in [
            (
                "encoder.layers.0.conv.weight",
                "encoder.conv_in.conv.weight",
            ),
            (
                "encoder.layers.10.block.3.conv.bias",
                "encoder.stages.3.res.0.block.1.conv.bias",
            ),
            (
                "decoder.layers.12.conv.weight",
                "decoder.stages.3.conv.conv.weight",
            ),
            (
                "decoder.layers.4.shortcut.conv.weight",
                "decoder.stages.0.res.0.shortcut.conv.weight",
            ),
            ("encoder.layers.13.lstm.weight_hh_l1", "encoder.lstm.lstm.1"),
            (
                "quantizer.layers.31.codebook.embed",
                "quantizer.layers.31.codebook.embed",
            ),
        ] {
            let (_, t) = map.lookup(key).unwrap_or_else(|| panic!("{key} unmapped"));
            assert_eq!(t, target, "{key}");
        }
        assert!(map.lookup("encoder.layers.2.conv.weight").is_none());
    }
}
