//! [`EncodecModel::decode_stream`]: codes to audio, handed out block by block.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{EncodecError, OVERFLOW_CAUSE, check_finite_block, check_scale};
use crate::model::EncodecModel;
use crate::readback::read_f32;
use crate::stream::{Extent, Lengths, Stack, Tiler};

use super::DecodeStream;

/// Code frames [`EncodecModel::decode_stream`] pushes at a time.
const PUSH_FRAMES: usize = 1 << 14;

/// One segment's codes, `num_codebooks × frames` codebook-major (`codes[k * frames + t]`), in whatever
/// integer type the caller holds them (`.ecdc` files: `u16`; HF tensors: `i64`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CodesRef<'a> {
    /// 16-bit codes (`.ecdc`).
    U16(&'a [u16]),
    /// 32-bit codes.
    U32(&'a [u32]),
    /// 64-bit codes (HF's `audio_codes`).
    I64(&'a [i64]),
}

impl CodesRef<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            CodesRef::U16(c) => c.len(),
            CodesRef::U32(c) => c.len(),
            CodesRef::I64(c) => c.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> i64 {
        match self {
            CodesRef::U16(c) => i64::from(c[i]),
            CodesRef::U32(c) => i64::from(c[i]),
            CodesRef::I64(c) => c[i],
        }
    }

    /// Frames `[lo, hi)` of every codebook, as a `[1, k, hi - lo]` tensor.
    fn frames(
        &self,
        k: usize,
        frames: usize,
        lo: usize,
        hi: usize,
        device: &burn::tensor::Device,
    ) -> Tensor<3, Int> {
        let values: Vec<i64> = (0..k)
            .flat_map(|q| (q * frames + lo..q * frames + hi).map(|i| self.get(i)))
            .collect();
        Tensor::from_data(TensorData::new(values, [1, k, hi - lo]), device)
    }
}

/// One segment (chunk) to decode: its codes, frames and scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentRef<'a> {
    /// The codes, `num_codebooks × frames`.
    pub codes: CodesRef<'a>,
    /// Code frames.
    pub frames: usize,
    /// The segment's RMS scale (models that normalise).
    pub scale: Option<f32>,
}

/// The sink of decoded audio: a planar block `[channel][frame]` and its frame count.
pub type AudioSink<'s, E> = dyn FnMut(&[f32], usize) -> Result<(), E> + 's;

impl EncodecModel {
    /// Samples per channel that [`Self::decode_stream`] hands out for `segments`: their decoded length, cut to
    /// `audio_length`. Known before decoding (a WAV header can be written first).
    pub fn decoded_length(&self, segments: &[SegmentRef], audio_length: usize) -> usize {
        let hop = self.nets.decoder.hop();
        let stride = self.config.chunk_stride().unwrap_or(0);
        let total = match segments.split_last() {
            Some((last, rest)) => (stride * rest.len()).saturating_add(last.frames * hop),
            None => 0,
        };
        total.min(audio_length)
    }

