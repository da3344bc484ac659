//! `EncodecModel.encode` (transformers 5.23): the input's checks, chunking, the per-chunk RMS scale, the
//! encoder and the RVQ, streamed block by block for long chunks.

use burn::tensor::{Int, Tensor, TensorData};

use super::{EncodecModel, EncodedAudio, EncodedSegment, batches};
use crate::error::EncodecError;
use crate::stream;

impl EncodecModel {
    pub(super) fn check_input(
        &self,
        audio: &Tensor<3>,
        mask: Option<&Tensor<2>>,
    ) -> Result<(), EncodecError> {
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

    /// The normalisation of [`Self::frame_latent`]: the frame divided by its scale, and the scale. The scale is
    /// computed on the host in torch's order of float32 operations ([`scale`](super::scale)), so that it is the
    /// reference's to the bit (it is written into `.ecdc` files); the frame is read back for it (one chunk).
    fn normalise(&self, frame: Tensor<3>) -> (Tensor<3>, Option<Tensor<1>>) {
        let [b, c, l] = frame.dims();
        if !self.config.normalize {
            return (frame, None);
        }
        let host = frame
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .ok()
            .and_then(|x| {
                x.chunks_exact((c * l).max(1))
                    .map(|row| clvp_kernels::torch_sum::rms_scale(row, c, l).ok())
                    .collect::<Option<Vec<f32>>>()
            });
        let scale = match host {
            Some(per_row) => Tensor::<1>::from_data(TensorData::new(per_row, [b]), &frame.device())
                .reshape([b, 1, 1]),
            // A backend that cannot hand the frame back: the same formula as tensor ops.
            None => {
                let mono = frame.clone().sum_dim(1) / c as f64; // [B, 1, L]
                mono.square().mean_dim(2).sqrt() + 1e-8 // [B, 1, 1]
            }
        };
        (frame / scale.clone(), Some(scale.reshape([b])))
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
}
