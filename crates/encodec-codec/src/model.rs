//! `EncodecModel` (transformers 5.23): `encode` (chunking, per-chunk RMS scale, RVQ, zero-padded last chunk
//! plus `last_frame_pad_length`), `decode` (per-chunk decoding, linear overlap-add, truncation to the mask)
//! and `forward`, loaded from a checkpoint through one name table.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::{Checkpoint, HubError, Layout, ModelKind, NameMap, Weights, load_module};

use crate::config::EncodecConfig;
use crate::error::{EncodecError, OVERFLOW_CAUSE, check_finite_block, check_scale, is_valid_scale};
use crate::host::read_f32;
use crate::quantizer::EncodecResidualVectorQuantizer;
use crate::seanet::{EncodecDecoder, EncodecEncoder, LayerSlot, layer_table};
use crate::stream;

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

/// The HF → burn name table of an EnCodec checkpoint of `config`'s shape (252 tensors for
/// `facebook/encodec_24khz`, 224 for `encodec_48khz`).
///
/// | HF key | burn path | layout |
/// |---|---|---|
/// | `encoder.layers.0.conv.{weight,bias}` (weight norm folded from `weight_g/weight_v` or `parametrizations.weight.original0/1`) | `encoder.conv_in.conv.*` | as is (PyTorch conv layout) |
/// | `encoder.layers.{i}.norm.{weight,bias}` (48 kHz) | `….norm.*` | as is |
/// | `{enc,dec}oder.layers.{i}.block.{1,3}.*`, `….shortcut.*` | `….res.{j}.block.{0,1}.*`, `….shortcut.*` | as is |
/// | `{enc,dec}oder.layers.{i}.lstm.{weight,bias}_{ih,hh}_l{k}` | `….lstm.lstm.{k}` gate controllers | LSTM gates |
/// | `decoder.layers.{3,6,9,12}.conv.*` (transposed, `[cin, cout, k]`) | `decoder.stages.{s}.conv.conv.*` | as is |
/// | `quantizer.layers.{n}.codebook.embed` | same | as is |
/// | `quantizer.layers.{n}.codebook.{inited,cluster_size,embed_avg}` | — | ignored (training buffers) |
///
/// The index of every layer comes from [`layer_table`].
pub fn encodec_name_map(config: &EncodecConfig) -> NameMap {
    let mut map = NameMap::new("encodec");
    for (hf, slot) in layer_table(config) {
        let hf = hf.replace('.', r"\.");
        map = match slot {
            LayerSlot::Conv(burn) => map.rule(
                &format!(r"{hf}\.((?:conv|norm)\.(?:weight|bias))"),
                &format!("{burn}.$1"),
                Layout::AsIs,
            ),
            LayerSlot::ResBlock(burn) => map
                .rule(
                    &format!(r"{hf}\.block\.1\.((?:conv|norm)\.(?:weight|bias))"),
                    &format!("{burn}.block.0.$1"),
                    Layout::AsIs,
                )
                .rule(
                    &format!(r"{hf}\.block\.3\.((?:conv|norm)\.(?:weight|bias))"),
                    &format!("{burn}.block.1.$1"),
                    Layout::AsIs,
                )
                .rule(
                    &format!(r"{hf}\.shortcut\.((?:conv|norm)\.(?:weight|bias))"),
                    &format!("{burn}.shortcut.$1"),
                    Layout::AsIs,
                ),
            LayerSlot::Lstm(burn) => map.rule(
                &format!(r"{hf}\.lstm\.(?:weight|bias)_(?:ih|hh)_l(\d+)"),
                &format!("{burn}.lstm.$1"),
                Layout::LstmGates,
            ),
        };
    }
    map.rule(
        r"quantizer\.layers\.(\d+)\.codebook\.embed",
        "quantizer.layers.$1.codebook.embed",
        Layout::AsIs,
    )
    .ignore(ENCODEC_IGNORED)
}

