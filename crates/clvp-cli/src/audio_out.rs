//! Decoded audio written as the decoder hands it out ([`AudioWriter`]), in the bytes the whole-clip writer
//! wrote:
//!
//! * `.wav`: 16-bit PCM with Meta's `save_audio` limits (clvp-audio's [`wav_header`] and [`pcm16`], which the
//!   library's `WavWriter` uses too). The length is known before decoding
//!   ([`clvp::Encodec::decoded_length`]), so the header goes first and the samples follow block by block,
//!   clamped to ±0.99 ("Clipping!!" on stderr when the peak exceeds it). With `--rescale` the gain
//!   `min(0.99 / peak, 1)` needs the peak of the whole clip: the samples wait in a scratch file (f32, 4 bytes a
//!   sample, on disk in `TMPDIR`) and are converted once the peak is known.
//! * `.safetensors`: `audio_values` f32 `[1, C, L]`, planar: channel 0 goes to the output as it comes, the other
//!   channels wait in scratch files and follow it.
//! * `--raw`: the WAV's samples without its header (interleaved 16-bit little-endian PCM), as they come.
//!
//! The length can also be open ([`AudioWriter::open_length`]: codes read as JSON lines give the clip's length
//! at their end). Then a WAV file's header is written with sizes of 0 and rewritten at the end; a WAV on
//! standard output, a FIFO or a device, which cannot be rewritten, carries `0xFFFFFFFF` in both size fields,
//! the "length unknown" that `ffmpeg` writes to pipes and that `aplay`, `sox` and `ffmpeg` read to the end of the
//! stream. `.safetensors` names its shape first: every channel waits in a scratch file.
//!
//! Nothing is opened before the first block: codes that the decoder refuses (it checks them all first) leave
//! the output untouched, even a FIFO or standard output.

use std::io::{Read, Write};

use anyhow::{Result, bail};
use clvp::raw::audio::{pcm16, push_pcm16, wav_header};
use safetensors::Dtype;

use crate::output::{Output, OutputWriter, Scratch, TensorHead, safetensors_header, scratch};

/// The format of decoded audio.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// 16-bit PCM WAV.
    Wav,
    /// `audio_values` f32 `[1, C, L]`.
    Safetensors,
    /// Interleaved 16-bit little-endian PCM, no header.
    Raw,
}

/// The largest magnitude, NaN ignored (`f32::max`).
fn peak_of(peak: f32, values: &[f32]) -> f32 {
    values.iter().fold(peak, |m, v| m.max(v.abs()))
}

/// Where the samples are, once the first block came.
enum State<'a> {
    /// WAV, clipped: written as they come.
    Clip(OutputWriter<'a>),
    /// WAV, rescaled: interleaved f32 in a scratch file until the peak is known.
    Rescale(Scratch),
    /// `audio_values`: channel 0 written (when the length is known), the others in scratch files.
    Tensor(Option<OutputWriter<'a>>, Vec<Scratch>),
}

/// Decoded audio of a known length written block by block (see the module documentation).
pub struct AudioWriter<'a> {
    out: &'a Output,
    format: AudioFormat,
    rescale: bool,
    channels: usize,
    rate: u32,
    /// Frames the decoder will hand out, when known before the first.
    frames: Option<usize>,
    /// Flush the output after every block (a live stream).
    flush: bool,
    /// Frames received.
    received: usize,
    peak: f32,
    buf: Vec<u8>,
    state: Option<State<'a>>,
}

impl<'a> AudioWriter<'a> {
    /// A writer of `frames` frames of `channels` channels at `rate` Hz to `out`. Fails now if WAV cannot
    /// hold that many.
    pub fn new(
        out: &'a Output,
        format: AudioFormat,
        rescale: bool,
        channels: usize,
        rate: u32,
        frames: usize,
    ) -> Result<Self> {
        if format == AudioFormat::Wav
            && u16::try_from(channels)
                .ok()
                .and_then(|c| wav_header(c, rate, frames))
                .is_none()
        {
            bail!(
                "{}: {frames} frames of {channels} channel(s) are more than a 16-bit WAV file holds (4 GiB of \
                 samples); split the input",
                out.path().display()
            );
        }
        Ok(AudioWriter {
            out,
            format,
            rescale: rescale && format == AudioFormat::Wav,
            channels,
            rate,
            frames: Some(frames),
            flush: false,
            received: 0,
            peak: 0.0,
            buf: Vec::new(),
            state: None,
        })
    }

    /// The length is not known before the end (see the module documentation).
    pub fn open_length(mut self) -> Self {
        self.frames = None;
        self
    }

    /// Flush the output after every block, so that a reader of a pipe gets each as soon as it is decoded.
    pub fn live(mut self, on: bool) -> Self {
        self.flush = on;
        self
    }

    /// Open the output (or the scratch files) and write what goes before the samples.
    fn start(&mut self) -> Result<State<'a>> {
        let channels = self.channels;
        match (self.format, self.frames) {
            (AudioFormat::Wav, _) if self.rescale => Ok(State::Rescale(scratch()?)),
            (AudioFormat::Wav, frames) => {
                let mut w = self.out.writer()?;
                let mut header = self.header(frames.unwrap_or(0))?;
                if frames.is_none() && self.out.is_stream() {
                    header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
                    header[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
                }
                w.write_all(&header)?;
                Ok(State::Clip(w))
            }
            (AudioFormat::Raw, _) => Ok(State::Clip(self.out.writer()?)),
            (AudioFormat::Safetensors, Some(frames)) => {
                let head = TensorHead::new("audio_values", Dtype::F32, vec![1, channels, frames]);
                let (bytes, _) = safetensors_header(&[head])?;
                let mut w = self.out.writer()?;
                w.write_all(&bytes)?;
                let rest = (1..channels).map(|_| scratch()).collect::<Result<_>>()?;
                Ok(State::Tensor(Some(w), rest))
            }
            (AudioFormat::Safetensors, None) => {
                let all = (0..channels).map(|_| scratch()).collect::<Result<_>>()?;
                Ok(State::Tensor(None, all))
            }
        }
    }

