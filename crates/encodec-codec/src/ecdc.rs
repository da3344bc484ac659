//! Meta's `.ecdc` compressed-audio container, raw (non-LM) mode, byte-compatible with
//! `encodec.compress` / `encodec.binary` of the `encodec` 0.1.1 Python package.
//!
//! # Layout (version 0)
//!
//! ```text
//! b"ECDC"  u8 version = 0  u32 big-endian N  N bytes of JSON
//!     {"m": "encodec_24khz", "al": <samples per channel>, "nc": <codebooks>, "lm": false}
//! then for every segment:
//!     [4-byte big-endian f32 scale, only for models that normalise (encodec_48khz)]
//!     the segment's codes, 10 bits each, packed LSB-first, time-major
//!     (for t: for k: code[k][t]), flushed to a byte boundary
//! ```
//!
//! The segments are the original package's unpadded chunks ([`EcdcModel::segments`]), not the
//! Hugging Face feature extractor's padded ones.
//!
//! # Differences from the Python package
//!
//! * **Frame count.** Python's decoder computes a segment's frame count in floating point,
//!   `ceil(length / sample_rate * frame_rate)`, which is one too many for some lengths that are exact
//!   multiples of 320 samples (6720, 13440, 16320, 26880, …), while its encoder writes
//!   `ceil(length / 320)` frames. Python then fails with `EOFError` on files it wrote itself. We use
//!   the integer `ceil(length / hop)` on both sides, so we read those files correctly;
//!   [`EcdcModel::python_frames`] reproduces the float formula to tell which files Python cannot
//!   read back.
//! * **Strictness.** Python ignores bytes after the last segment and unused bits of a segment's last
//!   byte; we ignore the unused bits too, but reject trailing bytes ([`EcdcError::TrailingBytes`]),
//!   an `nc` the model's quantizer cannot decode, an empty audio length and non-finite, zero or negative scales.
//! * **Entropy coding.** Files written with `lm: true` (arithmetic-coded with Meta's language model)
//!   are rejected with [`EcdcError::EntropyCodedNotSupported`].

use std::io::{self, Read, Write};

mod error;
mod reader;
mod writer;

pub use error::{EcdcError, SegmentPart};
pub use reader::{EcdcPiece, EcdcReader};
pub use writer::EcdcBodyWriter;

/// The magic bytes every `.ecdc` file starts with.
pub const ECDC_MAGIC: [u8; 4] = *b"ECDC";

/// The only container version there is.
pub const ECDC_VERSION: u8 = 0;

/// A model the container can name in its `m` field, with what the container needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcdcModel {
    /// The name written in the header (`encodec_24khz`, `encodec_48khz`).
    pub name: &'static str,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Audio channels (1 or 2).
    pub channels: usize,
    /// Samples per code frame (product of the encoder strides).
    pub hop_length: usize,
    /// Code frames per second, `ceil(sample_rate / hop_length)` (used only by Python's float formula).
    pub frame_rate: u32,
    /// Segment length in samples, `None` when the whole audio is one segment.
    pub segment_length: Option<usize>,
    /// Distance between segment starts in samples, `None` when the whole audio is one segment.
    pub segment_stride: Option<usize>,
    /// Whether each segment is normalised, so that the file stores one scale per segment.
    pub normalize: bool,
    /// Bits per code (`log2` of the codebook size).
    pub bits: u32,
    /// The number of quantizer layers, the largest `nc` the model can decode.
    pub max_codebooks: usize,
}

impl EcdcModel {
    /// `encodec_24khz`: mono 24 kHz, one segment, no scales, up to 32 codebooks (24 kbps).
    pub const ENCODEC_24KHZ: Self = EcdcModel {
        name: "encodec_24khz",
        sample_rate: 24_000,
        channels: 1,
        hop_length: 320,
        frame_rate: 75,
        segment_length: None,
        segment_stride: None,
        normalize: false,
        bits: 10,
        max_codebooks: 32,
    };

    /// `encodec_48khz`: stereo 48 kHz, 1 s segments every 0.99 s (47520 samples), one scale per
    /// segment, up to 16 codebooks (24 kbps).
    pub const ENCODEC_48KHZ: Self = EcdcModel {
        name: "encodec_48khz",
        sample_rate: 48_000,
        channels: 2,
        hop_length: 320,
        frame_rate: 150,
        segment_length: Some(48_000),
        segment_stride: Some(47_520),
        normalize: true,
        bits: 10,
        max_codebooks: 16,
    };

    /// Every model the container accepts.
    pub const ALL: [Self; 2] = [Self::ENCODEC_24KHZ, Self::ENCODEC_48KHZ];

