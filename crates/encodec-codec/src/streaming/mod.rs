//! One clip encoded and decoded as a stream, in memory bounded by a block of audio whatever its length.
//!
//! * [`EncodeStream`]: push planar PCM at the model's rate and channel count as it arrives (any block size),
//!   receive code frames as soon as they are final ([`CodeEvent`]), then [`EncodeStream::finish`]. The codes
//!   are those of [`EncodecModel::encode_segments`] on the whole clip (batch 1, no padding mask), bit for bit:
//!   the unchunked models run the same tiles ([`crate::stream`]) over a window of the input, the chunked ones
//!   the same chunks in the same batches.
//! * [`EncodecModel::decode_stream`]: codes in (compact, e.g. the `u16` of an `.ecdc` file), audio handed to a
//!   sink block by block as the decoder and the overlap-add make it final; the same samples as
//!   [`EncodecModel::decode_segments`].
//!
//! Models whose encoder cannot be tiled and that do not chunk (GroupNorm, or RMS normalisation over the whole
//! clip, which no released checkpoint has) keep the whole clip before encoding: their memory grows with it.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::EncodecError;
use crate::model::{EncodecModel, batches};
use crate::readback::read_f32;
use crate::stream::{Extent, Lengths, Stack, Tiler};

mod decode;
mod push;

pub use decode::{AudioSink, CodesRef, SegmentRef};
pub use push::DecodeStream;

/// What an [`EncodeStream`] hands out, in order: each segment's code frames (in one or more pieces), then
/// its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CodeEvent<'a> {
    /// The next `frames` code frames of the current segment, codebook-major: `codes[k * frames + t]`.
    Frames {
        /// The codes, `num_codebooks × frames`.
        codes: &'a [i64],
        /// Frames in this piece.
        frames: usize,
    },
    /// The current segment is complete; its RMS scale for models that normalise.
    EndSegment {
        /// The scale.
        scale: Option<f32>,
    },
}

/// What an encoded stream came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSummary {
    /// Samples per channel encoded.
    pub audio_length: usize,
    /// Codebooks per frame.
    pub num_codebooks: usize,
    /// Segments (chunks) handed out.
    pub segments: usize,
}

/// Planar input samples `[absolute start, start + len)` still needed.
struct Window {
    start: usize,
    data: Vec<Vec<f32>>,
}

impl Window {
    fn end(&self) -> usize {
        self.start + self.data.first().map_or(0, Vec::len)
    }

    /// Samples `[lo, hi)` (absolute, inside the window) as a `[1, C, hi - lo]` tensor.
    fn tensor(&self, lo: usize, hi: usize, device: &burn::tensor::Device) -> Tensor<3> {
        let (a, b) = (lo - self.start, hi - self.start);
        let planar: Vec<f32> = self.data.iter().flat_map(|c| &c[a..b]).copied().collect();
        Tensor::from_data(TensorData::new(planar, [1, self.data.len(), b - a]), device)
    }

    fn drop_before(&mut self, pos: usize) {
        let n = pos.saturating_sub(self.start).min(self.end() - self.start);
        if n > 0 {
            self.data.iter_mut().for_each(|c| drop(c.drain(..n)));
            self.start += n;
        }
    }
}

enum Mode {
    /// Unchunked local networks: head tiles over the window, the LSTM carried.
    Tiled(Box<Tiler>),
    /// Chunked models: chunk `next` (and the ones after it) not encoded yet.
    Chunked {
        chunk: usize,
        stride: usize,
        next: usize,
    },
    /// Everything kept until [`EncodeStream::finish`].
    Whole,
}

/// Encodes one clip pushed block by block (see the module documentation).
pub struct EncodeStream<'m> {
    model: &'m EncodecModel,
    n_q: usize,
    window: Window,
    mode: Mode,
    segments: usize,
}

impl std::fmt::Debug for EncodeStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeStream")
            .field("n_q", &self.n_q)
            .field("pushed", &self.window.end())
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

/// The sink of code events.
pub type CodeSink<'s, E> = dyn FnMut(CodeEvent<'_>) -> Result<(), E> + 's;

impl<'m> EncodeStream<'m> {
    /// A stream encoding at `bandwidth` kbps (`None`: the model's smallest, as HF).
    pub fn new(model: &'m EncodecModel, bandwidth: Option<f64>) -> Result<Self, EncodecError> {
        let (_, n_q) = model.config.check_bandwidth(bandwidth)?;
        let config = &model.config;
        let mode = match (config.chunk_length(), config.chunk_stride()) {
            (Some(chunk), Some(stride)) => Mode::Chunked {
                chunk,
                stride,
                next: 0,
            },
            _ if model.tiles() && !config.normalize => Mode::Tiled(Box::default()),
            _ => Mode::Whole,
        };
        Ok(EncodeStream {
            model,
            n_q,
            window: Window {
                start: 0,
                data: vec![Vec::new(); config.audio_channels],
            },
            mode,
            segments: 0,
        })
    }

