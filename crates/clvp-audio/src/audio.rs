//! Planar float audio and channel handling (torchaudio's `(channels, frames)` tensor, `wav.mean(0)`, `wav.expand(2, -1)`).

use crate::error::AudioError;
use crate::resample::resample_planar;

/// Decoded audio: planar `f32` samples, nominally in `[-1, 1]`.
///
/// Invariants (checked by [`Audio::new`], kept by every method): `sample_rate > 0`, at least one
/// channel, every channel has the same number of frames, and that number is at least 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// One vector of samples per channel, all of the same length.
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    /// Build audio from planar channels, checking the invariants above.
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Result<Self, AudioError> {
        let audio = Audio {
            sample_rate,
            channels,
        };
        audio.validate()?;
        Ok(audio)
    }

    /// Build mono audio from one channel of samples.
    pub fn mono(sample_rate: u32, samples: Vec<f32>) -> Result<Self, AudioError> {
        Self::new(sample_rate, vec![samples])
    }

    /// Check the invariants (useful after editing the public fields by hand).
    pub fn validate(&self) -> Result<(), AudioError> {
        let invalid = |reason: String| Err(AudioError::InvalidAudio { reason });
        if self.sample_rate == 0 {
            return invalid("the sample rate is 0 Hz".into());
        }
        let Some(first) = self.channels.first() else {
            return invalid("the audio has no channels".into());
        };
        if let Some((i, c)) = self
            .channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() != first.len())
        {
            return invalid(format!(
                "channel {i} has {} frames but channel 0 has {}",
                c.len(),
                first.len()
            ));
        }
        if first.is_empty() {
            return invalid("the audio has zero frames".into());
        }
        Ok(())
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of frames (samples per channel).
    pub fn num_frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.num_frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The samples of channel `index`, if it exists.
    pub fn channel(&self, index: usize) -> Option<&[f32]> {
        self.channels.get(index).map(Vec::as_slice)
    }

    /// Downmix to one channel: the mean of the channels per frame (`wav.mean(dim=0)` in float32:
    /// the channels are summed in order, then divided by their count).
    pub fn to_mono(&self) -> Audio {
        Audio {
            sample_rate: self.sample_rate,
            channels: vec![self.mono_samples()],
        }
    }

    /// The mono samples: channel 0 for mono audio, otherwise the downmix of [`Audio::to_mono`].
    pub fn into_mono(self) -> Vec<f32> {
        if self.channels.len() == 1 {
            self.channels.into_iter().next().unwrap_or_default()
        } else {
            self.mono_samples()
        }
    }

    fn mono_samples(&self) -> Vec<f32> {
        match self.channels.as_slice() {
            [only] => only.clone(),
            channels => mean_channel(channels),
        }
    }

    /// Convert to `channels` channels, as EnCodec's `convert_audio` does for mono/stereo models:
    /// the same count is returned unchanged, mono to stereo duplicates the channel, and any count to
    /// mono takes the mean ([`Audio::to_mono`]). Anything else (e.g. 6 → 2) is an error, since no
    /// downmix matrix is defined for it.
    pub fn to_channels(&self, channels: usize) -> Result<Audio, AudioError> {
        Ok(Audio {
            sample_rate: self.sample_rate,
            channels: convert_channels(&self.channels, channels)?,
        })
    }

    /// Resample every channel to `target_rate` Hz with rubato's FFT sinc resampler (see
    /// [`crate::resample`] for the settings and measured accuracy). The output has exactly
    /// `round(frames · target_rate / sample_rate)` frames (halves round up) and no delay.
    /// Returns a copy when the rate already matches.
    pub fn resample(&self, target_rate: u32) -> Result<Audio, AudioError> {
        if target_rate == self.sample_rate {
            return Ok(self.clone());
        }
        let channels = resample_planar(&self.channels, self.sample_rate, target_rate)?;
        Ok(Audio {
            sample_rate: target_rate,
            channels,
        })
    }
}