    /// The model written as `name` in a header, if the container accepts it.
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name == name)
    }

    /// The segments of `audio_length` samples (per channel), in file order, as the Python package
    /// cuts them: a segment starts every `segment_stride` samples and lasts `segment_length` samples
    /// or up to the end; its frame count is `ceil(length / hop_length)`.
    pub fn segments(&self, audio_length: usize) -> Vec<SegmentLayout> {
        self.segment_iter(audio_length).collect()
    }

    /// Frames the Python decoder expects for a segment of `length` samples: its floating-point
    /// `ceil(length / sample_rate * frame_rate)`. It exceeds the frames actually written
    /// (`ceil(length / hop_length)`) by one for some multiples of 320 such as 6720, and Python then
    /// cannot read the file back.
    pub fn python_frames(&self, length: usize) -> usize {
        (length as f64 / f64::from(self.sample_rate) * f64::from(self.frame_rate)).ceil() as usize
    }

    /// Whether the Python package can read back a file of `audio_length` samples that it wrote
    /// (false when [`EcdcModel::python_frames`] disagrees with some segment's frame count).
    pub fn python_reads_back(&self, audio_length: usize) -> bool {
        self.segment_iter(audio_length)
            .all(|s| self.python_frames(s.length) == s.frames)
    }

    /// Lazy form of [`EcdcModel::segments`]: a hostile header may claim a huge audio length.
    fn segment_iter(&self, audio_length: usize) -> impl Iterator<Item = SegmentLayout> + use<> {
        let seg_len = self.segment_length.unwrap_or(audio_length);
        let stride = self.segment_stride.unwrap_or(audio_length).max(1);
        let hop = self.hop_length.max(1);
        std::iter::successors(Some(0usize), move |&o| o.checked_add(stride))
            .take_while(move |&o| o < audio_length)
            .map(move |offset| {
                let length = (audio_length - offset).min(seg_len);
                SegmentLayout {
                    offset,
                    length,
                    frames: length.div_ceil(hop),
                }
            })
    }
}

/// Where one segment lies in the audio and how many code frames it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    /// First sample of the segment.
    pub offset: usize,
    /// Samples in the segment.
    pub length: usize,
    /// Code frames, `ceil(length / hop_length)`.
    pub frames: usize,
}

/// The codes (and scale) of one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct EcdcSegment {
    /// The segment's normalisation scale: `Some` exactly for models that normalise (48 kHz).
    pub scale: Option<f32>,
    /// Codebooks `K` (the file's `nc`).
    pub num_codebooks: usize,
    /// Codes `[K][T]`, row-major: the code of codebook `k` at frame `t` is `codes[k * T + t]`.
    pub codes: Vec<u16>,
}

impl EcdcSegment {
    /// Frames `T` (codes per codebook); 0 when `num_codebooks` is 0.
    pub fn frames(&self) -> usize {
        self.codes
            .len()
            .checked_div(self.num_codebooks)
            .unwrap_or(0)
    }

    /// The code of codebook `k` at frame `t`, if both are in range.
    pub fn code(&self, k: usize, t: usize) -> Option<u16> {
        let frames = self.frames();
        if k >= self.num_codebooks || t >= frames {
            return None;
        }
        self.codes.get(k * frames + t).copied()
    }
}

/// A whole raw-mode `.ecdc` file: the header fields and every segment's codes.
#[derive(Debug, Clone, PartialEq)]
pub struct EcdcFile {
    /// The model name (`m`), one of [`EcdcModel::ALL`].
    pub model: String,
    /// Audio length in samples per channel (`al`); the decoded audio is cut to this length.
    pub audio_length: usize,
    /// Codebooks per frame (`nc`).
    pub num_codebooks: usize,
    /// The segments in file order, laid out as [`EcdcModel::segments`] says.
    pub segments: Vec<EcdcSegment>,
}

/// Write `file` as a raw-mode (`lm: false`) `.ecdc` stream, byte-identical to what
/// `encodec.compress(model, wav, use_lm=False)` writes for the same codes and scales.
///
/// Everything is validated before the first byte is written; on error nothing is written.
pub fn write_ecdc(w: &mut impl Write, file: &EcdcFile) -> Result<(), EcdcError> {
    let model = validate(file)?;
    write_ecdc_header(w, &model, file.audio_length, file.num_codebooks)?;
    for seg in &file.segments {
        if let Some(scale) = seg.scale {
            w.write_all(&scale.to_be_bytes())?;
        }
        w.write_all(&pack_codes(&seg.codes, file.num_codebooks, model.bits))?;
    }
    w.flush()?;
    Ok(())
}

