//! A voice clip from a file as `ClvpFeatureExtractor` wants it: mono, at its rate, its first `max_length`
//! samples, decoding only that beginning of the file (what `transformers` users do with `soundfile` and
//! `librosa` before calling the extractor).

use std::path::Path;

use crate::audio::Audio;
use crate::decode::load_audio_prefix;
use crate::error::AudioError;
use crate::feature_extractor::ClvpFeatureExtractor;

impl ClvpFeatureExtractor {
    /// Load the part of an audio file the extractor keeps, as it wants it: mono at its sampling rate (resampled
    /// if needed), at most [`ClvpFeatureExtractor::max_length`] samples (6 s) — HF truncates longer clips to
    /// their beginning. Only that beginning (plus the resampler's margin, see [`Self::clip_frame_limit`]) is
    /// decoded, so an hour-long file costs seconds of audio in memory; the features equal those of the whole
    /// file decoded (`load_audio` + [`Self::prepare`]).
    pub fn load_clip(&self, path: impl AsRef<Path>) -> Result<Vec<f32>, AudioError> {
        let prefix = load_audio_prefix(path, |rate| self.clip_frame_limit(rate))?;
        let mut clip = self.prepare(&prefix.audio)?;
        clip.truncate(self.max_length());
        Ok(clip)
    }

    /// Frames of a `rate` Hz file that [`Self::load_clip`] decodes: `max_length` in that rate, plus four of the
    /// resampler's FFT blocks and one second, so that the kept samples come out of the resampler exactly as
    /// they would from the whole file.
    pub fn clip_frame_limit(&self, rate: u32) -> u64 {
        let keep = self.max_length() as f64 / f64::from(self.sampling_rate.max(1));
        let block = crate::resample::sinc_len(rate, self.sampling_rate) as u64;
        (keep * f64::from(rate)).ceil() as u64 + 4 * block + u64::from(rate)
    }

    /// Downmix and resample decoded audio to the extractor's format.
    pub fn prepare(&self, audio: &Audio) -> Result<Vec<f32>, AudioError> {
        let mono = audio.to_mono();
        let mono = if mono.sample_rate == self.sampling_rate {
            mono
        } else {
            mono.resample(self.sampling_rate)?
        };
        Ok(mono.into_mono())
    }
}
