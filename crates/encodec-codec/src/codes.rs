//! EnCodec's codes on the host, and the moves between their three forms: per-chunk codes ([`AudioCodes`], the
//! original package's unpadded segments), transformers' stacked tensors ([`HfCodes`]: `EncodecModel.encode`'s
//! `audio_codes [chunks, 1, n_q, T]`, `audio_scales`, `last_frame_pad_length`) and Meta's `.ecdc` container
//! ([`EcdcFile`]); and [`CompactCodes`], a stream's codes gathered at 32 bits.

use crate::EncodecConfig;
use crate::ecdc::{EcdcFile, EcdcModel, EcdcSegment};
use crate::error::{EncodecError, check_scale, is_valid_scale};
use crate::streaming::{CodeEvent, CodesRef, SegmentRef};

/// Codes that do not fit the form they are moved into, or that no encoder writes.
#[derive(Debug, thiserror::Error)]
pub enum CodesError {
    /// The codes' shape, length or values do not fit the form; the message names what.
    #[error("{0}")]
    Form(String),
    /// A scale no encoder writes ([`EncodecError::InvalidScale`]).
    #[error(transparent)]
    Encodec(#[from] EncodecError),
}

fn form(message: String) -> CodesError {
    CodesError::Form(message)
}

/// One chunk's codes on the host: `[n_q][frames]` row-major, and its scale (models that normalise).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkCodes {
    /// Codes, `codes[k * frames + t]`.
    pub codes: Vec<i64>,
    /// Code frames of this chunk.
    pub frames: usize,
    /// The chunk's RMS scale.
    pub scale: Option<f32>,
}

/// Encoded audio of one clip: every chunk (unpadded, as the original library's segments), the codebook count
/// and the audio length in samples per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioCodes {
    /// The chunks in order.
    pub chunks: Vec<ChunkCodes>,
    /// Codebooks per frame.
    pub num_codebooks: usize,
    /// Samples per channel of the encoded audio (the decoded audio is cut to it).
    pub audio_length: usize,
}

/// HF's tensor form of [`AudioCodes`] for one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct HfCodes {
    /// `audio_codes`, shape `[chunks, 1, n_q, T]`, the last chunk right-padded with 0.
    pub audio_codes: Vec<i64>,
    /// The shape of `audio_codes`.
    pub shape: [usize; 4],
    /// `audio_scales` `[chunks, 1]` (models that normalise).
    pub audio_scales: Option<Vec<f32>>,
    /// Frames of padding in the last chunk.
    pub last_frame_pad_length: usize,
    /// Samples per channel.
    pub audio_length: usize,
}

/// HF's `T` (the first chunk's frames) and `last_frame_pad_length` for chunks of these `(frames, scale)`, or
/// why they cannot be stacked into `[chunks, 1, n_q, T]`: a chunk other than the last is short (HF's
/// `torch.stack` fails there), the last is long, or a scale is one no file may hold.
fn hf_frames(
    chunks: impl ExactSizeIterator<Item = (usize, Option<f32>)>,
) -> Result<(usize, usize), CodesError> {
    let n = chunks.len();
    let mut first = 0;
    let mut pad = 0;
    for (i, (frames, scale)) in chunks.enumerate() {
        if i == 0 {
            first = frames;
        }
        if frames != first && i + 1 != n {
            return Err(form(format!(
                "chunk {i} has {frames} frames where the first has {first}: this length cannot be stacked into \
                 HF's [chunks, 1, n_q, T] (transformers fails too); write an .ecdc file instead"
            )));
        }
        if frames > first {
            return Err(form(format!(
                "the last chunk has {frames} frames, more than the first's {first}"
            )));
        }
        if let Some(s) = scale
            && !is_valid_scale(s)
        {
            return Err(form(format!(
                "chunk {i} has the scale {s}, which no file may hold: the audio's level overflows float32 \
                 (samples far outside [-1, 1]?)"
            )));
        }
        pad = first - frames;
    }
    Ok((first, pad))
}