    /// Samples per channel pushed so far.
    pub fn pushed(&self) -> usize {
        self.window.end()
    }

    /// Append `pcm` (`[channel][frame]`, the model's channels, every channel the same length) and hand `sink`
    /// the codes that are now final.
    pub fn push<S: AsRef<[f32]>, E: From<EncodecError>>(
        &mut self,
        pcm: &[S],
        sink: &mut CodeSink<'_, E>,
    ) -> Result<(), E> {
        let frames = pcm.first().map_or(0, |c| c.as_ref().len());
        if pcm.len() != self.window.data.len() {
            return Err(EncodecError::Channels {
                expected: self.window.data.len(),
                found: pcm.len(),
            }
            .into());
        }
        if pcm.iter().any(|c| c.as_ref().len() != frames) {
            return Err(
                EncodecError::Input("the pushed channels have different lengths".into()).into(),
            );
        }
        for (w, c) in self.window.data.iter_mut().zip(pcm) {
            w.extend_from_slice(c.as_ref());
        }
        self.run(None, sink)
    }

    /// The end of the clip: encode what is left and return the summary. An empty clip is an error.
    pub fn finish<E: From<EncodecError>>(
        mut self,
        sink: &mut CodeSink<'_, E>,
    ) -> Result<StreamSummary, E> {
        let len = self.window.end();
        if len == 0 {
            return Err(EncodecError::Input("the stream has no audio to encode".into()).into());
        }
        self.run(Some(len), sink)?;
        Ok(StreamSummary {
            audio_length: len,
            num_codebooks: self.n_q,
            segments: self.segments,
        })
    }

    /// Encode what the window allows (`len`: the clip's length, once it is known).
    fn run<E: From<EncodecError>>(
        &mut self,
        len: Option<usize>,
        sink: &mut CodeSink<'_, E>,
    ) -> Result<(), E> {
        let model = self.model;
        let device = model.device();
        match &mut self.mode {
            Mode::Tiled(tiler) => {
                let n_q = self.n_q;
                let mut emit =
                    |latent| emit_codes(model.nets.quantizer.encode(latent, n_q), &mut *sink);
                tiled(model, tiler, &mut self.window, len, &mut emit)?;
                if len.is_some() {
                    self.segments = 1;
                    sink(CodeEvent::EndSegment { scale: None })?;
                }
                Ok(())
            }
            Mode::Chunked {
                chunk,
                stride,
                next,
            } => {
                let (chunk, stride) = (*chunk, *stride);
                let end = len.unwrap_or_else(|| self.window.end());
                let mut ranges = Vec::new();
                let mut offset = *next;
                while offset < end {
                    let r = offset..(offset + chunk).min(end);
                    if len.is_none() && r.len() < chunk {
                        break;
                    }
                    ranges.push(r);
                    offset += stride;
                }
                let runs = batches(&ranges, |r| r.len(), 1);
                for run in runs {
                    // While the clip is open, only whole batches run: the batches of the whole clip.
                    if len.is_none() && run.len() < model.chunk_batch(chunk) {
                        break;
                    }
                    let frames: Vec<Tensor<3>> = run
                        .iter()
                        .map(|r| self.window.tensor(r.start, r.end, &device))
                        .collect();
                    let (codes, scale) = model.encode_frame(Tensor::cat(frames, 0), self.n_q);
                    let scales = match scale {
                        Some(s) => Some(read_f32(s).map_err(|e| {
                            EncodecError::Input(format!("reading the chunks' scales: {e:?}"))
                        })?),
                        None => None,
                    };
                    let [k, n, t] = codes.dims();
                    for i in 0..k {
                        emit_codes(codes.clone().slice([i..i + 1, 0..n, 0..t]), sink)?;
                        let scale = scales.as_ref().and_then(|s| s.get(i).copied());
                        sink(CodeEvent::EndSegment { scale })?;
                        self.segments += 1;
                    }
                    *next = run.last().map_or(*next, |r| r.start) + stride;
                    self.window.drop_before(*next);
                }
                Ok(())
            }
            Mode::Whole => {
                let Some(len) = len else {
                    return Ok(());
                };
                let (codes, scale) =
                    model.encode_frame(self.window.tensor(0, len, &device), self.n_q);
                emit_codes(codes, sink)?;
                let scale = match scale {
                    Some(s) => read_f32(s)
                        .map_err(|e| EncodecError::Input(format!("reading the scale: {e:?}")))?
                        .first()
                        .copied(),
                    None => None,
                };
                self.segments = 1;
                sink(CodeEvent::EndSegment { scale })
            }
        }
    }
}

