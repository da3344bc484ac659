//! EnCodec through the facade: load a checkpoint, take any decoded audio (channels converted and resampled to
//! the model's format, as encodec's `convert_audio`), encode to host-side codes, decode back, and move codes
//! between HF's tensor form (`audio_codes [chunks, 1, n_q, T]`, `audio_scales`, `last_frame_pad_length`) and
//! Meta's `.ecdc` container.

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_audio::Audio;
use clvp_hub::Checkpoint;
use encodec_codec::ecdc::EcdcSegment;
use encodec_codec::{EncodecModel, EncodedSegment};

mod files;
mod live;
mod stream;

pub use live::StreamEncoder;
pub use stream::{CompactCodes, ecdc_segment_refs};

pub use encodec_codec::ecdc::{EcdcFile, EcdcModel, EcdcPiece, EcdcReader};
pub use encodec_codec::streaming::{AudioSink, CodeSink};
pub use encodec_codec::{
    CodeEvent, CodesRef, DecodeStream, EncodeStream, SegmentRef, StreamSummary,
};

/// The default 24 kHz checkpoint (Meta's CLI default).
pub const DEFAULT_ENCODEC: &str = "facebook/encodec_24khz";
/// The 48 kHz stereo checkpoint (Meta's `--hq`).
pub const DEFAULT_ENCODEC_HQ: &str = "facebook/encodec_48khz";

/// The facade's error ([`crate::Error`]), under its older name.
pub type CodecError = crate::Error;

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