    fn header(&self, frames: usize) -> Result<[u8; 44]> {
        u16::try_from(self.channels)
            .ok()
            .and_then(|c| wav_header(c, self.rate, frames))
            .ok_or_else(|| {
                anyhow::anyhow!("{}: too long for a WAV file", self.out.path().display())
            })
    }

    /// A planar block (`block[c * n + t]`) of `n` frames.
    pub fn push(&mut self, block: &[f32], n: usize) -> Result<()> {
        let limit = self.frames.unwrap_or(usize::MAX);
        if block.len() != n * self.channels || self.received + n > limit {
            bail!(
                "the decoder handed out {} samples for {n} frames of {} channel(s) after {} of {limit} frames",
                block.len(),
                self.channels,
                self.received,
            );
        }
        if self.frames.is_none()
            && self.format == AudioFormat::Wav
            && self.header(self.received + n).is_err()
        {
            bail!(
                "{}: more than a 16-bit WAV file holds (4 GiB of samples); split the input",
                self.out.path().display()
            );
        }
        let mut state = match self.state.take() {
            Some(s) => s,
            None => self.start()?,
        };
        self.received += n;
        self.peak = peak_of(self.peak, block);
        self.buf.clear();
        let r = match &mut state {
            State::Clip(w) => {
                push_pcm16(block, n, 1.0, true, &mut self.buf);
                let r = w.write_all(&self.buf);
                if self.flush {
                    r.and_then(|()| w.flush())
                } else {
                    r
                }
            }
            State::Rescale(s) => {
                for t in 0..n {
                    for c in 0..self.channels {
                        self.buf.extend_from_slice(&block[c * n + t].to_le_bytes());
                    }
                }
                s.write_all(&self.buf)
            }
            State::Tensor(w, rest) => {
                let mut r = Ok(());
                for (c, values) in block.chunks_exact(n.max(1)).enumerate() {
                    self.buf.clear();
                    values
                        .iter()
                        .for_each(|v| self.buf.extend_from_slice(&v.to_le_bytes()));
                    // With the length known, channel 0 goes out now and `rest` holds the others.
                    let scratch_index = if w.is_some() {
                        c.checked_sub(1)
                    } else {
                        Some(c)
                    };
                    r = match (c, w.as_mut(), scratch_index) {
                        (0, Some(w), _) => w.write_all(&self.buf),
                        (_, _, Some(i)) => match rest.get_mut(i) {
                            Some(s) => s.write_all(&self.buf),
                            None => Ok(()),
                        },
                        _ => Ok(()),
                    };
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
        };
        self.state = Some(state);
        Ok(r?)
    }

    /// Write what waits (rescaled samples, the other channels) and move the output into place.
    pub fn finish(mut self) -> Result<()> {
        if let Some(frames) = self.frames
            && self.received != frames
        {
            bail!(
                "the decoder handed out {} frames, {frames} were announced",
                self.received,
            );
        }
        let state = match self.state.take() {
            Some(s) => s,
            None => self.start()?,
        };
        let received = self.received;
        match state {
            State::Clip(mut w) => {
                if self.peak > 0.99 {
                    eprintln!("Clipping!!");
                }
                if self.frames.is_none() && self.format == AudioFormat::Wav {
                    w.rewrite_start(&self.header(received)?)?;
                }
                w.commit()
            }
            State::Rescale(s) => {
                let gain = (0.99 / self.peak).min(1.0);
                let mut w = self.out.writer()?;
                w.write_all(&self.header(received)?)?;
                let mut r = s.into_reader()?;
                let mut f32s = vec![0u8; 1 << 16];
                loop {
                    let got = read_full(&mut r, &mut f32s)?;
                    self.buf.clear();
                    for b in f32s[..got].chunks_exact(4) {
                        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        self.buf
                            .extend_from_slice(&pcm16(v, gain, false).to_le_bytes());
                    }
                    w.write_all(&self.buf)?;
                    if got < f32s.len() {
                        break;
                    }
                }
                w.commit()
            }
            State::Tensor(w, rest) => {
                let mut w = match w {
                    Some(w) => w,
                    None => {
                        let head = TensorHead::new(
                            "audio_values",
                            Dtype::F32,
                            vec![1, self.channels, received],
                        );
                        let (bytes, _) = safetensors_header(&[head])?;
                        let mut w = self.out.writer()?;
                        w.write_all(&bytes)?;
                        w
                    }
                };
                for s in rest {
                    std::io::copy(&mut s.into_reader()?, &mut w)?;
                }
                w.commit()
            }
        }
    }
}

/// Fill `buf` from `r` as far as it goes; the bytes read (fewer than `buf.len()` only at the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_ignores_nan() {
        assert_eq!(peak_of(0.0, &[0.1, f32::NAN, -0.7]), 0.7);
    }
}
