//! `EncodecModel.decode` and `forward` (transformers 5.23): the codes' checks, per-chunk decoding, the
//! linear overlap-add and the truncation to the mask.

use burn::tensor::{Int, Tensor, TensorData};

use super::{EncodecModel, EncodedAudio, EncodedSegment, batches, overlap_weights};
use crate::error::{EncodecError, OVERFLOW_CAUSE, check_finite_block, check_scale, is_valid_scale};
use crate::readback::read_f32;
use crate::stream;

impl EncodecModel {
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
    pub(super) fn check_codes(
        &self,
        chunk: usize,
        codes: &Tensor<3, Int>,
    ) -> Result<(), EncodecError> {
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