/// The encoder's latent frames over the window, tile by tile as far as the input allows (`len`: the clip's
/// length once it is known, when the rest is run), handed to `emit` in order; the window keeps only what later
/// tiles read. A clip of no more than one block runs in one pass, as `encode_frame` runs it.
fn tiled<E>(
    model: &EncodecModel,
    tiler: &mut Tiler,
    window: &mut Window,
    len: Option<usize>,
    emit: &mut dyn FnMut(Tensor<3>) -> Result<(), E>,
) -> Result<(), E> {
    let device = model.device();
    let encoder = &model.nets.encoder;
    let head = Stack {
        span: &|a, z| encoder.head_span(a, z),
        down: encoder.hop(),
        up: 1,
        forward: &|x| encoder.head(x),
    };
    let tail = Stack {
        span: &|a, z| encoder.conv_out.span(a, z),
        down: 1,
        up: 1,
        forward: &|x| encoder.tail(x),
    };
    let extent = match len {
        None => Extent::Open {
            available: window.end(),
        },
        Some(len) => {
            let frames = len.div_ceil(encoder.hop().max(1));
            if !tiler.started() && !model.streams(frames) {
                return emit(encoder.forward(window.tensor(0, len, &device)));
            }
            Extent::Whole(Lengths {
                input: len,
                mid: frames,
                output: frames,
            })
        }
    };
    let view = &*window;
    tiler.advance(
        &head,
        &encoder.lstm,
        &tail,
        &mut |lo, hi| view.tensor(lo, hi, &device),
        extent,
        model.stream_frames(),
        emit,
    )?;
    window.drop_before(tiler.input_from(&head));
    Ok(())
}

/// Hand `codes` (`[1, n_q, t]`) to the sink.
fn emit_codes<E: From<EncodecError>>(
    codes: Tensor<3, Int>,
    sink: &mut CodeSink<'_, E>,
) -> Result<(), E> {
    let [_, _, frames] = codes.dims();
    let values = codes
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| EncodecError::Input(format!("reading codes: {e:?}")))?;
    sink(CodeEvent::Frames {
        codes: &values,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use clvp_hub::Checkpoint;

    fn latents(t: Vec<Tensor<3>>) -> Vec<f32> {
        read_f32(Tensor::cat(t, 2)).unwrap_or_default()
    }

    /// The tiler fed a growing window gives the latent frames of the whole pass bit for bit (the codes alone
    /// would hide small errors: quantization maps nearby latents to the same code).
    #[test]
    fn open_tiles_give_the_latents_of_the_whole_pass() {
        let dir = clvp_parity::fixture_path("encodec/tiny_24k");
        let ckpt = Checkpoint::local(dir).unwrap_or_else(|e| panic!("{e}"));
        let device = Device::flex();
        let model = EncodecModel::from_checkpoint(&ckpt, &device)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_stream_frames(3);
        let len = 41 * 320 + 9;
        let pcm: Vec<f32> = (0..len)
            .map(|i| ((i * i) % 977) as f32 / 977.0 - 0.5)
            .collect();
        let mut want = Vec::new();
        let mut whole = Window {
            start: 0,
            data: vec![pcm.clone()],
        };
        tiled::<()>(
            &model,
            &mut Tiler::default(),
            &mut whole,
            Some(len),
            &mut |x| {
                want.push(x);
                Ok(())
            },
        )
        .unwrap_or_default();
        assert!(want.len() > 5, "the whole pass is tiled too");
        for block in [1usize, 700, 2000] {
            let mut got = Vec::new();
            let mut tiler = Tiler::default();
            let mut window = Window {
                start: 0,
                data: vec![Vec::new()],
            };
            let mut early = 0;
            for piece in pcm.chunks(block) {
                window.data[0].extend_from_slice(piece);
                tiled::<()>(&model, &mut tiler, &mut window, None, &mut |x| {
                    got.push(x);
                    Ok(())
                })
                .unwrap_or_default();
                early = got.len();
                assert!(
                    window.data[0].len() < 4 * 3 * 320 + block + 2000,
                    "the window grows"
                );
            }
            tiled::<()>(&model, &mut tiler, &mut window, Some(len), &mut |x| {
                got.push(x);
                Ok(())
            })
            .unwrap_or_default();
            assert!(early > 5, "block {block}: {early} pieces before the end");
            assert!(
                latents(got) == latents(want.clone()),
                "block {block}: latents differ"
            );
        }
    }
}
