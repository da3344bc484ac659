//! 16-bit PCM WAV written as samples come ([`WavWriter`]) or from a whole clip ([`write_wav`]), with Meta's
//! `encodec.utils.save_audio` conventions: samples clamped to ±0.99 unless a gain is given ([`pcm16`]). One
//! implementation, used by the facade and by the `clvp` command (which writes the header first because the
//! decoded length is known before decoding).
//!
//! Written here rather than with `hound`: `hound` writes the header's sizes on `finalize` by seeking back, and
//! the command writes to pipes and standard output, which cannot seek; the header of a known length is 44 bytes.

use std::io::Write;
use std::path::Path;

use crate::audio::Audio;
use crate::error::AudioError;

/// The bytes of a 16-bit PCM WAV header (what `hound` writes for one or two channels) for `frames` frames;
/// `None` when the data would pass the format's 4 GiB.
pub fn wav_header(channels: u16, rate: u32, frames: usize) -> Option<[u8; 44]> {
    let data = frames
        .checked_mul(usize::from(channels) * 2)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| n.checked_add(36).is_some())?;
    let block = channels.checked_mul(2)?;
    let mut h = [0u8; 44];
    let fields: [&[u8]; 12] = [
        b"RIFF",
        &(data + 36).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &channels.to_le_bytes(),
        &rate.to_le_bytes(),
        &(rate.wrapping_mul(u32::from(block))).to_le_bytes(),
        &block.to_le_bytes(),
        &16u16.to_le_bytes(),
        b"data",
        &data.to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        h[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    Some(h)
}

/// One sample as 16-bit PCM: times `gain`, clamped to ±0.99 when `clip` (Meta's `save_audio` without
/// `rescale`), non-finite values as 0.
pub fn pcm16(v: f32, gain: f32, clip: bool) -> i16 {
    let mut v = v * gain;
    if clip {
        v = v.clamp(-0.99, 0.99);
    }
    let v = if v.is_finite() { v } else { 0.0 };
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Append a planar block (`block[c * n + t]`, `n` frames) to `out` as interleaved little-endian 16-bit PCM.
pub fn push_pcm16(block: &[f32], n: usize, gain: f32, clip: bool, out: &mut Vec<u8>) {
    let channels = block.len().checked_div(n).unwrap_or(0);
    out.reserve(2 * block.len());
    for t in 0..n {
        for c in 0..channels {
            out.extend_from_slice(&pcm16(block[c * n + t], gain, clip).to_le_bytes());
        }
    }
}

/// A 16-bit PCM WAV of a known length written block by block: the header first, then the samples as they
/// come, clamped to ±0.99 ([`pcm16`]).
#[derive(Debug)]
pub struct WavWriter<W: Write> {
    w: W,
    channels: usize,
    frames: usize,
    written: usize,
    peak: f32,
    buf: Vec<u8>,
}

impl<W: Write> WavWriter<W> {
    /// Write the header of `frames` frames of `channels` channels at `rate` Hz; an error when WAV cannot hold
    /// them (4 GiB of samples) or the channel count is 0 or over 65 535.
    pub fn new(mut w: W, channels: usize, rate: u32, frames: usize) -> Result<Self, AudioError> {
        let header = u16::try_from(channels)
            .ok()
            .filter(|&c| c > 0)
            .and_then(|c| wav_header(c, rate, frames))
            .ok_or_else(|| AudioError::InvalidAudio {
                reason: format!(
                    "{frames} frames of {channels} channel(s) do not fit a 16-bit WAV file (4 GiB of samples)"
                ),
            })?;
        w.write_all(&header).map_err(write_error)?;
        Ok(WavWriter {
            w,
            channels,
            frames,
            written: 0,
            peak: 0.0,
            buf: Vec::new(),
        })
    }

    /// Append a planar block (`block[c * n + t]`) of `n` frames.
    pub fn push(&mut self, block: &[f32], n: usize) -> Result<(), AudioError> {
        if block.len() != n * self.channels || self.written + n > self.frames {
            return Err(AudioError::InvalidAudio {
                reason: format!(
                    "a block of {} samples for {n} frames of {} channel(s), after {} of the header's {} frames",
                    block.len(),
                    self.channels,
                    self.written,
                    self.frames
                ),
            });
        }
        self.peak = block.iter().fold(self.peak, |m, v| m.max(v.abs()));
        self.buf.clear();
        push_pcm16(block, n, 1.0, true, &mut self.buf);
        self.w.write_all(&self.buf).map_err(write_error)?;
        self.written += n;
        Ok(())
    }

    /// Check that every frame the header announced was written, flush, and return the writer and the largest
    /// magnitude seen (above 0.99 means samples were clamped).
    pub fn finish(mut self) -> Result<(W, f32), AudioError> {
        if self.written != self.frames {
            return Err(AudioError::InvalidAudio {
                reason: format!(
                    "{} frames written, the WAV header announced {}",
                    self.written, self.frames
                ),
            });
        }
        self.w.flush().map_err(write_error)?;
        Ok((self.w, self.peak))
    }
}

/// Write `audio` to `path` as 16-bit PCM WAV (clamped to ±0.99, as Meta's `save_audio`); returns the peak
/// magnitude (above 0.99 means samples were clamped).
pub fn write_wav(path: impl AsRef<Path>, audio: &Audio) -> Result<f32, AudioError> {
    let path = path.as_ref();
    let io = |e: std::io::Error| AudioError::Write {
        file: path.display().to_string(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let frames = audio.num_frames();
    let mut w = WavWriter::new(
        std::io::BufWriter::new(file),
        audio.num_channels(),
        audio.sample_rate,
        frames,
    )?;
    const BLOCK: usize = 1 << 14;
    let mut planar = Vec::new();
    let mut at = 0;
    while at < frames {
        let n = BLOCK.min(frames - at);
        planar.clear();
        for c in &audio.channels {
            planar.extend_from_slice(&c[at..at + n]);
        }
        w.push(&planar, n)?;
        at += n;
    }
    let (mut out, peak) = w.finish()?;
    out.flush().map_err(io)?;
    Ok(peak)
}

fn write_error(e: std::io::Error) -> AudioError {
    AudioError::Write {
        file: "the WAV output".into(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wav_header_is_hounds() {
        for (channels, rate, frames) in
            [(1u16, 24_000u32, 4850usize), (2, 48_000, 0), (2, 44_100, 7)]
        {
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut cursor = std::io::Cursor::new(Vec::new());
            let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap_or_else(|e| panic!("{e}"));
            for i in 0..frames * usize::from(channels) {
                w.write_sample(i as i16).unwrap_or_else(|e| panic!("{e}"));
            }
            w.finalize().unwrap_or_else(|e| panic!("{e}"));
            let bytes = cursor.into_inner();
            let header = wav_header(channels, rate, frames).unwrap_or_else(|| panic!("fits"));
            assert_eq!(
                &bytes[..44],
                &header[..],
                "{channels} ch, {rate} Hz, {frames} frames"
            );
        }
        assert!(wav_header(2, 48_000, 1 << 30).is_none());
    }

    #[test]
    fn samples_are_clamped_or_scaled_as_meta_saves_them() {
        assert_eq!(pcm16(1.5, 1.0, true), 32440);
        assert_eq!(pcm16(-1.5, 1.0, true), -32440);
        assert_eq!(pcm16(f32::NAN, 1.0, true), 0);
        assert_eq!(pcm16(1.0, 1.0, false), 32767);
        assert_eq!(pcm16(0.5, 0.5, false), 8192);
    }

    #[test]
    fn a_clip_written_reads_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("a.wav");
        let left: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        let right: Vec<f32> = left.iter().map(|v| -v * 1.5).collect();
        let audio = Audio::new(16_000, vec![left.clone(), right]).unwrap_or_else(|e| panic!("{e}"));
        let peak = write_wav(&path, &audio).unwrap_or_else(|e| panic!("{e}"));
        assert!((peak - 0.75).abs() < 1e-3, "{peak}");
        let back = crate::load_audio(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.sample_rate, 16_000);
        assert_eq!(back.num_frames(), 40_000);
        let worst = back.channels[0]
            .iter()
            .zip(&left)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1.0 / 32768.0 + 1e-6, "{worst}");
        let mut w = WavWriter::new(Vec::new(), 1, 8000, 3).unwrap_or_else(|e| panic!("{e}"));
        w.push(&[0.1, 0.2], 2).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.push(&[0.1, 0.2], 2).is_err(), "past the header's length");
        assert!(w.finish().is_err(), "short of the header's length");
        assert!(WavWriter::new(Vec::new(), 0, 8000, 3).is_err());
    }
}