/// Buffers of `EncodecVectorQuantization` that inference never reads (EMA state of the codebook).
const ENCODEC_IGNORED: &str = r"(?:.*\.)?codebook\.(inited|cluster_size|embed_avg)";

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
        let model = Self::new(config, device)?;
        let map = encodec_name_map(&model.config);
        let nets = load_module(model.nets, weights, &map).map_err(HubError::from)?;
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

    fn check_input(&self, audio: &Tensor<3>, mask: Option<&Tensor<2>>) -> Result<(), EncodecError> {
        let [b, c, l] = audio.dims();
        if c != self.config.audio_channels {
            return Err(EncodecError::Channels {
                expected: self.config.audio_channels,
                found: c,
            });
        }
        if b == 0 || l == 0 {
            return Err(EncodecError::Input(format!(
                "audio of shape [{b}, {c}, {l}] is empty"
            )));
        }
        if let Some(m) = mask
            && m.dims() != [b, l]
        {
            return Err(EncodecError::Input(format!(
                "padding_mask has shape {:?}, the audio needs [{b}, {l}]",
                m.dims()
            )));
        }
        Ok(())
    }

    /// `encode(input_values, padding_mask, bandwidth)`: audio `[B, C, L]`, an optional `[B, L]` mask of 1
    /// (sample) / 0 (padding), a bandwidth in kbps from `target_bandwidths` (`None`: the smallest, as HF).
    ///
    /// The chunks' codes are stacked, the last one right-padded with code 0 by `last_frame_pad_length`. With
    /// unpadded input of some lengths a chunk other than the last is also short (48 kHz: the second-to-last
    /// chunk has 47521..=47680 samples); HF's `torch.stack` fails there, and so does this, with an error that
    /// points to [`Self::encode_segments`] (what `.ecdc` files use).
    pub fn encode(
        &self,
        audio: Tensor<3>,
        padding_mask: Option<Tensor<2>>,
        bandwidth: Option<f64>,
    ) -> Result<EncodedAudio, EncodecError> {
        let segments = self.encode_segments(audio, padding_mask, bandwidth)?;
        let first = segments.first().map(|s| s.codes.dims()[2]).unwrap_or(0);
        let n = segments.len();
        let mut codes = Vec::with_capacity(n);
        let mut scales = Vec::with_capacity(n);
        let mut last_frame_pad_length = 0;
        for (i, seg) in segments.into_iter().enumerate() {
            let [b, n_q, t] = seg.codes.dims();
            let mut c = seg.codes;
            if t != first {
                if i + 1 != n {
                    return Err(EncodecError::Input(format!(
                        "chunk {i} of {n} has {t} code frames where the first has {first}: this input length cannot be \
                         stacked into HF's [chunks, B, n_q, T] codes (transformers fails here too); pad the input \
                         (the feature extractor's padding) or encode segment by segment (.ecdc)"
                    )));
                }
                last_frame_pad_length = first - t;
                let pad = Tensor::<3, Int>::zeros([b, n_q, first - t], &c.device());
                c = Tensor::cat(vec![c, pad], 2);
            }
            codes.push(c);
            if let Some(s) = seg.scale {
                scales.push(s);
            }
        }
        let audio_codes = Tensor::stack(codes, 0);
        let audio_scales = (!scales.is_empty()).then(|| Tensor::stack::<2>(scales, 0));
        Ok(EncodedAudio {
            audio_codes,
            audio_scales,
            last_frame_pad_length,
        })
    }

    /// The chunks of `encode` before stacking: per chunk (the original library's segments when the input is
    /// not padded) its codes `[B, n_q, T_i]` (`T_i = ceil(chunk_len / hop)`) and scale `[B]`.
    pub fn encode_segments(
        &self,
        audio: Tensor<3>,
        padding_mask: Option<Tensor<2>>,
        bandwidth: Option<f64>,
    ) -> Result<Vec<EncodedSegment>, EncodecError> {
        self.check_input(&audio, padding_mask.as_ref())?;
        let (_, n_q) = self.config.check_bandwidth(bandwidth)?;
        let [b, c, len] = audio.dims();
        let (chunk, stride) = match (self.config.chunk_length(), self.config.chunk_stride()) {
            (Some(c), Some(s)) => (c, s),
            _ => (len, len),
        };
        let mut ranges = Vec::new();
        let mut offset = 0;
        while offset < len {
            ranges.push(offset..(offset + chunk).min(len));
            offset += stride;
        }
        let mut out = Vec::with_capacity(ranges.len());
        // Runs of equal-length chunks go through the networks as one batch (every row is computed as
        // on its own), then split back.
        for run in batches(&ranges, |r| r.len(), b) {
            let frames = run
                .iter()
                .map(|r| {
                    let frame = audio.clone().slice([0..b, 0..c, r.clone()]);
                    match &padding_mask {
                        Some(mask) => {
                            frame * mask.clone().slice([0..b, r.clone()]).unsqueeze_dim::<3>(1)
                        }
                        None => frame,
                    }
                })
                .collect::<Vec<_>>();
            let (codes, scale) = self.encode_frame(Tensor::cat(frames, 0), n_q);
            let [_, n_q, t] = codes.dims();
            out.extend((0..run.len()).map(|k| EncodedSegment {
                codes: codes.clone().slice([k * b..(k + 1) * b, 0..n_q, 0..t]),
                scale: scale.clone().map(|s| s.slice(k * b..(k + 1) * b)),
            }));
        }
        Ok(out)
    }

    /// The first half of `_encode_frame`: the RMS normalisation of models that normalise
    /// (`scale = sqrt(mean(mono²)) + 1e-8` over the whole chunk), then the encoder → latent `[B, D, T]`,
    /// scale `[B]`.
    pub fn frame_latent(&self, frame: Tensor<3>) -> (Tensor<3>, Option<Tensor<1>>) {
        let (frame, scale) = self.normalise(frame);
        (self.nets.encoder.forward(frame), scale)
    }

    /// The normalisation of [`Self::frame_latent`]: the frame divided by its scale, and the scale.
    fn normalise(&self, frame: Tensor<3>) -> (Tensor<3>, Option<Tensor<1>>) {
        let [b, c, _] = frame.dims();
        if self.config.normalize {
            let mono = frame.clone().sum_dim(1) / c as f64; // [B, 1, L]
            let scale = mono.square().mean_dim(2).sqrt() + 1e-8; // [B, 1, 1]
            (frame / scale.clone(), Some(scale.reshape([b])))
        } else {
            (frame, None)
        }
    }

    /// `_encode_frame`: [`Self::frame_latent`], then RVQ → codes `[B, n_q, T]`, scale `[B]`. Long frames
    /// stream: encoder and quantizer run block by block.
    pub(crate) fn encode_frame(
        &self,
        frame: Tensor<3>,
        n_q: usize,
    ) -> (Tensor<3, Int>, Option<Tensor<1>>) {
        let (frame, scale) = self.normalise(frame);
        let [b, c, len] = frame.dims();
        let encoder = &self.nets.encoder;
        let frames = len.div_ceil(encoder.hop().max(1));
        if !self.streams(frames) {
            let latent = encoder.forward(frame);
            return (self.nets.quantizer.encode(latent, n_q), scale);
        }
        let head = stream::Stack {
            span: &|a, z| encoder.head_span(a, z),
            down: encoder.hop(),
            up: 1,
            forward: &|x| encoder.head(x),
        };
        let tail = stream::Stack {
            span: &|a, z| encoder.conv_out.span(a, z),
            down: 1,
            up: 1,
            forward: &|x| encoder.tail(x),
        };
        let mut codes = Vec::new();
        let streamed = stream::run::<std::convert::Infallible>(
            &head,
            &encoder.lstm,
            &tail,
            &mut |lo, hi| frame.clone().slice([0..b, 0..c, lo..hi]),
            stream::Lengths {
                input: len,
                mid: frames,
                output: frames,
            },
            self.stream_frames,
            &mut |latent| {
                codes.push(self.nets.quantizer.encode(latent, n_q));
                Ok(())
            },
        );
        let Ok(()) = streamed;
        (Tensor::cat(codes, 2), scale)
    }

    /// The decoder on codes `[B, n_q, T]` (checked) → audio `[B, C, T * hop]`; long inputs stream into one
    /// output buffer.
    pub(crate) fn decode_codes(&self, codes: Tensor<3, Int>) -> Result<Tensor<3>, EncodecError> {
        let [b, n_q, t] = codes.dims();
        let decoder = &self.nets.decoder;
        let quantizer = &self.nets.quantizer;
        if !self.streams(t) {
            return Ok(decoder.forward(quantizer.decode(codes)));
        }
        let hop = decoder.hop();
        let c = self.config.audio_channels;
        let total = t * hop;
        let mut out = vec![0.0f32; b * c * total];
        let mut at = 0;
        self.decode_tiles::<EncodecError>(
            &mut stream::Tiler::default(),
            &mut |lo, hi| codes.clone().slice([0..b, 0..n_q, lo..hi]),
            stream::Extent::Whole(stream::Lengths {
                input: t,
                mid: t,
                output: total,
            }),
            &mut |piece| {
                let [_, _, n] = piece.dims();
                let values = read_f32(piece)
                    .map_err(|e| EncodecError::Input(format!("decoded audio: {e:?}")))?;
                for (row, src) in values.chunks_exact(n).enumerate() {
                    out[row * total + at..row * total + at + n].copy_from_slice(src);
                }
                at += n;
                Ok(())
            },
        )?;
        Ok(Tensor::from_data(
            TensorData::new(out, [b, c, total]),
            &codes.device(),
        ))
    }

    /// Check that every code of chunk `chunk` (`[B, n_q, T]`) is inside the codebook and that there are not
    /// more codebooks than layers.
    fn check_codes(&self, chunk: usize, codes: &Tensor<3, Int>) -> Result<(), EncodecError> {
        let [_, n_q, t] = codes.dims();
        if n_q == 0 || n_q > self.config.num_quantizers() {
            return Err(EncodecError::Input(format!(
                "codes have {n_q} codebooks; this model has 1..={}",
                self.config.num_quantizers()
            )));
        }
        let data = codes.clone().into_data().convert::<i64>();
        let values = data
            .as_slice::<i64>()
            .map_err(|e| EncodecError::Input(format!("codes are not integers: {e:?}")))?;
        let size = self.config.codebook_size;
        if let Some(pos) = values.iter().position(|&v| v < 0 || v as usize >= size) {
            return Err(EncodecError::CodeOutOfRange {
                value: values[pos],
                chunk,
                item: pos / (t * n_q),
                codebook: (pos / t) % n_q,
                frame: pos % t,
                size,
            });
        }
        Ok(())
    }

    /// `decode(audio_codes, audio_scales, padding_mask, last_frame_pad_length)`: codes `[chunks, B, n_q, T]`,
    /// scales `[chunks, B]` (models that normalise), and the length of the padding mask (`Some(L)` truncates
    /// the output to `L` samples when it is longer, as HF does with `padding_mask.shape[-1]`).
    pub fn decode(
        &self,
        codes: Tensor<4, Int>,
        scales: Option<Tensor<2>>,
        last_frame_pad_length: usize,
        output_length: Option<usize>,
    ) -> Result<Tensor<3>, EncodecError> {
        let [chunks, b, n_q, t] = codes.dims();
        if let Some(s) = &scales
            && s.dims() != [chunks, b]
        {
            return Err(EncodecError::Input(format!(
                "audio_scales have shape {:?}, the codes need [{chunks}, {b}]",
                s.dims()
            )));
        }
        if self.config.normalize && scales.is_none() {
            return Err(EncodecError::Input(
                "this model normalises its chunks: the codes need their audio_scales".into(),
            ));
        }
        if last_frame_pad_length >= t {
            return Err(EncodecError::Input(format!(
                "last_frame_pad_length {last_frame_pad_length} leaves no frames of the {t} in the last chunk"
            )));
        }
        let segments = (0..chunks)
            .map(|i| {
                let keep = if i + 1 == chunks {
                    t - last_frame_pad_length
                } else {
                    t
                };
                EncodedSegment {
                    codes: codes
                        .clone()
                        .slice([i..i + 1, 0..b, 0..n_q, 0..keep])
                        .reshape([b, n_q, keep]),
                    scale: scales
                        .as_ref()
                        .map(|s| s.clone().slice([i..i + 1, 0..b]).reshape([b])),
                }
            })
            .collect();
        self.decode_segments(segments, output_length)
    }

    /// Decode chunks (codes `[B, n_q, T_i]`, scale `[B]`) and overlap-add them; `output_length` truncates.
    ///
    /// Each chunk is decoded, scaled and added into the output as it comes (HF's `_linear_overlap_add`, the
    /// same float32 operations in the same order), so memory holds the output and one chunk.
    pub fn decode_segments(
        &self,
        segments: Vec<EncodedSegment>,
        output_length: Option<usize>,
    ) -> Result<Tensor<3>, EncodecError> {
        let chunked = self.config.chunk_length().is_some() && self.config.chunk_stride().is_some();
        let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
            return Err(EncodecError::Input("no chunks of codes to decode".into()));
        };
        if !chunked && segments.len() != 1 {
            return Err(EncodecError::Input(format!(
                "this model does not chunk: expected one chunk of codes, got {}",
                segments.len()
            )));
        }
        let hop = self.nets.decoder.hop();
        let b = first.codes.dims()[0];
        let c = self.config.audio_channels;
        let frame_len = first.codes.dims()[2] * hop;
        let stride = if chunked {
            self.config.chunk_stride().unwrap_or(1)
        } else {
            frame_len
        };
        let total = stride * (segments.len() - 1) + last.codes.dims()[2] * hop;
        let weight = overlap_weights(frame_len);
        let mut sum_weight = vec![0.0f32; total];
        let mut out = vec![0.0f32; b * c * total];
        let device = first.codes.device();
        for (i, seg) in segments.iter().enumerate() {
            self.check_codes(i, &seg.codes)?;
            let [bi, _, t] = seg.codes.dims();
            if t == 0 {
                return Err(EncodecError::Input(format!("chunk {i} has no code frames")));
            }
            if bi != b {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has a batch of {bi}, chunk 0 has {b}"
                )));
            }
            if seg.scale.is_none() && self.config.normalize {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has no scale, and this model normalises its chunks"
                )));
            }
            if t * hop > weight.len() || i * stride + t * hop > total {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has {t} code frames, more than chunk 0's {}",
                    frame_len / hop.max(1)
                )));
            }
        }
        let mut offset = 0;
        // Runs of chunks with as many frames go through the decoder as one batch (every row is
        // computed as on its own), then are scaled and added in order as before.
        for run in batches(&segments, |s| s.codes.dims()[2] * hop, b) {
            let codes = Tensor::cat(run.iter().map(|s| s.codes.clone()).collect(), 0);
            let n = codes.dims()[2] * hop;
            let values = read_f32(self.decode_codes(codes)?)
                .map_err(|e| EncodecError::Input(format!("decoded audio: {e:?}")))?;
            for (seg, decoded) in run.iter().zip(values.chunks_exact(b * c * n)) {
                let scale = match &seg.scale {
                    Some(s) => Some(
                        read_f32(s.clone())
                            .map_err(|e| EncodecError::Input(format!("audio scales: {e:?}")))?,
                    ),
                    None => None,
                };
                if let Some(bad) = scale.iter().flatten().find(|s| !is_valid_scale(**s)) {
                    check_scale(offset / stride.max(1), *bad)?;
                }
                for (row, src) in decoded.chunks_exact(n).enumerate() {
                    let dst = &mut out[row * total + offset..row * total + offset + n];
                    let s = scale.as_ref().map(|s| s[row / c]);
                    match (chunked, s) {
                        (true, Some(s)) => {
                            for ((o, v), w) in dst.iter_mut().zip(src).zip(&weight) {
                                *o += w * (v * s);
                            }
                        }
                        (true, None) => {
                            for ((o, v), w) in dst.iter_mut().zip(src).zip(&weight) {
                                *o += w * v;
                            }
                        }
                        (false, Some(s)) => {
                            for (o, v) in dst.iter_mut().zip(src) {
                                *o = v * s;
                            }
                        }
                        (false, None) => dst.copy_from_slice(src),
                    }
                }
                for (s, w) in sum_weight[offset..offset + n].iter_mut().zip(&weight) {
                    *s += *w;
                }
                offset += stride;
            }
        }
        if chunked && sum_weight.contains(&0.0) {
            return Err(EncodecError::Input(
                "overlap-add left samples with zero total weight (chunk stride larger than the chunks)".into(),
            ));
        }
        let keep = output_length.map_or(total, |l| l.min(total));
        let mut audio = Vec::with_capacity(b * c * keep);
        for row in out.chunks_exact(total) {
            if chunked {
                audio.extend(row[..keep].iter().zip(&sum_weight).map(|(v, w)| v / w));
            } else {
                audio.extend_from_slice(&row[..keep]);
            }
        }
        drop(out);
        check_finite_block(&audio, keep, 0, OVERFLOW_CAUSE)?;
        Ok(Tensor::from_data(
            TensorData::new(audio, [b, c, keep]),
            &device,
        ))
    }

    /// `forward(input_values, padding_mask, bandwidth)`: encode then decode; the output has the input's length.
    pub fn forward(
        &self,
        audio: Tensor<3>,
        padding_mask: Option<Tensor<2>>,
        bandwidth: Option<f64>,
    ) -> Result<(EncodedAudio, Tensor<3>), EncodecError> {
        let len = audio.dims()[2];
        let encoded = self.encode(audio, padding_mask, bandwidth)?;
        let values = self.decode(
            encoded.audio_codes.clone(),
            encoded.audio_scales.clone(),
            encoded.last_frame_pad_length,
            Some(len),
        )?;
        Ok((encoded, values))
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