/// Write the header of a raw-mode `.ecdc` file (magic, version, the JSON metadata) for `model`, as
/// [`write_ecdc`] writes it; the segments follow ([`EcdcBodyWriter`] writes them for a stream).
pub fn write_ecdc_header(
    w: &mut impl Write,
    model: &EcdcModel,
    audio_length: usize,
    num_codebooks: usize,
) -> Result<(), EcdcError> {
    let json = format!(
        "{{\"m\": \"{}\", \"al\": {}, \"nc\": {}, \"lm\": false}}",
        model.name, audio_length, num_codebooks
    );
    let len = u32::try_from(json.len()).map_err(|_| io::Error::other("metadata too long"))?;
    let mut header = Vec::with_capacity(9 + json.len());
    header.extend_from_slice(&ECDC_MAGIC);
    header.push(ECDC_VERSION);
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(json.as_bytes());
    w.write_all(&header)?;
    Ok(())
}

/// Read a raw-mode `.ecdc` stream written by the Python package (or [`write_ecdc`]).
///
/// Reads incrementally: memory grows with the bytes actually present, whatever the header claims.
/// The whole stream must be consumed: bytes after the last segment are an error.
pub fn read_ecdc(r: &mut impl Read) -> Result<EcdcFile, EcdcError> {
    let mut reader = EcdcReader::new(r)?;
    let (model, audio_length, num_codebooks) = (
        reader.model(),
        reader.audio_length(),
        reader.num_codebooks(),
    );
    let mut segments = Vec::new();
    let mut codes = Vec::new();
    while let Some(piece) = reader.next_piece(usize::MAX)? {
        match piece {
            EcdcPiece::Frames { codes: c, .. } => codes.extend_from_slice(c),
            EcdcPiece::EndSegment { scale } => segments.push(EcdcSegment {
                scale,
                num_codebooks,
                codes: std::mem::take(&mut codes),
            }),
        }
    }
    Ok(EcdcFile {
        model: model.name.to_string(),
        audio_length,
        num_codebooks,
        segments,
    })
}

/// Check every field of `file` against its model; returns the model.
fn validate(file: &EcdcFile) -> Result<EcdcModel, EcdcError> {
    let model = EcdcModel::by_name(&file.model).ok_or_else(|| EcdcError::UnknownModel {
        name: file.model.clone(),
    })?;
    let k = file.num_codebooks;
    if k == 0 || k > model.max_codebooks {
        return Err(EcdcError::BadNumCodebooks {
            model: model.name,
            num_codebooks: k as u64,
            max: model.max_codebooks,
        });
    }
    if file.audio_length == 0 {
        return Err(EcdcError::EmptyAudio);
    }
    let layout = model.segments(file.audio_length);
    if layout.len() != file.segments.len() {
        return Err(EcdcError::WrongSegmentCount {
            model: model.name,
            audio_length: file.audio_length,
            expected: layout.len(),
            found: file.segments.len(),
        });
    }
    let limit = 1u32 << model.bits;
    for (i, (seg, lay)) in file.segments.iter().zip(&layout).enumerate() {
        if seg.num_codebooks != k {
            return Err(EcdcError::WrongCodebookCount {
                segment: i,
                expected: k,
                found: seg.num_codebooks,
            });
        }
        let expected_codes = lay.frames.saturating_mul(k);
        if seg.codes.len() != expected_codes {
            return Err(EcdcError::WrongFrameCount {
                segment: i,
                length: lay.length,
                expected_frames: lay.frames,
                num_codebooks: k,
                expected_codes,
                found_codes: seg.codes.len(),
            });
        }
        match (seg.scale, model.normalize) {
            (None, true) => {
                return Err(EcdcError::MissingScale {
                    segment: i,
                    model: model.name,
                });
            }
            (Some(_), false) => {
                return Err(EcdcError::UnexpectedScale {
                    segment: i,
                    model: model.name,
                });
            }
            (Some(value), true) if !crate::is_valid_scale(value) => {
                return Err(EcdcError::NonFiniteScale { segment: i, value });
            }
            _ => {}
        }
        if let Some(idx) = seg.codes.iter().position(|&c| u32::from(c) >= limit) {
            return Err(EcdcError::CodeOutOfRange {
                segment: i,
                codebook: idx / lay.frames.max(1),
                frame: idx % lay.frames.max(1),
                value: seg.codes[idx],
                limit,
            });
        }
    }
    Ok(model)
}

