//! Audio in for CLVP and EnCodec: decode any common file, downmix, resample, and the log-mel
//! features of `transformers.ClvpFeatureExtractor` (5.23). No burn dependency.
//!
//! ```no_run
//! use clvp_audio::{ClvpFeatureExtractor, load_audio};
//!
//! let audio = load_audio("voice.flac")?.to_mono().resample(22_050)?;
//! let features = ClvpFeatureExtractor::tortoise().extract(&[&audio.channels[0]], Some(22_050))?;
//! assert_eq!(features.shape, [1, 80, 517]);
//! # Ok::<(), clvp_audio::AudioError>(())
//! ```
//!
//! * [`decode`]: [`load_audio`] / [`decode_bytes`] (WAV, FLAC, MP3, OGG/Vorbis, AIFF) with symphonia.
//! * [`reader`]: [`AudioReader`], the same decode one packet at a time, from files, pipes and stdin (`-`).
//! * [`audio`]: [`Audio`], planar `f32`, with [`Audio::to_mono`], [`Audio::to_channels`], [`Audio::resample`].
//! * [`resample`]: rubato's FFT sinc resampler, delay-free, exact output length; [`StreamResampler`] gives
//!   the same samples block by block.
//! * [`mel`]: [`mel_filter_bank`] exactly as `transformers.audio_utils.mel_filter_bank`.
//! * `stft` (internal): the float64 STFT / log-mel recipe of `ClvpFeatureExtractor`.
//! * [`feature_extractor`]: [`ClvpFeatureExtractor`] and its [`Features`]; `clip` (internal): a voice clip from
//!   a file as the extractor keeps it ([`ClvpFeatureExtractor::load_clip`]).

#![warn(missing_docs)]

pub mod audio;
mod clip;
pub mod decode;
pub mod error;
pub mod feature_extractor;
mod header;
pub mod mel;
pub mod reader;
pub mod resample;
pub(crate) mod stft;
pub mod wav;
pub mod wav_write;

pub use audio::{Audio, convert_channels};
pub use decode::{AudioPrefix, decode_bytes, load_audio, load_audio_prefix};
pub use error::AudioError;
pub use feature_extractor::{ClvpFeatureExtractor, Features};
pub use mel::{MelNorm, MelScale, mel_filter_bank};
pub use reader::{AudioReader, STDIN_LABEL, STDIN_PATH};
pub use resample::StreamResampler;
pub use wav_write::{WavWriter, pcm16, push_pcm16, wav_header, write_wav};
