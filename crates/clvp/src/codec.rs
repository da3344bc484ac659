//! EnCodec through the facade: load a checkpoint, take any decoded audio (channels converted and resampled to
//! the model's format, as encodec's `convert_audio`), encode to host-side codes, decode back, and move codes
//! between HF's tensor form (`audio_codes [chunks, 1, n_q, T]`, `audio_scales`, `last_frame_pad_length`) and
//! Meta's `.ecdc` container.

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_audio::Audio;
use clvp_hub::Checkpoint;
use encodec_codec::{EncodecModel, EncodedSegment};

mod files;
mod live;
mod stream;

pub use live::StreamEncoder;
pub use stream::ecdc_segment_refs;

pub use encodec_codec::ecdc::{EcdcFile, EcdcModel, EcdcPiece, EcdcReader};
pub use encodec_codec::streaming::{AudioSink, CodeSink};
pub use encodec_codec::{AudioCodes, ChunkCodes, CodesError, CompactCodes, HfCodes};
pub use encodec_codec::{
    CodeEvent, CodesRef, DecodeStream, EncodeStream, SegmentRef, StreamSummary,
};

/// The default 24 kHz checkpoint (Meta's CLI default).
pub const DEFAULT_ENCODEC: &str = "facebook/encodec_24khz";
/// The 48 kHz stereo checkpoint (Meta's `--hq`).
pub const DEFAULT_ENCODEC_HQ: &str = "facebook/encodec_48khz";

/// The facade's error ([`crate::Error`]), under its older name.
pub type CodecError = crate::Error;

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
        EcdcModel::for_config(c)
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
        // Each chunk's code count was checked against `num_codebooks × frames` by `check_segments`.
        for c in &codes.chunks {
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