impl AudioCodes {
    /// HF's stacked form. Fails when a chunk other than the last is short (HF's `torch.stack` fails there).
    pub fn to_hf(&self) -> Result<HfCodes, CodesError> {
        let (first, last_frame_pad_length) =
            hf_frames(self.chunks.iter().map(|c| (c.frames, c.scale)))?;
        let n = self.chunks.len();
        let mut audio_codes = Vec::with_capacity(n * self.num_codebooks * first);
        for (i, c) in self.chunks.iter().enumerate() {
            if c.codes.len() != self.num_codebooks * c.frames {
                return Err(form(format!(
                    "chunk {i} has {} codes for {} codebooks × {} frames",
                    c.codes.len(),
                    self.num_codebooks,
                    c.frames
                )));
            }
            for k in 0..self.num_codebooks {
                audio_codes.extend_from_slice(&c.codes[k * c.frames..(k + 1) * c.frames]);
                audio_codes.extend(std::iter::repeat_n(0, first - c.frames));
            }
        }
        let audio_scales = self
            .chunks
            .iter()
            .map(|c| c.scale)
            .collect::<Option<Vec<f32>>>();
        Ok(HfCodes {
            audio_codes,
            shape: [n, 1, self.num_codebooks, first],
            audio_scales,
            last_frame_pad_length,
            audio_length: self.audio_length,
        })
    }

    /// From HF's stacked form (batch 1). The scales are checked ([`check_scale`]: finite and positive, as
    /// `.ecdc` files' are); the codes are checked against a model when decoding.
    pub fn from_hf(hf: &HfCodes) -> Result<Self, CodesError> {
        let [n, b, k, t] = hf.shape;
        if b != 1 {
            return Err(form(format!(
                "audio_codes have batch {b}; one clip (batch 1) is expected"
            )));
        }
        let needed = n.checked_mul(k).and_then(|nk| nk.checked_mul(t));
        if needed != Some(hf.audio_codes.len()) {
            return Err(form(format!(
                "audio_codes have {} values, the shape {:?} needs {}",
                hf.audio_codes.len(),
                hf.shape,
                needed.map_or_else(|| "more than memory holds".to_string(), |v| v.to_string())
            )));
        }
        if n == 0 || k == 0 || t == 0 {
            return Err(form(format!(
                "audio_codes of shape {:?} are empty",
                hf.shape
            )));
        }
        if hf.last_frame_pad_length >= t {
            return Err(form(format!(
                "last_frame_pad_length {} leaves none of the {t} frames",
                hf.last_frame_pad_length
            )));
        }
        if let Some(s) = &hf.audio_scales {
            if s.len() != n {
                return Err(form(format!(
                    "audio_scales have {} values for {n} chunks",
                    s.len()
                )));
            }
            for (i, &v) in s.iter().enumerate() {
                check_scale(i, v)?;
            }
        }
        let chunks = (0..n)
            .map(|i| {
                let frames = if i + 1 == n {
                    t - hf.last_frame_pad_length
                } else {
                    t
                };
                let base = i * k * t;
                let codes = (0..k)
                    .flat_map(|q| {
                        hf.audio_codes[base + q * t..base + q * t + frames]
                            .iter()
                            .copied()
                    })
                    .collect();
                ChunkCodes {
                    codes,
                    frames,
                    scale: hf.audio_scales.as_ref().map(|s| s[i]),
                }
            })
            .collect();
        Ok(AudioCodes {
            chunks,
            num_codebooks: k,
            audio_length: hf.audio_length,
        })
    }

    /// Meta's container for `model` (checked against the layout the container expects).
    pub fn to_ecdc(&self, model: &EcdcModel) -> Result<EcdcFile, CodesError> {
        let layout = model.segments(self.audio_length);
        if layout.len() != self.chunks.len() {
            return Err(form(format!(
                "{} chunks, but {} audio of {} samples has {} segments",
                self.chunks.len(),
                model.name,
                self.audio_length,
                layout.len()
            )));
        }
        let limit = 1i64 << model.bits;
        let mut segments = Vec::with_capacity(self.chunks.len());
        for (i, c) in self.chunks.iter().enumerate() {
            let codes = c
                .codes
                .iter()
                .map(|&v| {
                    if (0..limit).contains(&v) {
                        Ok(v as u16)
                    } else {
                        Err(form(format!(
                            "code {v} in chunk {i} does not fit the container's {} bits",
                            model.bits
                        )))
                    }
                })
                .collect::<Result<Vec<u16>, _>>()?;
            segments.push(EcdcSegment {
                scale: c.scale,
                num_codebooks: self.num_codebooks,
                codes,
            });
        }
        Ok(EcdcFile {
            model: model.name.to_string(),
            audio_length: self.audio_length,
            num_codebooks: self.num_codebooks,
            segments,
        })
    }

    /// From Meta's container.
    pub fn from_ecdc(file: &EcdcFile) -> Self {
        AudioCodes {
            chunks: file
                .segments
                .iter()
                .map(|s| ChunkCodes {
                    codes: s.codes.iter().map(|&v| i64::from(v)).collect(),
                    frames: s.frames(),
                    scale: s.scale,
                })
                .collect(),
            num_codebooks: file.num_codebooks,
            audio_length: file.audio_length,
        }
    }

