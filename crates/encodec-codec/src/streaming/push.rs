//! [`DecodeStream`]: code frames pushed as they arrive, audio handed out as soon as it is final.

use burn::tensor::{Int, Tensor, TensorData};

use super::decode::{AudioSink, CodesRef, Output, SegmentRef};
use crate::error::{EncodecError, check_scale};
use crate::model::{EncodecModel, overlap_weights};
use crate::readback::read_f32;
use crate::stream::{Extent, Lengths, Tiler};

/// Code frames `[start, start + len)` of one segment, one row per codebook.
#[derive(Debug, Default)]
struct CodeWindow {
    start: usize,
    rows: Vec<Vec<u32>>,
}

impl CodeWindow {
    fn new(k: usize) -> Self {
        CodeWindow {
            start: 0,
            rows: vec![Vec::new(); k],
        }
    }

    fn end(&self) -> usize {
        self.start + self.rows.first().map_or(0, Vec::len)
    }

    /// Frames `[lo, hi)` (absolute, inside the window) as a `[1, k, hi - lo]` tensor.
    fn tensor(&self, lo: usize, hi: usize, device: &burn::tensor::Device) -> Tensor<3, Int> {
        let (a, b) = (lo - self.start, hi - self.start);
        let values: Vec<i64> = self
            .rows
            .iter()
            .flat_map(|r| r[a..b].iter().map(|&c| i64::from(c)))
            .collect();
        Tensor::from_data(TensorData::new(values, [1, self.rows.len(), b - a]), device)
    }

    fn drop_before(&mut self, pos: usize) {
        let n = pos.saturating_sub(self.start).min(self.end() - self.start);
        if n > 0 {
            self.rows.iter_mut().for_each(|r| drop(r.drain(..n)));
            self.start += n;
        }
    }

    /// Every frame, codebook-major, emptying the window.
    fn take_flat(&mut self) -> Vec<u32> {
        self.start = 0;
        self.rows.iter_mut().flat_map(std::mem::take).collect()
    }
}

/// Chunked models: the segments waiting for their batch, and the overlap-add's running sums.
#[derive(Debug)]
struct Chunks {
    stride: usize,
    /// The current segment's codes.
    current: CodeWindow,
    /// Ended segments not decoded yet (all of one length): codes `[k][T]`, frames, scale.
    pending: Vec<(Vec<u32>, usize, Option<f32>)>,
    /// Segment 0's frames (no later segment may have more).
    first_frames: Option<usize>,
    /// Segment 0's overlap weights.
    weight: Vec<f32>,
    /// Sums and weights of samples `[base, base + sum_weight.len())`.
    base: usize,
    sums: Vec<Vec<f32>>,
    sum_weight: Vec<f32>,
    /// Segments overlap-added.
    index: usize,
    /// The furthest end of a segment (`i · stride + frames · hop`) and the segment that reaches it.
    reach: (usize, usize, usize),
    /// The last ended segment's frames.
    last_frames: usize,
}

enum Mode {
    /// Unchunked models that do not normalise: the decoder runs in tiles as frames arrive.
    Tiled {
        tiler: Box<Tiler>,
        window: CodeWindow,
    },
    /// Unchunked models that normalise or cannot be tiled: the segment is decoded once it ends.
    Whole { window: CodeWindow },
    /// Chunked models: segments decoded in the batches of the whole pass, overlap-added as they come.
    Chunked(Box<Chunks>),
}

/// Decodes one clip whose codes are pushed frame by frame (any number of frames at a time), handing each
/// sample to the sink as soon as no later code can change it: the samples of
/// [`EncodecModel::decode_segments`], in the memory of a tile of the decoder.
///
/// * Unchunked models (`encodec_24khz`, `encodec_32khz`): the decoder runs in tiles of
///   [`EncodecModel::with_stream_frames`] code frames; a tile runs once its frames and the frames its
///   receptive field reaches to the right are in, so samples come out a tile behind the codes (plus the
///   transposed convolutions' overlap). A clip of no more than one tile runs whole at [`DecodeStream::finish`].
/// * Chunked models (`encodec_48khz`): a segment is decoded when it ends, in the batches the whole pass uses;
///   its samples are final once the next segment's start is reached (the overlap-add).
///
/// Codes are checked as they arrive (codebook range, frames, scales); a clip that breaks a rule found only at
/// its end (a segment longer than the layout allows) fails at [`DecodeStream::finish`].
pub struct DecodeStream<'m> {
    model: &'m EncodecModel,
    k: usize,
    /// Samples per channel to hand out at most (the clip's audio length).
    keep: usize,
    /// Samples per channel handed out.
    at: usize,
    /// Segments ended.
    segments: usize,
    /// Frames of the current segment pushed.
    frames: usize,
    mode: Mode,
}