/// [`Audio::to_channels`] on planar samples (a block of a stream): identity, mono duplicated to stereo, or
/// the mean of any count to mono; the same operations as on the whole clip, so blocks convert to the same
/// samples.
pub fn convert_channels<S: AsRef<[f32]>>(
    channels: &[S],
    to: usize,
) -> Result<Vec<Vec<f32>>, AudioError> {
    match (channels, to) {
        (c, t) if c.len() == t => Ok(c.iter().map(|x| x.as_ref().to_vec()).collect()),
        ([only], 2) => Ok(vec![only.as_ref().to_vec(), only.as_ref().to_vec()]),
        (c, 1) => Ok(vec![mean_channel(c)]),
        (c, to) => Err(AudioError::ChannelConversion { from: c.len(), to }),
    }
}

/// The mean of the channels per frame (`wav.mean(dim=0)` in float32: summed in order, then divided by the
/// count).
fn mean_channel<S: AsRef<[f32]>>(channels: &[S]) -> Vec<f32> {
    let count = channels.len() as f32;
    let mut sum = vec![0.0f32; channels.first().map_or(0, |c| c.as_ref().len())];
    for channel in channels {
        for (s, &x) in sum.iter_mut().zip(channel.as_ref()) {
            *s += x;
        }
    }
    sum.iter_mut().for_each(|s| *s /= count);
    sum
}

/// Find non-finite samples: `(count, channel, frame)` of the first one, or `None` when all are finite.
pub(crate) fn find_non_finite<'a>(
    channels: impl IntoIterator<Item = &'a [f32]>,
) -> Option<(usize, usize, usize)> {
    let mut first = None;
    let mut count = 0usize;
    for (c, channel) in channels.into_iter().enumerate() {
        // Fast path: a clean channel costs one pass.
        if channel.iter().all(|x| x.is_finite()) {
            continue;
        }
        for (i, x) in channel.iter().enumerate() {
            if !x.is_finite() {
                count += 1;
                first.get_or_insert((c, i));
            }
        }
    }
    first.map(|(c, i)| (count, c, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_is_the_mean() {
        let a = Audio::new(8000, vec![vec![1.0, 0.5], vec![0.0, -0.5]]).unwrap();
        assert_eq!(a.to_mono().channels, vec![vec![0.5, 0.0]]);
        assert_eq!(a.clone().into_mono(), vec![0.5, 0.0]);
    }

    #[test]
    fn channel_conversions() {
        let m = Audio::mono(8000, vec![0.25, -0.25]).unwrap();
        let s = m.to_channels(2).unwrap();
        assert_eq!(s.channels, vec![vec![0.25, -0.25], vec![0.25, -0.25]]);
        assert_eq!(s.to_channels(1).unwrap(), m);
        let eight = Audio::new(8000, vec![vec![1.0]; 8]).unwrap();
        assert_eq!(eight.to_channels(1).unwrap().channels, vec![vec![1.0]]);
        let err = eight.to_channels(2).unwrap_err().to_string();
        assert!(err.contains("8 channels to 2"), "{err}");
    }

    #[test]
    fn invariants_are_checked() {
        assert!(Audio::new(0, vec![vec![0.0]]).is_err());
        assert!(Audio::new(8000, vec![]).is_err());
        assert!(Audio::new(8000, vec![vec![0.0], vec![]]).is_err());
        assert!(Audio::new(8000, vec![vec![]]).is_err());
    }

    #[test]
    fn non_finite_are_counted() {
        let a = [0.0f32, f32::NAN, 1.0];
        let b = [f32::INFINITY, 0.0, f32::NEG_INFINITY];
        assert_eq!(find_non_finite([&a[..], &b[..]]), Some((3, 0, 1)));
        assert_eq!(find_non_finite([&[0.0f32][..]]), None);
    }
}