    /// The chunks as segments for [`crate::EncodecModel::decode_stream`] (no copy).
    pub fn segment_refs(&self) -> Vec<SegmentRef<'_>> {
        self.chunks
            .iter()
            .map(|c| SegmentRef {
                codes: CodesRef::I64(&c.codes),
                frames: c.frames,
                scale: c.scale,
            })
            .collect()
    }
}

impl EcdcFile {
    /// The segments for [`crate::EncodecModel::decode_stream`] (no copy of the 16-bit codes).
    pub fn segment_refs(&self) -> Vec<SegmentRef<'_>> {
        self.segments
            .iter()
            .map(|s| SegmentRef {
                codes: CodesRef::U16(&s.codes),
                frames: s.frames(),
                scale: s.scale,
            })
            .collect()
    }
}

impl EcdcModel {
    /// The container's model whose layout `config` has (same rate, channels, hop, chunking, normalisation, and
    /// codes that fit its bits), if any.
    pub fn for_config(config: &EncodecConfig) -> Option<EcdcModel> {
        let c = config;
        EcdcModel::ALL.into_iter().find(|m| {
            m.sample_rate as usize == c.sampling_rate
                && m.channels == c.audio_channels
                && m.hop_length == c.hop_length()
                && m.segment_length == c.chunk_length()
                && m.segment_stride == c.chunk_stride()
                && m.normalize == c.normalize
                && c.codebook_size <= 1 << m.bits
        })
    }
}

/// The codes of an encode stream ([`CodeEvent`]s) gathered in 32 bits per code (a quarter of [`AudioCodes`]'
/// `i64`): segment by segment, codebook-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactCodes {
    /// Finished segments: codes `[n_q][frames]`, frames, scale.
    pub segments: Vec<(Vec<u32>, usize, Option<f32>)>,
    /// Codebooks per frame.
    pub num_codebooks: usize,
    /// The current segment's codes, one row per codebook.
    rows: Vec<Vec<u32>>,
}

impl CompactCodes {
    /// Take one event of an encode stream.
    pub fn push(&mut self, event: CodeEvent<'_>) -> Result<(), CodesError> {
        match event {
            CodeEvent::Frames { codes, frames } => {
                let k = codes.len().checked_div(frames).unwrap_or(0);
                if self.rows.is_empty() {
                    self.rows = vec![Vec::new(); k];
                    self.num_codebooks = k;
                }
                if k != self.num_codebooks || k * frames != codes.len() {
                    return Err(form(format!(
                        "{} codes in a piece of {frames} frames of {} codebooks",
                        codes.len(),
                        self.num_codebooks
                    )));
                }
                for (row, piece) in self.rows.iter_mut().zip(codes.chunks_exact(frames)) {
                    for &c in piece {
                        row.push(
                            u32::try_from(c)
                                .map_err(|_| form(format!("code {c} does not fit 32 bits")))?,
                        );
                    }
                }
            }
            CodeEvent::EndSegment { scale } => {
                let frames = self.rows.first().map_or(0, Vec::len);
                let codes = self.rows.iter_mut().flat_map(std::mem::take).collect();
                self.rows.clear();
                self.segments.push((codes, frames, scale));
            }
        }
        Ok(())
    }

    /// The segments for [`crate::EncodecModel::decode_stream`].
    pub fn segment_refs(&self) -> Vec<SegmentRef<'_>> {
        self.segments
            .iter()
            .map(|(codes, frames, scale)| SegmentRef {
                codes: CodesRef::U32(codes),
                frames: *frames,
                scale: *scale,
            })
            .collect()
    }

    /// HF's `T` and `last_frame_pad_length` for these segments, with [`AudioCodes::to_hf`]'s checks and
    /// messages: for writing HF's form without a second copy of the codes.
    pub fn hf_frames(&self) -> Result<(usize, usize), CodesError> {
        hf_frames(self.segments.iter().map(|s| (s.1, s.2)))
    }

    /// As [`AudioCodes`] of `audio_length` samples (HF's tensor form goes through it).
    pub fn to_audio_codes(&self, audio_length: usize) -> AudioCodes {
        AudioCodes {
            chunks: self
                .segments
                .iter()
                .map(|(codes, frames, scale)| ChunkCodes {
                    codes: codes.iter().map(|&c| i64::from(c)).collect(),
                    frames: *frames,
                    scale: *scale,
                })
                .collect(),
            num_codebooks: self.num_codebooks,
            audio_length,
        }
    }
}