impl std::fmt::Debug for DecodeStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeStream")
            .field("num_codebooks", &self.k)
            .field("handed_out", &self.at)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl<'m> DecodeStream<'m> {
    /// A stream decoding codes of `num_codebooks` codebooks; the audio is cut to `audio_length` samples per
    /// channel when it is given (HF's and `.ecdc`'s audio length), else every decoded sample is handed out.
    pub fn new(
        model: &'m EncodecModel,
        num_codebooks: usize,
        audio_length: Option<usize>,
    ) -> Result<Self, EncodecError> {
        let k = num_codebooks;
        if k == 0 || k > model.config.num_quantizers() {
            return Err(EncodecError::Input(format!(
                "codes have {k} codebooks; this model has 1..={}",
                model.config.num_quantizers()
            )));
        }
        let config = &model.config;
        let c = config.audio_channels;
        let mode = match (config.chunk_length(), config.chunk_stride()) {
            (Some(_), Some(stride)) => Mode::Chunked(Box::new(Chunks {
                stride,
                current: CodeWindow::new(k),
                pending: Vec::new(),
                first_frames: None,
                weight: Vec::new(),
                base: 0,
                sums: vec![Vec::new(); c],
                sum_weight: Vec::new(),
                index: 0,
                reach: (0, 0, 0),
                last_frames: 0,
            })),
            _ if model.tiles() && !config.normalize => Mode::Tiled {
                tiler: Box::default(),
                window: CodeWindow::new(k),
            },
            _ => Mode::Whole {
                window: CodeWindow::new(k),
            },
        };
        Ok(DecodeStream {
            model,
            k,
            keep: audio_length.unwrap_or(usize::MAX),
            at: 0,
            segments: 0,
            frames: 0,
            mode,
        })
    }

    /// Samples per channel handed out so far.
    pub fn handed_out(&self) -> usize {
        self.at
    }

    /// Push the next `frames` code frames of the current segment (`codes`: `num_codebooks × frames`,
    /// codebook-major) and hand `sink` the samples that are now final.
    pub fn push<E: From<EncodecError>>(
        &mut self,
        codes: CodesRef<'_>,
        frames: usize,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<(), E> {
        if codes.len() != self.k.saturating_mul(frames) {
            return Err(EncodecError::Input(format!(
                "a piece of chunk {} has {} codes for {} codebooks × {frames} frames",
                self.segments,
                codes.len(),
                self.k
            ))
            .into());
        }
        self.push_range(codes, frames, 0, frames, sink)
    }

    /// Frames `[lo, hi)` of `codes` (`num_codebooks × frames`, codebook-major), pushed as [`Self::push`] does.
    pub(crate) fn push_range<E: From<EncodecError>>(
        &mut self,
        codes: CodesRef<'_>,
        frames: usize,
        lo: usize,
        hi: usize,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<(), E> {
        self.only_one_segment()?;
        let size = self.model.config.codebook_size;
        let (segment, at) = (self.segments, self.frames);
        let window = match &mut self.mode {
            Mode::Tiled { window, .. } | Mode::Whole { window } => window,
            Mode::Chunked(chunks) => {
                if let Some(first) = chunks.first_frames
                    && at + (hi - lo) > first
                {
                    return Err(EncodecError::Input(format!(
                        "chunk {segment} has {} code frames, more than chunk 0's {first}",
                        at + (hi - lo)
                    ))
                    .into());
                }
                &mut chunks.current
            }
        };
        for (q, row) in window.rows.iter_mut().enumerate() {
            row.reserve(hi - lo);
            for t in lo..hi {
                let v = codes.get(q * frames + t);
                if v < 0 || v as u64 >= size as u64 {
                    return Err(EncodecError::CodeOutOfRange {
                        value: v,
                        chunk: segment,
                        item: 0,
                        codebook: q,
                        frame: at + t - lo,
                        size,
                    }
                    .into());
                }
                row.push(v as u32);
            }
        }
        self.frames += hi - lo;
        if let Mode::Tiled { tiler, window } = &mut self.mode {
            let mut out = Output::new(sink, self.model, self.at, self.keep);
            let available = window.end();
            run_tiles(
                self.model,
                tiler,
                window,
                Extent::Open { available },
                &mut out,
            )?;
            self.at = out.at;
        }
        Ok(())
    }

    /// The current segment is complete; `scale` is its RMS scale (models that normalise, e.g. a chunk of
    /// `encodec_48khz`).
    pub fn end_segment<E: From<EncodecError>>(
        &mut self,
        scale: Option<f32>,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<(), E> {
        self.only_one_segment()?;
        let (i, t) = (self.segments, self.frames);
        if t == 0 {
            return Err(EncodecError::Input(format!("chunk {i} has no code frames")).into());
        }
        let model = self.model;
        if scale.is_none() && model.config.normalize {
            return Err(EncodecError::Input(format!(
                "chunk {i} has no scale, and this model normalises its chunks"
            ))
            .into());
        }
        if let Some(s) = scale {
            check_scale(i, s)?;
        }
        let mut out = Output::new(sink, model, self.at, self.keep);
        match &mut self.mode {
            Mode::Tiled { tiler, window } => {
                if scale.is_some() {
                    return Err(EncodecError::Input(
                        "this model does not normalise, but its chunk of codes has a scale".into(),
                    )
                    .into());
                }
                let device = model.device();
                let (decoder, quantizer) = (&model.nets.decoder, &model.nets.quantizer);
                if !tiler.started() && !model.streams(t) {
                    let codes = window.tensor(0, t, &device);
                    out.piece(decoder.forward(quantizer.decode(codes)), None)?;
                } else {
                    let lengths = Lengths {
                        input: t,
                        mid: t,
                        output: t * decoder.hop(),
                    };
                    run_tiles(model, tiler, window, Extent::Whole(lengths), &mut out)?;
                }
                *window = CodeWindow::default();
            }
            Mode::Whole { window } => {
                let flat = window.take_flat();
                let seg = SegmentRef {
                    codes: CodesRef::U32(&flat),
                    frames: t,
                    scale,
                };
                model.decode_whole(&seg, self.k, &mut out)?;
            }
            Mode::Chunked(chunks) => {
                let hop = model.nets.decoder.hop();
                let first = *chunks.first_frames.get_or_insert(t);
                if chunks.weight.is_empty() {
                    chunks.weight = overlap_weights(first * hop);
                }
                let end = (i * chunks.stride).saturating_add(t * hop);
                if end > chunks.reach.0 {
                    chunks.reach = (end, i, t);
                }
                chunks.last_frames = t;
                if chunks.pending.first().is_some_and(|p| p.1 != t) {
                    chunks.flush(model, &mut out)?;
                }
                let codes = chunks.current.take_flat();
                chunks.current = CodeWindow::new(self.k);
                chunks.pending.push((codes, t, scale));
                if chunks.pending.len() >= model.chunk_batch(t * hop) {
                    chunks.flush(model, &mut out)?;
                }
            }
        }
        self.at = out.at;
        self.segments += 1;
        self.frames = 0;
        Ok(())
    }

    /// The end of the clip: end the current segment if it has frames (with no scale), decode what is left and
    /// hand it out. Returns the samples per channel handed out in all.
    pub fn finish<E: From<EncodecError>>(
        mut self,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<usize, E> {
        if self.frames > 0 {
            self.end_segment(None, sink)?;
        }
        if self.segments == 0 {
            return Err(EncodecError::Input("no chunks of codes to decode".into()).into());
        }
        let model = self.model;
        if let Mode::Chunked(chunks) = &mut self.mode {
            let hop = model.nets.decoder.hop();
            let total =
                (chunks.stride * (self.segments - 1)).saturating_add(chunks.last_frames * hop);
            let (reach, i, t) = chunks.reach;
            if reach > total {
                return Err(EncodecError::Input(format!(
                    "chunk {i} has {t} code frames, more than chunk 0's {}",
                    chunks.first_frames.unwrap_or(0)
                ))
                .into());
            }
            let mut out = Output::new(sink, model, self.at, self.keep);
            chunks.flush(model, &mut out)?;
            let rest = chunks.sum_weight.len();
            chunks.emit(rest, &mut out)?;
            self.at = out.at;
        }
        Ok(self.at)
    }

    /// Unchunked models decode exactly one segment.
    fn only_one_segment(&self) -> Result<(), EncodecError> {
        if self.segments > 0 && !matches!(self.mode, Mode::Chunked(_)) {
            return Err(EncodecError::Input(format!(
                "this model does not chunk: expected one chunk of codes, got {}",
                self.segments + 1
            )));
        }
        Ok(())
    }
}

impl Chunks {
    /// Decode the pending segments (one batch) and overlap-add them, handing out what is final.
    fn flush<E: From<EncodecError>>(
        &mut self,
        model: &EncodecModel,
        out: &mut Output<'_, '_, E>,
    ) -> Result<(), E> {
        let Some(&(_, t, _)) = self.pending.first() else {
            return Ok(());
        };
        let device = model.device();
        let hop = model.nets.decoder.hop();
        let c = model.config.audio_channels;
        let n = t * hop;
        let batch: Vec<Tensor<3, Int>> = self
            .pending
            .iter()
            .map(|(codes, t, _)| {
                let values: Vec<i64> = codes.iter().map(|&v| i64::from(v)).collect();
                let k = codes.len() / (*t).max(1);
                Tensor::from_data(TensorData::new(values, [1, k, *t]), &device)
            })
            .collect();
        let values = read_f32(model.decode_codes(Tensor::cat(batch, 0))?)
            .map_err(|e| EncodecError::Input(format!("decoded audio: {e:?}")))?;
        let pending = std::mem::take(&mut self.pending);
        for ((_, _, scale), decoded) in pending.iter().zip(values.chunks_exact(c * n)) {
            let offset = self.index * self.stride - self.base;
            if self.sum_weight.len() < offset + n {
                self.sum_weight.resize(offset + n, 0.0);
                self.sums.iter_mut().for_each(|s| s.resize(offset + n, 0.0));
            }
            for (sum, src) in self.sums.iter_mut().zip(decoded.chunks_exact(n)) {
                let dst = &mut sum[offset..offset + n];
                match scale {
                    Some(s) => {
                        for ((o, v), w) in dst.iter_mut().zip(src).zip(&self.weight) {
                            *o += w * (v * s);
                        }
                    }
                    None => {
                        for ((o, v), w) in dst.iter_mut().zip(src).zip(&self.weight) {
                            *o += w * v;
                        }
                    }
                }
            }
            for (s, w) in self.sum_weight[offset..offset + n]
                .iter_mut()
                .zip(&self.weight)
            {
                *s += *w;
            }
            self.index += 1;
            // Samples before the next segment's start are final.
            let done = (self.index * self.stride - self.base).min(self.sum_weight.len());
            self.emit(done, out)?;
        }
        Ok(())
    }

    /// Hand out the first `done` samples of the sums, divided by their weights.
    fn emit<E: From<EncodecError>>(
        &mut self,
        done: usize,
        out: &mut Output<'_, '_, E>,
    ) -> Result<(), E> {
        if done == 0 {
            return Ok(());
        }
        if self.sum_weight[..done].contains(&0.0) {
            return Err(EncodecError::Input(
                "overlap-add left samples with zero total weight (chunk stride larger than the chunks)"
                    .into(),
            )
            .into());
        }
        let mut block = Vec::with_capacity(self.sums.len() * done);
        for sum in &self.sums {
            block.extend(sum[..done].iter().zip(&self.sum_weight).map(|(v, w)| v / w));
        }
        out.block(&block, done)?;
        self.sums.iter_mut().for_each(|s| drop(s.drain(..done)));
        self.sum_weight.drain(..done);
        self.base += done;
        Ok(())
    }
}

/// The decoder's tiles over the code window as far as `extent` allows, each piece handed out; the window keeps
/// only the frames later tiles read.
fn run_tiles<E: From<EncodecError>>(
    model: &EncodecModel,
    tiler: &mut Tiler,
    window: &mut CodeWindow,
    extent: Extent,
    out: &mut Output<'_, '_, E>,
) -> Result<(), E> {
    let device = model.device();
    let view = &*window;
    let from = model.decode_tiles(
        tiler,
        &mut |lo, hi| view.tensor(lo, hi, &device),
        extent,
        &mut |piece| out.piece(piece, None),
    )?;
    window.drop_before(from);
    Ok(())
}
