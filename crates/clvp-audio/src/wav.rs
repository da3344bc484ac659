//! WAV files with more channels than symphonia 0.6 takes. Its WAV reader gives every channel a speaker
//! position and stops at 26 (`riff: invalid channel count`), 18 for `WAVE_FORMAT_EXTENSIBLE`; the files are
//! fine otherwise, and a caller downmixes any channel count. Integer PCM (8/16/24/32-bit containers) and float
//! (32/64-bit) WAVs of up to [`MAX_CHANNELS`] channels are read here instead, block by block, with symphonia's
//! sample conversions, so they decode to the samples symphonia gives a narrower file.

use std::io::{ErrorKind, Read};

use crate::error::AudioError;
use crate::error::io_error;

/// The most channels a WAV may have (far beyond any recording; a larger count is a corrupt header).
pub const MAX_CHANNELS: usize = 1024;

/// Plain PCM/float WAVs of more channels than this go through this reader (symphonia's limit).
const SYMPHONIA_MAX_CHANNELS: usize = 26;
/// `WAVE_FORMAT_EXTENSIBLE` WAVs of more channels than this (or a mask beyond these bits) go through it.
const SYMPHONIA_MAX_MASK_CHANNELS: usize = 18;

/// Frames per block handed out.
const BLOCK_FRAMES: usize = 4096;

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sample {
    U8,
    I16,
    I24,
    I32,
    F32,
    F64,
}

impl Sample {
    fn bytes(self) -> usize {
        match self {
            Sample::U8 => 1,
            Sample::I16 => 2,
            Sample::I24 => 3,
            Sample::I32 | Sample::F32 => 4,
            Sample::F64 => 8,
        }
    }