/// Extract and check `m`, `al`, `nc`, `lm` from the metadata JSON.
fn parse_metadata(json: &[u8]) -> Result<(EcdcModel, usize, usize), EcdcError> {
    let text = std::str::from_utf8(json).map_err(EcdcError::HeaderNotUtf8)?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(EcdcError::HeaderNotJson)?;
    let serde_json::Value::Object(map) = value else {
        return Err(EcdcError::HeaderNotObject {
            found: shorten(&value),
        });
    };
    let field = |name: &'static str| map.get(name).ok_or(EcdcError::MissingField { field: name });
    let mistyped = |name: &'static str, expected: &'static str, v: &serde_json::Value| {
        EcdcError::MistypedField {
            field: name,
            expected,
            found: shorten(v),
        }
    };
    let m = field("m")?;
    let name = m.as_str().ok_or_else(|| mistyped("m", "a string", m))?;
    let al = field("al")?;
    let audio_length = al
        .as_u64()
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| mistyped("al", "a non-negative integer", al))?;
    let nc = field("nc")?;
    let num_codebooks = nc
        .as_u64()
        .ok_or_else(|| mistyped("nc", "a non-negative integer", nc))?;
    let lm = field("lm")?;
    let lm = lm
        .as_bool()
        .ok_or_else(|| mistyped("lm", "a boolean", lm))?;

    let model = EcdcModel::by_name(name).ok_or_else(|| EcdcError::UnknownModel {
        name: name.to_string(),
    })?;
    if lm {
        return Err(EcdcError::EntropyCodedNotSupported);
    }
    let num_codebooks = usize::try_from(num_codebooks)
        .ok()
        .filter(|k| (1..=model.max_codebooks).contains(k))
        .ok_or(EcdcError::BadNumCodebooks {
            model: model.name,
            num_codebooks,
            max: model.max_codebooks,
        })?;
    if audio_length == 0 {
        return Err(EcdcError::EmptyAudio);
    }
    Ok((model, audio_length, num_codebooks))
}

/// A JSON value as text, cut to 60 characters for error messages.
fn shorten(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 60 {
        s
    } else {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    }
}

/// Read at most `n` bytes, fewer only at end of stream; the buffer grows with the data read.
fn read_up_to(r: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(n).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Bytes of `frames × num_codebooks` packed codes of `bits` bits, flushed to a byte boundary.
fn packed_len(frames: usize, num_codebooks: usize, bits: u32) -> u64 {
    let total_bits = frames as u128 * num_codebooks as u128 * u128::from(bits);
    u64::try_from(total_bits.div_ceil(8)).unwrap_or(u64::MAX)
}

/// `encodec.binary.BitPacker`: codes `[K][T]` pushed time-major, LSB-first, flushed at the end.
fn pack_codes(codes: &[u16], num_codebooks: usize, bits: u32) -> Vec<u8> {
    let frames = codes.len().checked_div(num_codebooks).unwrap_or(0);
    let mut out =
        Vec::with_capacity(usize::try_from(packed_len(frames, num_codebooks, bits)).unwrap_or(0));
    let mut packer = BitPacker::new(bits);
    for t in 0..frames {
        for k in 0..num_codebooks {
            packer.push(codes.get(k * frames + t).copied().unwrap_or(0), &mut out);
        }
    }
    packer.flush(&mut out);
    out
}

/// The state of `encodec.binary.BitPacker` between pushes: bits not yet written, LSB-first.
#[derive(Debug, Clone, Copy)]
struct BitPacker {
    bits: u32,
    acc: u32,
    nbits: u32,
}

impl BitPacker {
    fn new(bits: u32) -> Self {
        BitPacker {
            bits,
            acc: 0,
            nbits: 0,
        }
    }

    /// Add one code; the bytes it completes go to `out`.
    fn push(&mut self, value: u16, out: &mut Vec<u8>) {
        let mask = (1u32 << self.bits) - 1;
        self.acc |= (u32::from(value) & mask) << self.nbits;
        self.nbits += self.bits;
        while self.nbits >= 8 {
            out.push((self.acc & 0xff) as u8);
            self.acc >>= 8;
            self.nbits -= 8;
        }
    }

    /// Write the last, partial byte (the end of a segment).
    fn flush(&mut self, out: &mut Vec<u8>) {
        if self.nbits > 0 {
            out.push(self.acc as u8);
        }
        (self.acc, self.nbits) = (0, 0);
    }
}

/// `encodec.binary.BitUnpacker`: the inverse of [`pack_codes`]; returns codes `[K][T]`.
/// Missing bytes read as zero (callers pass exactly [`packed_len`] bytes).
#[cfg(test)]
fn unpack_codes(bytes: &[u8], frames: usize, num_codebooks: usize, bits: u32) -> Vec<u16> {
    let n = frames.saturating_mul(num_codebooks);
    let mut codes = vec![0u16; n];
    let mask = (1u32 << bits) - 1;
    let mut acc = 0u32;
    let mut nbits = 0u32;
    let mut input = bytes.iter();
    for t in 0..frames {
        for k in 0..num_codebooks {
            while nbits < bits {
                acc |= u32::from(input.next().copied().unwrap_or(0)) << nbits;
                nbits += 8;
            }
            if let Some(slot) = codes.get_mut(k * frames + t) {
                *slot = (acc & mask) as u16;
            }
            acc >>= bits;
            nbits -= bits;
        }
    }
    codes
}

#[cfg(test)]
mod tests;