impl AudioCodes {
    /// HF's stacked form. Fails when a chunk other than the last is short (HF's `torch.stack` fails there).
    pub fn to_hf(&self) -> Result<HfCodes, CodecError> {
        let first = self.chunks.first().map(|c| c.frames).unwrap_or(0);
        let n = self.chunks.len();
        let mut audio_codes = Vec::with_capacity(n * self.num_codebooks * first);
        let mut last_frame_pad_length = 0;
        for (i, c) in self.chunks.iter().enumerate() {
            if c.frames != first && i + 1 != n {
                return Err(CodecError::Codes(format!(
                    "chunk {i} has {} frames where the first has {first}: this length cannot be stacked into \
                     HF's [chunks, 1, n_q, T] (transformers fails too); write an .ecdc file instead",
                    c.frames
                )));
            }
            if c.frames > first {
                return Err(CodecError::Codes(format!(
                    "the last chunk has {} frames, more than the first's {first}",
                    c.frames
                )));
            }
            if let Some(s) = c.scale
                && !encodec_codec::is_valid_scale(s)
            {
                return Err(CodecError::Codes(format!(
                    "chunk {i} has the scale {s}, which no file may hold: the audio's level overflows float32 \
                     (samples far outside [-1, 1]?)"
                )));
            }
            last_frame_pad_length = first - c.frames;
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

    /// From HF's stacked form (batch 1). The scales are checked ([`encodec_codec::check_scale`]: finite and
    /// positive, as `.ecdc` files' are); the codes are checked against a model when decoding.
    pub fn from_hf(hf: &HfCodes) -> Result<Self, CodecError> {
        let [n, b, k, t] = hf.shape;
        if b != 1 {
            return Err(CodecError::Codes(format!(
                "audio_codes have batch {b}; one clip (batch 1) is expected"
            )));
        }
        let needed = n.checked_mul(k).and_then(|nk| nk.checked_mul(t));
        if needed != Some(hf.audio_codes.len()) {
            return Err(CodecError::Codes(format!(
                "audio_codes have {} values, the shape {:?} needs {}",
                hf.audio_codes.len(),
                hf.shape,
                needed.map_or_else(|| "more than memory holds".to_string(), |v| v.to_string())
            )));
        }
        if n == 0 || k == 0 || t == 0 {
            return Err(CodecError::Codes(format!(
                "audio_codes of shape {:?} are empty",
                hf.shape
            )));
        }
        if hf.last_frame_pad_length >= t {
            return Err(CodecError::Codes(format!(
                "last_frame_pad_length {} leaves none of the {t} frames",
                hf.last_frame_pad_length
            )));
        }
        if let Some(s) = &hf.audio_scales {
            if s.len() != n {
                return Err(CodecError::Codes(format!(
                    "audio_scales have {} values for {n} chunks",
                    s.len()
                )));
            }
            for (i, &v) in s.iter().enumerate() {
                encodec_codec::check_scale(i, v)?;
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
    pub fn to_ecdc(&self, model: &EcdcModel) -> Result<EcdcFile, CodecError> {
        let layout = model.segments(self.audio_length);
        if layout.len() != self.chunks.len() {
            return Err(CodecError::Codes(format!(
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
                        Err(CodecError::Codes(format!(
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
}

/// A loaded EnCodec model on a device.
#[derive(Debug)]
pub struct Encodec {
    /// The model ([`Encodec::raw`]).
    pub(crate) model: EncodecModel,
    device: Device,
}

impl Encodec {
    /// The model as encodec-codec holds it (configuration, networks, streaming settings): for those who pick and
    /// mix the inner crates ([`crate::raw`]), outside the facade's semver promise.
    pub fn raw(&self) -> &EncodecModel {
        &self.model
    }

    /// [`Encodec::raw`], mutable (e.g. `set_stream_frames`, `set_host_kernels`).
    pub fn raw_mut(&mut self) -> &mut EncodecModel {
        &mut self.model
    }
}

impl Encodec {
    /// Load a local directory or a hub id (`facebook/encodec_24khz`), through the HF cache, or one of Meta's own
    /// checkpoint files (`encodec_24khz-d7cc33bc.th`, `encodec_48khz-7e698e3e.th`: a path to a file; its
    /// configuration comes from its name or its tensors, see [`EncodecModel::from_meta_file`]).
    pub fn from_pretrained(source: &str, device: &Device) -> Result<Self, CodecError> {
        let model = if std::path::Path::new(source).is_file() {
            EncodecModel::from_meta_file(source, device)?
        } else {
            EncodecModel::from_checkpoint(&Checkpoint::from_pretrained(source, None)?, device)?
        };
        Ok(Encodec {
            model,
            device: device.clone(),
        })
    }

    /// The model's sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.model.config.sampling_rate as u32
    }

    /// The model's channel count.
    pub fn channels(&self) -> usize {
        self.model.config.audio_channels
    }

    /// The `.ecdc` model whose layout this checkpoint has (same rate, channels, hop, chunking, normalisation and
    /// codes that fit 10 bits), if any.
    pub fn ecdc_model(&self) -> Result<EcdcModel, CodecError> {
        let c = &self.model.config;
        EcdcModel::ALL
            .into_iter()
            .find(|m| {
                m.sample_rate as usize == c.sampling_rate
                    && m.channels == c.audio_channels
                    && m.hop_length == c.hop_length()
                    && m.segment_length == c.chunk_length()
                    && m.segment_stride == c.chunk_stride()
                    && m.normalize == c.normalize
                    && c.codebook_size <= 1 << m.bits
            })
            .ok_or_else(|| {
                CodecError::Codes(format!(
                    "the .ecdc container only knows encodec_24khz and encodec_48khz; this checkpoint ({} Hz, {} \
                     channel(s), hop {}, chunk {:?}) is neither",
                    c.sampling_rate,
                    c.audio_channels,
                    c.hop_length(),
                    c.chunk_length()
                ))
            })
    }

    /// Bring `audio` to the model's format: channels (mean to mono, mono duplicated to stereo), then the
    /// model's sample rate. Audio built by hand is checked first ([`Audio::validate`]): ragged channels
    /// reached the tensor constructor and panicked there.
    pub fn convert(&self, audio: &Audio) -> Result<Audio, CodecError> {
        audio.validate()?;
        Ok(audio
            .to_channels(self.channels())?
            .resample(self.sample_rate())?)
    }

    /// Encode one clip (converted to the model's format, no padding) at `bandwidth` kbps (`None`: the
    /// model's smallest, as HF).
    pub fn encode(&self, audio: &Audio, bandwidth: Option<f64>) -> Result<AudioCodes, CodecError> {
        let audio = self.convert(audio)?;
        let frames = audio.num_frames();
        let channels = audio.num_channels();
        // Mono moves its one channel into the tensor: no third copy of an hour-long clip.
        let planar: Vec<f32> = if channels == 1 {
            audio.channels.into_iter().next().unwrap_or_default()
        } else {
            audio.channels.concat()
        };
        let input =
            Tensor::<3>::from_data(TensorData::new(planar, [1, channels, frames]), &self.device);
        let segments = self.model.encode_segments(input, None, bandwidth)?;
        let mut chunks = Vec::with_capacity(segments.len());
        let mut num_codebooks = 0;
        for seg in segments {
            let [_, k, t] = seg.codes.dims();
            num_codebooks = k;
            let codes = seg
                .codes
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .map_err(|e| CodecError::Codes(format!("reading codes: {e:?}")))?;
            let scale = match seg.scale {
                Some(s) => s
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| CodecError::Codes(format!("reading scales: {e:?}")))?
                    .first()
                    .copied(),
                None => None,
            };
            chunks.push(ChunkCodes {
                codes,
                frames: t,
                scale,
            });
        }
        Ok(AudioCodes {
            chunks,
            num_codebooks,
            audio_length: frames,
        })
    }

    /// Decode codes to audio at the model's rate, cut to `codes.audio_length` samples. The codes and scales
    /// are checked on the host first ([`EncodecModel::check_segments`]): a code from a file can be any `i64`.
    pub fn decode(&self, codes: &AudioCodes) -> Result<Audio, CodecError> {
        self.model
            .check_segments(&codes.segment_refs(), codes.num_codebooks)?;
        let mut segments = Vec::with_capacity(codes.chunks.len());
        for (i, c) in codes.chunks.iter().enumerate() {
            if c.codes.len() != codes.num_codebooks * c.frames {
                return Err(CodecError::Codes(format!(
                    "chunk {i} has {} codes for {} codebooks × {} frames",
                    c.codes.len(),
                    codes.num_codebooks,
                    c.frames
                )));
            }
            let t = Tensor::<3, Int>::from_data(
                TensorData::new(c.codes.clone(), [1, codes.num_codebooks, c.frames]),
                &self.device,
            );
            let scale = c
                .scale
                .map(|s| Tensor::<1>::from_data(TensorData::new(vec![s], [1]), &self.device));
            segments.push(EncodedSegment { codes: t, scale });
        }
        let out = self
            .model
            .decode_segments(segments, Some(codes.audio_length))?;
        let [_, channels, frames] = out.dims();
        let v = out
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| CodecError::Codes(format!("reading audio: {e:?}")))?;
        // Mono hands its buffer over as is: no second copy of an hour of audio.
        let planar = if channels == 1 {
            vec![v]
        } else {
            (0..channels)
                .map(|c| v[c * frames..(c + 1) * frames].to_vec())
                .collect()
        };
        Ok(Audio::new(self.sample_rate(), planar)?)
    }
}