    /// symphonia's conversion to f32 (`symphonia_core::audio::conv`).
    fn to_f32(self, b: &[u8]) -> f32 {
        match self {
            Sample::U8 => f32::from(b[0]) / 128.0 - 1.0,
            Sample::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
            Sample::I24 => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
            Sample::I32 => {
                (f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0) as f32
            }
            Sample::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Sample::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

/// The `fmt ` chunk of a WAV this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WavLayout {
    sample: Sample,
    channels: usize,
    rate: u32,
}

impl WavLayout {
    fn frame_bytes(&self) -> usize {
        self.channels * self.sample.bytes()
    }
}

/// The layout of a RIFF/WAVE whose `fmt ` chunk (found within `head`) declares more channels than symphonia
/// takes; `None` for anything else (symphonia reads it). More than [`MAX_CHANNELS`] channels is
/// [`AudioError::TooLarge`]; a wide file of another codec, [`AudioError::Unsupported`].
pub(crate) fn wide_layout(head: &[u8], file: &str) -> Result<Option<WavLayout>, AudioError> {
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return Ok(None);
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut pos = 12usize;
    while let Some(chunk) = head.get(pos..pos.saturating_add(8)) {
        let size = u32_at(chunk, 4) as usize;
        if &chunk[0..4] != b"fmt " {
            pos = pos
                .saturating_add(8)
                .saturating_add(size.saturating_add(size & 1));
            continue;
        }
        let Some(fmt) = head.get(pos + 8..pos + 8 + size.min(40)) else {
            return Ok(None);
        };
        if fmt.len() < 16 {
            return Ok(None);
        }
        let (tag, channels, rate) = (u16_at(fmt, 0), usize::from(u16_at(fmt, 2)), u32_at(fmt, 4));
        let (block_align, bits) = (usize::from(u16_at(fmt, 12)), u16_at(fmt, 14));
        let (float, extensible_mask) = match tag {
            1 => (false, None),
            3 => (true, None),
            0xFFFE if fmt.len() >= 40 => match u16_at(fmt, 24) {
                1 => (false, Some(u32_at(fmt, 20))),
                3 => (true, Some(u32_at(fmt, 20))),
                _ => return Ok(None),
            },
            _ if channels > SYMPHONIA_MAX_CHANNELS => {
                return Err(AudioError::Unsupported {
                    file: file.to_string(),
                    reason: format!(
                        "a WAV of {channels} channels with format tag {tag:#06x}: only integer PCM and float \
                         WAVs are read beyond {SYMPHONIA_MAX_CHANNELS} channels"
                    ),
                });
            }
            _ => return Ok(None),
        };
        let wide = match extensible_mask {
            None => channels > SYMPHONIA_MAX_CHANNELS,
            Some(mask) => {
                channels > SYMPHONIA_MAX_MASK_CHANNELS || mask >> SYMPHONIA_MAX_MASK_CHANNELS != 0
            }
        };
        if !wide {
            return Ok(None);
        }
        if channels > MAX_CHANNELS {
            return Err(AudioError::TooLarge {
                file: file.to_string(),
                field: "the WAV's channel count".into(),
                value: channels as u64,
                limit: MAX_CHANNELS as u64,
            });
        }
        let malformed = |reason: String| AudioError::Malformed {
            file: file.to_string(),
            reason,
        };
        // The container size is the block's share per channel; the valid bits sit in its top bits.
        let container = block_align / channels;
        let sample = match (float, container) {
            (false, 1) => Sample::U8,
            (false, 2) => Sample::I16,
            (false, 3) => Sample::I24,
            (false, 4) => Sample::I32,
            (true, 4) => Sample::F32,
            (true, 8) => Sample::F64,
            _ => {
                return Err(malformed(format!(
                    "a block of {block_align} bytes for {channels} channels of {bits} bits"
                )));
            }
        };
        if block_align != channels * container || usize::from(bits) > 8 * container || bits == 0 {
            return Err(malformed(format!(
                "a block of {block_align} bytes for {channels} channels of {bits} bits"
            )));
        }
        if rate == 0 {
            return Err(malformed("the sample rate is 0 Hz".into()));
        }
        return Ok(Some(WavLayout {
            sample,
            channels,
            rate,
        }));
    }
    Ok(None)
}

/// A wide WAV's samples, read block by block from the `data` chunk.
pub(crate) struct WideWav {
    source: Box<dyn Read + Send + Sync>,
    layout: WavLayout,
    /// Bytes of the `data` chunk not read yet (`None`: the header does not say, as ffmpeg's piped output).
    remaining: Option<u64>,
    /// The frames the `data` chunk declares.
    pub(crate) declared_frames: Option<u64>,
    /// The data ended before the declared length, or inside a frame.
    pub(crate) hit_eof: bool,
    buffer: Vec<u8>,
}

impl WideWav {
    /// Read the header of `source` (at the file's start) up to the `data` chunk.
    pub(crate) fn open(
        mut source: Box<dyn Read + Send + Sync>,
        layout: WavLayout,
        file: &str,
    ) -> Result<Self, AudioError> {
        let truncated = || AudioError::Truncated {
            file: file.to_string(),
            detail: "the data ends inside the header".into(),
        };
        let mut head = [0u8; 12];
        read_exact(&mut source, &mut head, file)?
            .then_some(())
            .ok_or_else(truncated)?;
        loop {
            let mut chunk = [0u8; 8];
            if !read_exact(&mut source, &mut chunk, file)? {
                return Err(AudioError::Malformed {
                    file: file.to_string(),
                    reason: "the WAV has no data chunk".into(),
                });
            }
            let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if &chunk[0..4] == b"data" {
                // ffmpeg writing to a pipe declares 2^32 − 1: unknown.
                let remaining = (size != u32::MAX).then_some(u64::from(size));
                let frame = layout.frame_bytes() as u64;
                return Ok(WideWav {
                    source,
                    layout,
                    remaining,
                    declared_frames: remaining.map(|r| r / frame),
                    hit_eof: false,
                    buffer: Vec::new(),
                });
            }
            let skip = u64::from(size) + u64::from(size & 1);
            let skipped = std::io::copy(&mut (&mut source).take(skip), &mut std::io::sink())
                .map_err(|e| io_error(file, e))?;
            if skipped < skip {
                return Err(truncated());
            }
        }
    }

    /// The sample rate in Hz (positive).
    pub(crate) fn sample_rate(&self) -> u32 {
        self.layout.rate
    }

    /// The next block into `block` (`[channel][frame]`); `false` at the end of the data.
    pub(crate) fn next_block(
        &mut self,
        block: &mut Vec<Vec<f32>>,
        file: &str,
    ) -> Result<bool, AudioError> {
        let frame = self.layout.frame_bytes();
        let mut want = (BLOCK_FRAMES * frame) as u64;
        if let Some(r) = self.remaining {
            want = want.min(r);
        }
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        self.buffer.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.source.read(&mut self.buffer[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(file, e)),
            }
        }
        if let Some(r) = &mut self.remaining {
            *r -= got as u64;
        }
        if got < want || got % frame != 0 {
            // The data ends early: the end checks compare the frames against the declared count.
            self.hit_eof = self.remaining.is_some_and(|r| r > 0) || got % frame != 0;
            self.remaining = Some(0);
        }
        let frames = got / frame;
        block.resize_with(self.layout.channels, Vec::new);
        for channel in block.iter_mut() {
            channel.clear();
            channel.reserve(frames);
        }
        let size = self.layout.sample.bytes();
        for bytes in self.buffer[..frames * frame].chunks_exact(frame) {
            for (channel, b) in block.iter_mut().zip(bytes.chunks_exact(size)) {
                channel.push(self.layout.sample.to_f32(b));
            }
        }
        Ok(frames > 0)
    }
}

/// Fill `buf`; `false` if the stream ends first.
fn read_exact(source: &mut impl Read, buf: &mut [u8], file: &str) -> Result<bool, AudioError> {
    match source.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_error(file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV header (`tag`, `channels`, `bits`, `block_align`) and `data`.
    fn wav(tag: u16, channels: u16, bits: u16, block_align: u16, data: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&(8000 * u32::from(block_align)).to_le_bytes());
        v.extend_from_slice(&block_align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn read(bytes: Vec<u8>) -> Result<Vec<Vec<f32>>, AudioError> {
        let layout = wide_layout(&bytes, "t.wav")?.ok_or_else(|| AudioError::InvalidAudio {
            reason: "not wide".into(),
        })?;
        let mut w = WideWav::open(Box::new(std::io::Cursor::new(bytes)), layout, "t.wav")?;
        let mut out = vec![Vec::new(); layout.channels];
        let mut block = Vec::new();
        while w.next_block(&mut block, "t.wav")? {
            for (o, b) in out.iter_mut().zip(&block) {
                o.extend_from_slice(b);
            }
        }
        Ok(out)
    }

    #[test]
    fn narrow_files_are_left_to_symphonia() {
        let ok = |b: Vec<u8>| matches!(wide_layout(&b, "t"), Ok(None));
        assert!(ok(wav(1, 2, 16, 4, &[])));
        assert!(ok(wav(1, 26, 16, 52, &[])));
        assert!(ok(b"fLaC and more".to_vec()));
    }

    #[test]
    fn wide_pcm_and_float_decode_per_channel() {
        // 40 channels of 16-bit PCM, two frames: channel c holds c·100 then −c·100.
        let mut data = Vec::new();
        for sign in [1i16, -1] {
            for c in 0..40i16 {
                data.extend_from_slice(&(sign * c * 100).to_le_bytes());
            }
        }
        let out = read(wav(1, 40, 16, 80, &data)).unwrap_or_default();
        assert_eq!(out.len(), 40);
        assert_eq!(out[7], vec![700.0 / 32768.0, -700.0 / 32768.0]);
        // 30 channels of 32-bit float, one frame.
        let data: Vec<u8> = (0..30)
            .flat_map(|c| (c as f32 * 0.01).to_le_bytes())
            .collect();
        let out = read(wav(3, 30, 32, 120, &data)).unwrap_or_default();
        assert_eq!(out[29], vec![0.29]);
        // 24-bit: sign-extended.
        let data: Vec<u8> = (0..27).flat_map(|_| [0x00, 0x00, 0x80]).collect();
        let out = read(wav(1, 27, 24, 81, &data)).unwrap_or_default();
        assert_eq!(out[0], vec![-1.0]);
    }

    #[test]
    fn bad_wide_headers_are_typed_errors() {
        let msg = |b: Vec<u8>| read(b).err().map(|e| e.to_string()).unwrap_or_default();
        let e = msg(wav(1, 2000, 16, 4000, &[]));
        assert!(
            e.contains("channel count is 2000, over the limit of 1024"),
            "{e}"
        );
        let e = msg(wav(1, 40, 16, 81, &[]));
        assert!(e.contains("malformed") && e.contains("81 bytes"), "{e}");
        let e = msg(wav(2, 40, 4, 80, &[]));
        assert!(
            e.contains("unsupported") && e.contains("40 channels"),
            "{e}"
        );
        // Cut inside a frame: the frames before it are kept, the end is flagged.
        let mut b = wav(1, 40, 16, 80, &[0; 100]);
        b.truncate(b.len() - 10);
        let layout = wide_layout(&b, "t").ok().flatten();
        let mut w = layout
            .map(|l| WideWav::open(Box::new(std::io::Cursor::new(b)), l, "t"))
            .and_then(Result::ok);
        let mut block = Vec::new();
        assert!(
            w.as_mut()
                .is_some_and(|w| matches!(w.next_block(&mut block, "t"), Ok(true)))
        );
        assert_eq!(block[0].len(), 1);
        assert!(w.is_some_and(|w| w.hit_eof));
    }
}