    /// Decode one clip's segments (codes checked as [`Self::decode_segments`] checks them, before any audio is
    /// made) and hand the audio, cut to `audio_length` samples, to `sink` in order as it becomes final: the
    /// samples of [`Self::decode_segments`] in the memory of a block. Returns the samples per channel handed out.
    pub fn decode_stream<E: From<EncodecError>>(
        &self,
        segments: &[SegmentRef],
        num_codebooks: usize,
        audio_length: usize,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<usize, E> {
        self.check_segments(segments, num_codebooks)?;
        let mut stream = DecodeStream::new(self, num_codebooks, Some(audio_length))?;
        for seg in segments {
            let mut lo = 0;
            while lo < seg.frames {
                let hi = (lo + PUSH_FRAMES).min(seg.frames);
                stream.push_range(seg.codes, seg.frames, lo, hi, sink)?;
                lo = hi;
            }
            stream.end_segment(seg.scale, sink)?;
        }
        stream.finish(sink)
    }

    /// `decode_segments`' checks, on the host codes: the codebook count, each chunk's code count, frames and
    /// scale ([`crate::check_scale`]), and every code inside the codebook. Callers that build integer tensors
    /// from codes read from a file run it first: a code beyond `i32` would fail inside the tensor library.
    pub fn check_segments(&self, segments: &[SegmentRef], k: usize) -> Result<(), EncodecError> {
        let chunked = self.config.chunk_length().is_some() && self.config.chunk_stride().is_some();
        let Some(first) = segments.first() else {
            return Err(EncodecError::Input("no chunks of codes to decode".into()));
        };
        if !chunked && segments.len() != 1 {
            return Err(EncodecError::Input(format!(
                "this model does not chunk: expected one chunk of codes, got {}",
                segments.len()
            )));
        }
        if k == 0 || k > self.config.num_quantizers() {
            return Err(EncodecError::Input(format!(
                "codes have {k} codebooks; this model has 1..={}",
                self.config.num_quantizers()
            )));
        }
        let hop = self.nets.decoder.hop();
        let stride = self.config.chunk_stride().unwrap_or(1);
        let size = self.config.codebook_size;
        let total = match segments.split_last() {
            Some((last, rest)) => (stride * rest.len()).saturating_add(last.frames * hop),
            None => 0,
        };
        for (i, seg) in segments.iter().enumerate() {
            let t = seg.frames;
            if seg.codes.len() != k.saturating_mul(t) {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has {} codes for {k} codebooks × {t} frames",
                    seg.codes.len()
                )));
            }
            if let Some(pos) = (0..seg.codes.len()).find(|&p| {
                let v = seg.codes.get(p);
                v < 0 || v as u64 >= size as u64
            }) {
                return Err(EncodecError::CodeOutOfRange {
                    value: seg.codes.get(pos),
                    chunk: i,
                    item: 0,
                    codebook: pos / t,
                    frame: pos % t,
                    size,
                });
            }
            if t == 0 {
                return Err(EncodecError::Input(format!("chunk {i} has no code frames")));
            }
            if seg.scale.is_none() && self.config.normalize {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has no scale, and this model normalises its chunks"
                )));
            }
            if let Some(s) = seg.scale {
                check_scale(i, s)?;
            }
            if chunked && (t > first.frames || (i * stride).saturating_add(t * hop) > total) {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has {t} code frames, more than chunk 0's {}",
                    first.frames
                )));
            }
        }
        Ok(())
    }

    /// The one segment of an unchunked model: the decoder whole, or tiled ([`crate::stream`]) with each piece
    /// handed out as it comes.
    pub(crate) fn decode_whole<E: From<EncodecError>>(
        &self,
        seg: &SegmentRef,
        k: usize,
        out: &mut Output<'_, '_, E>,
    ) -> Result<(), E> {
        let device = self.device();
        let (decoder, quantizer) = (&self.nets.decoder, &self.nets.quantizer);
        let t = seg.frames;
        let scale = seg.scale;
        if !self.streams(t) {
            let codes = seg.codes.frames(k, t, 0, t, &device);
            return out.piece(decoder.forward(quantizer.decode(codes)), scale);
        }
        let lengths = Lengths {
            input: t,
            mid: t,
            output: t * decoder.hop(),
        };
        self.decode_tiles(
            &mut Tiler::default(),
            &mut |lo, hi| seg.codes.frames(k, t, lo, hi, &device),
            Extent::Whole(lengths),
            &mut |piece| out.piece(piece, scale),
        )
        .map(drop)
    }

    /// The decoder's tiles (`conv_in`, the LSTM carried, the upsampling tail) over codes read through
    /// `codes(lo, hi)` as far as `extent` allows, each piece of audio handed to `emit`; returns the first code
    /// frame a later call may read (the ones before it can be dropped). Used by the whole-segment decode and
    /// by the push decoder.
    pub(crate) fn decode_tiles<E>(
        &self,
        tiler: &mut Tiler,
        codes: &mut dyn FnMut(usize, usize) -> Tensor<3, Int>,
        extent: Extent,
        emit: &mut dyn FnMut(Tensor<3>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let (decoder, quantizer) = (&self.nets.decoder, &self.nets.quantizer);
        let head = Stack {
            span: &|a, z| decoder.conv_in.span(a, z),
            down: 1,
            up: 1,
            forward: &|x| decoder.head(x),
        };
        let tail = Stack {
            span: &|a, z| decoder.tail_span(a, z),
            down: 1,
            up: decoder.hop(),
            forward: &|x| decoder.tail(x),
        };
        tiler.advance(
            &head,
            &decoder.lstm,
            &tail,
            &mut |lo, hi| quantizer.decode(codes(lo, hi)),
            extent,
            self.stream_frames(),
            emit,
        )?;
        Ok(tiler.input_from(&head))
    }
}

/// Audio handed to the sink, cut to `keep` samples per channel.
pub(crate) struct Output<'a, 's, E> {
    sink: &'a mut AudioSink<'s, E>,
    channels: usize,
    /// Samples per channel handed out.
    pub(crate) at: usize,
    keep: usize,
}

impl<'a, 's, E: From<EncodecError>> Output<'a, 's, E> {
    /// Output to `sink` for `model`'s channels, `at` samples handed out already, at most `keep` in all.
    pub(crate) fn new(
        sink: &'a mut AudioSink<'s, E>,
        model: &EncodecModel,
        at: usize,
        keep: usize,
    ) -> Self {
        Output {
            sink,
            channels: model.config.audio_channels,
            at,
            keep,
        }
    }

    /// A decoded `[1, C, n]` piece, times `scale`.
    pub(crate) fn piece(&mut self, piece: Tensor<3>, scale: Option<f32>) -> Result<(), E> {
        let [_, _, n] = piece.dims();
        let mut values =
            read_f32(piece).map_err(|e| EncodecError::Input(format!("decoded audio: {e:?}")))?;
        if let Some(s) = scale {
            values.iter_mut().for_each(|v| *v *= s);
        }
        self.block(&values, n)
    }

    /// A planar block of `n` samples per channel.
    pub(crate) fn block(&mut self, values: &[f32], n: usize) -> Result<(), E> {
        let take = n.min(self.keep - self.at);
        if take == 0 {
            return Ok(());
        }
        check_finite_block(values, n, self.at, OVERFLOW_CAUSE)?;
        if take == n {
            (self.sink)(values, n)?;
        } else {
            let cut: Vec<f32> = values
                .chunks_exact(n)
                .take(self.channels)
                .flat_map(|c| &c[..take])
                .copied()
                .collect();
            (self.sink)(&cut, take)?;
        }
        self.at += take;
        Ok(())
    }
}
