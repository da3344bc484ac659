//! The pieces of `encodec encode|decode` that live audio needs: raw PCM in (`--raw RATE:CHANNELS`), the audio
//! input as one block source ([`AudioIn`]), and the hold-back that cuts decoded audio to a length told only at
//! the end of the codes ([`Holdback`]). docs/streaming.md describes the commands.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use clvp::CodecError;
use clvp::raw::audio::{AudioReader, STDIN_LABEL, STDIN_PATH};

use crate::audio_out::AudioWriter;

/// `--raw RATE:CHANNELS`: interleaved 16-bit little-endian PCM without a header (`arecord -f S16_LE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSpec {
    pub rate: u32,
    pub channels: usize,
}

impl FromStr for RawSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not RATE:CHANNELS (e.g. 24000:1)");
        let (rate, channels) = s.split_once(':').ok_or_else(bad)?;
        let rate: u32 = rate.trim().parse().map_err(|_| bad())?;
        let channels: usize = channels.trim().parse().map_err(|_| bad())?;
        if rate == 0 || !(1..=64).contains(&channels) {
            return Err(format!(
                "`{s}`: the rate must be positive and the channels 1 to 64"
            ));
        }
        Ok(RawSpec { rate, channels })
    }
}

/// Bytes read from a raw stream at a time at most (a read of a pipe returns what is there, often less).
const RAW_READ: usize = 1 << 15;

/// Raw PCM read as it arrives.
pub struct RawReader {
    r: Box<dyn Read>,
    spec: RawSpec,
    label: String,
    buf: Vec<u8>,
    /// Bytes of an incomplete frame from the last read.
    carry: Vec<u8>,
    frames: u64,
}

impl RawReader {
    /// Read `path` (`-`: standard input) as `spec`.
    pub fn open(path: &Path, spec: RawSpec, label: &str) -> Result<Self> {
        let r: Box<dyn Read> = if path.as_os_str() == STDIN_PATH {
            Box::new(std::io::stdin())
        } else {
            if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
                bail!("reading audio {label}: it is a directory");
            }
            Box::new(File::open(path).with_context(|| format!("reading audio {label}"))?)
        };
        Ok(RawReader {
            r,
            spec,
            label: label.to_string(),
            buf: vec![0; RAW_READ],
            carry: Vec::new(),
            frames: 0,
        })
    }

    /// The next planar block of whole frames as the input gives them (`None` at its end).
    fn next_block(&mut self) -> Result<Option<Vec<Vec<f32>>>> {
        let frame = 2 * self.spec.channels;
        loop {
            let n = loop {
                match self.r.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("reading audio {}", self.label));
                    }
                }
            };
            if n == 0 {
                if !self.carry.is_empty() {
                    bail!(
                        "reading audio {}: the raw stream ends inside a frame ({} byte(s) after frame {}; a \
                         frame is {frame} bytes: {} channel(s) of 16 bits)",
                        self.label,
                        self.carry.len(),
                        self.frames,
                        self.spec.channels
                    );
                }
                return Ok(None);
            }
            self.carry.extend_from_slice(&self.buf[..n]);
            let whole = self.carry.len() / frame;
            if whole == 0 {
                continue;
            }
            let mut block = vec![Vec::with_capacity(whole); self.spec.channels];
            for f in self.carry[..whole * frame].chunks_exact(frame) {
                for (c, s) in f.chunks_exact(2).enumerate() {
                    // symphonia's i16 → f32 (what the WAV path gives for the same samples).
                    block[c].push(f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0);
                }
            }
            self.carry.drain(..whole * frame);
            self.frames += whole as u64;
            return Ok(Some(block));
        }
    }
}

/// Where encoded audio comes from.
pub enum AudioIn {
    /// Any common format, decoded packet by packet.
    Decoded(Box<AudioReader>),
    /// Raw PCM.
    Raw(RawReader),
}

impl AudioIn {
    /// Open `path` (`-`: standard input), raw when `raw` is given.
    pub fn open(path: &Path, raw: Option<RawSpec>) -> Result<Self> {
        let label = if path.as_os_str() == STDIN_PATH {
            STDIN_LABEL.to_string()
        } else {
            path.display().to_string()
        };
        match raw {
            Some(spec) => Ok(AudioIn::Raw(RawReader::open(path, spec, &label)?)),
            None => Ok(AudioIn::Decoded(Box::new(
                AudioReader::open(path).with_context(|| format!("reading audio {label}"))?,
            ))),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioIn::Decoded(r) => r.sample_rate(),
            AudioIn::Raw(r) => r.spec.rate,
        }
    }

    pub fn channels(&self) -> usize {
        match self {
            AudioIn::Decoded(r) => r.channels(),
            AudioIn::Raw(r) => r.spec.channels,
        }
    }

    /// Hand `f` every block in order. A decoder's error is the facade's (`CodecError::Audio`).
    pub fn for_each_block(&mut self, f: &mut dyn FnMut(&[Vec<f32>]) -> Result<()>) -> Result<()> {
        match self {
            AudioIn::Decoded(r) => {
                while let Some(block) = r.next_block().map_err(CodecError::from)? {
                    f(block)?;
                }
            }
            AudioIn::Raw(r) => {
                while let Some(block) = r.next_block()? {
                    f(&block)?;
                }
            }
        }
        Ok(())
    }
}

/// Decoded audio whose length is told only once the codes end (JSON lines): the last `hold` frames wait, since
/// the last code frame's padding is cut from them (the cut is under one frame's samples), the rest goes on.
pub struct Holdback {
    hold: usize,
    pending: Vec<Vec<f32>>,
    written: usize,
    block: Vec<f32>,
}

impl Holdback {
    pub fn new(channels: usize, hold: usize) -> Self {
        Holdback {
            hold,
            pending: vec![Vec::new(); channels],
            written: 0,
            block: Vec::new(),
        }
    }

    /// Take a planar block (`block[c * n + t]`) and write what no cut can reach.
    pub fn push(&mut self, block: &[f32], n: usize, out: &mut AudioWriter<'_>) -> Result<()> {
        for (c, p) in self.pending.iter_mut().enumerate() {
            p.extend_from_slice(block.get(c * n..(c + 1) * n).unwrap_or_default());
        }
        let ready = self.pending[0].len().saturating_sub(self.hold);
        self.emit(ready, out)
    }

    fn emit(&mut self, n: usize, out: &mut AudioWriter<'_>) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.block.clear();
        for p in &mut self.pending {
            self.block.extend(p.drain(..n));
        }
        self.written += n;
        out.push(&self.block, n)
    }

    /// The end: write what is left up to `audio_length` frames in all.
    pub fn finish(mut self, audio_length: usize, out: &mut AudioWriter<'_>) -> Result<()> {
        let have = self.written + self.pending[0].len();
        if audio_length < self.written || audio_length > have {
            bail!(
                "the codes decode to {have} samples per channel, but their end line gives the audio length \
                 {audio_length} (it must be within the last frame's {} samples)",
                self.hold
            );
        }
        self.emit(audio_length - self.written, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_specs_parse() {
        assert_eq!(
            "24000:1".parse::<RawSpec>(),
            Ok(RawSpec {
                rate: 24_000,
                channels: 1
            })
        );
        for bad in ["24000", "0:1", "24000:0", "x:1", "24000:65", ""] {
            assert!(bad.parse::<RawSpec>().is_err(), "{bad}");
        }
    }
}
