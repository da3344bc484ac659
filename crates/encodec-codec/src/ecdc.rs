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

use std::fmt;
use std::io::{self, Read, Write};

mod reader;
mod writer;

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

/// Which part of a segment was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentPart {
    /// The 4-byte scale.
    Scale,
    /// The packed codes.
    Codes,
}

impl fmt::Display for SegmentPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentPart::Scale => "scale",
            SegmentPart::Codes => "codes",
        })
    }
}

/// Accepted model names, for error messages.
struct AcceptedModels;

impl fmt::Display for AcceptedModels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in EcdcModel::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(m.name)?;
        }
        Ok(())
    }
}

/// Why an `.ecdc` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EcdcError {
    /// The file does not start with `ECDC`.
    #[error("not an .ecdc file: starts with b\"{}\", expected b\"ECDC\"", .found.escape_ascii())]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The version byte is not 0.
    #[error("unsupported .ecdc version {0} (only version 0 exists)")]
    UnsupportedVersion(u8),
    /// The file ends inside the fixed header or the JSON metadata.
    #[error("truncated .ecdc file: the {what} needs {expected} bytes, only {available} available")]
    TruncatedHeader {
        /// `"header"` (magic, version, length) or `"metadata JSON"`.
        what: &'static str,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        available: u64,
    },
    /// The metadata is not UTF-8.
    #[error(".ecdc metadata is not UTF-8: {0}")]
    HeaderNotUtf8(#[source] std::str::Utf8Error),
    /// The metadata is not valid JSON.
    #[error(".ecdc metadata is not valid JSON: {0}")]
    HeaderNotJson(#[source] serde_json::Error),
    /// The metadata is JSON but not an object.
    #[error(".ecdc metadata is not a JSON object: {found}")]
    HeaderNotObject {
        /// The JSON found (shortened).
        found: String,
    },
    /// A metadata field is absent.
    #[error(".ecdc metadata has no \"{field}\" field")]
    MissingField {
        /// The field name (`m`, `al`, `nc`, `lm`).
        field: &'static str,
    },
    /// A metadata field has the wrong type.
    #[error(".ecdc metadata field \"{field}\" must be {expected}, found {found}")]
    MistypedField {
        /// The field name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// The JSON found (shortened).
        found: String,
    },
    /// The model name is not one the container accepts.
    #[error("unknown .ecdc model \"{name}\"; accepted: {}", AcceptedModels)]
    UnknownModel {
        /// The name found.
        name: String,
    },
    /// The file was entropy-coded with the language model (`lm: true`).
    #[error("entropy-coded (lm) .ecdc files are not supported yet")]
    EntropyCodedNotSupported,
    /// `nc` is 0 or more than the model's quantizer has.
    #[error("{model} cannot have {num_codebooks} codebooks (1 to {max})")]
    BadNumCodebooks {
        /// The model name.
        model: &'static str,
        /// The number found.
        num_codebooks: u64,
        /// The model's largest number of codebooks.
        max: usize,
    },
    /// `al` is 0: the Python package can neither write nor read an empty file.
    #[error(".ecdc audio length is 0")]
    EmptyAudio,
    /// The file ends inside a segment.
    #[error(
        "truncated .ecdc file: segment {segment} {part} needs {expected} bytes, only {available} available"
    )]
    TruncatedSegment {
        /// The segment index.
        segment: usize,
        /// Scale or codes.
        part: SegmentPart,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        available: u64,
    },
    /// Bytes follow the last segment.
    #[error(".ecdc file has {count} trailing bytes after its last segment")]
    TrailingBytes {
        /// How many.
        count: u64,
    },
    /// A scale is NaN, infinite, zero or negative ([`crate::is_valid_scale`]; the name is historical).
    #[error(
        ".ecdc segment {segment} has the scale {value}; a scale must be finite and positive (the encoder's \
         RMS scale always is): the file is corrupt"
    )]
    NonFiniteScale {
        /// The segment index.
        segment: usize,
        /// The scale.
        value: f32,
    },
    /// Writing: the file does not have one segment per [`EcdcModel::segments`] entry.
    #[error("{model} audio of {audio_length} samples has {expected} segments, got {found}")]
    WrongSegmentCount {
        /// The model name.
        model: &'static str,
        /// The audio length.
        audio_length: usize,
        /// Segments needed.
        expected: usize,
        /// Segments given.
        found: usize,
    },
    /// Writing: a segment's `num_codebooks` differs from the file's.
    #[error("segment {segment} has {found} codebooks, the file has {expected}")]
    WrongCodebookCount {
        /// The segment index.
        segment: usize,
        /// The file's `num_codebooks`.
        expected: usize,
        /// The segment's.
        found: usize,
    },
    /// Writing: a segment has the wrong number of codes.
    #[error(
        "segment {segment} ({length} samples) needs {expected_frames} frames × {num_codebooks} codebooks = {expected_codes} codes, got {found_codes}"
    )]
    WrongFrameCount {
        /// The segment index.
        segment: usize,
        /// The segment length in samples.
        length: usize,
        /// Frames needed.
        expected_frames: usize,
        /// Codebooks.
        num_codebooks: usize,
        /// Codes needed.
        expected_codes: usize,
        /// Codes given.
        found_codes: usize,
    },
    /// Writing: a code does not fit the codebook.
    #[error(
        "segment {segment}, codebook {codebook}, frame {frame}: code {value} is out of range (must be < {limit})"
    )]
    CodeOutOfRange {
        /// The segment index.
        segment: usize,
        /// The codebook.
        codebook: usize,
        /// The frame.
        frame: usize,
        /// The code.
        value: u16,
        /// The codebook size.
        limit: u32,
    },
    /// Writing: a segment of a normalising model has no scale.
    #[error("segment {segment} has no scale, but {model} stores one per segment")]
    MissingScale {
        /// The segment index.
        segment: usize,
        /// The model name.
        model: &'static str,
    },
    /// Writing: a segment of a non-normalising model has a scale.
    #[error("segment {segment} has a scale, but {model} stores none")]
    UnexpectedScale {
        /// The segment index.
        segment: usize,
        /// The model name.
        model: &'static str,
    },
    /// Reading or writing failed.
    #[error(".ecdc I/O error: {0}")]
    Io(#[from] io::Error),
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
mod tests {
    use super::*;

    const M24: EcdcModel = EcdcModel::ENCODEC_24KHZ;
    const M48: EcdcModel = EcdcModel::ENCODEC_48KHZ;

    /// Deterministic pseudo-random codes below `limit`.
    fn codes(n: usize, seed: u64, limit: u16) -> Vec<u16> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) % u64::from(limit)) as u16
            })
            .collect()
    }

    /// A valid file for `model`, `audio_length`, `k` codebooks.
    fn file(model: EcdcModel, audio_length: usize, k: usize) -> EcdcFile {
        let segments = model
            .segments(audio_length)
            .iter()
            .enumerate()
            .map(|(i, s)| EcdcSegment {
                scale: model.normalize.then_some(0.01 + i as f32 * 0.25),
                num_codebooks: k,
                codes: codes(s.frames * k, i as u64 + audio_length as u64, 1024),
            })
            .collect();
        EcdcFile {
            model: model.name.to_string(),
            audio_length,
            num_codebooks: k,
            segments,
        }
    }

    fn to_bytes(f: &EcdcFile) -> Result<Vec<u8>, EcdcError> {
        let mut buf = Vec::new();
        write_ecdc(&mut buf, f)?;
        Ok(buf)
    }

    fn from_bytes(b: &[u8]) -> Result<EcdcFile, EcdcError> {
        read_ecdc(&mut &b[..])
    }

    /// A header with arbitrary JSON, no segments.
    fn with_json(json: &[u8]) -> Vec<u8> {
        let mut b = b"ECDC\0".to_vec();
        b.extend_from_slice(&(json.len() as u32).to_be_bytes());
        b.extend_from_slice(json);
        b
    }

    fn read_err(b: &[u8]) -> EcdcError {
        match from_bytes(b) {
            Ok(f) => panic!("expected an error, read {f:?}"),
            Err(e) => e,
        }
    }

    fn write_err(f: &EcdcFile) -> EcdcError {
        let mut buf = Vec::new();
        match write_ecdc(&mut buf, f) {
            Ok(()) => panic!("expected an error"),
            Err(e) => {
                assert!(buf.is_empty(), "wrote {} bytes before failing", buf.len());
                e
            }
        }
    }

    #[test]
    fn packer_known_bytes() {
        // 1 → bits 0..10; 2 → bits 10..20 = byte 1 bit 3 (0x08); flush writes the 4 leftover bits.
        assert_eq!(pack_codes(&[1, 2], 1, 10), [0x01, 0x08, 0x00]);
        // K = 2, T = 1: same stream, time-major.
        assert_eq!(pack_codes(&[1, 2], 2, 10), [0x01, 0x08, 0x00]);
        // K = 1, T = 2 with codes [1, 2] is also [1, 2]; K = 2, T = 2 reorders: [[1,2],[3,4]] → 1,3,2,4.
        assert_eq!(
            pack_codes(&[1, 2, 3, 4], 2, 10),
            pack_codes(&[1, 3, 2, 4], 1, 10)
        );
        // 1023, 0, 1023, 0: 40 bits, exactly 5 bytes, no flush byte.
        assert_eq!(
            pack_codes(&[1023, 0, 1023, 0], 1, 10),
            [0xff, 0x03, 0xf0, 0x3f, 0x00]
        );
        // 0x2AA = 1010101010b, then 0x155 = 0101010101b: bits LSB-first.
        assert_eq!(pack_codes(&[0x2aa, 0x155], 1, 10), [0xaa, 0x56, 0x05]);
        assert_eq!(pack_codes(&[], 1, 10), Vec::<u8>::new());
        assert_eq!(packed_len(1, 1, 10), 2);
        assert_eq!(packed_len(75, 8, 10), 750);
        assert_eq!(packed_len(3, 1, 10), 4);
    }

    #[test]
    fn packer_round_trip() {
        for (frames, k) in [(1, 1), (1, 2), (3, 1), (7, 3), (75, 8), (16, 16), (5, 32)] {
            let c = codes(frames * k, (frames * 31 + k) as u64, 1024);
            let bytes = pack_codes(&c, k, 10);
            assert_eq!(bytes.len() as u64, packed_len(frames, k, 10));
            assert_eq!(unpack_codes(&bytes, frames, k, 10), c, "T={frames} K={k}");
        }
    }

    #[test]
    fn header_bytes() {
        let f = file(M24, 24000, 8);
        let b = to_bytes(&f).unwrap();
        let json = br#"{"m": "encodec_24khz", "al": 24000, "nc": 8, "lm": false}"#;
        assert_eq!(json.len(), 57);
        assert_eq!(&b[..9], b"ECDC\x00\x00\x00\x00\x39");
        assert_eq!(&b[9..9 + 57], json);
        assert_eq!(b.len(), 9 + 57 + 750);

        let f = file(M48, 100_000, 4);
        let b = to_bytes(&f).unwrap();
        let json = br#"{"m": "encodec_48khz", "al": 100000, "nc": 4, "lm": false}"#;
        assert_eq!(&b[5..9], (json.len() as u32).to_be_bytes());
        assert_eq!(&b[9..9 + json.len()], json);
        // First segment: big-endian scale 0.01 then 150 × 4 codes in 750 bytes.
        let s = 9 + json.len();
        assert_eq!(&b[s..s + 4], 0.01f32.to_be_bytes());
        assert_eq!(&b[s..s + 4], [0x3c, 0x23, 0xd7, 0x0a]);
        assert_eq!(b.len(), s + (4 + 750) * 2 + 4 + 80);
    }

    #[test]
    fn round_trips() {
        for (model, al, k) in [
            (M24, 1, 1),
            (M24, 320, 2),
            (M24, 6720, 8),
            (M24, 24000, 32),
            (M24, 24001, 4),
            (M48, 1, 2),
            (M48, 48000, 4),
            (M48, 96000, 8),
            (M48, 100_000, 16),
        ] {
            let f = file(model, al, k);
            let b = to_bytes(&f).unwrap();
            assert_eq!(from_bytes(&b).unwrap(), f, "{} {al}", model.name);
        }
    }

    #[test]
    fn segment_layouts() {
        let seg = |offset, length, frames| SegmentLayout {
            offset,
            length,
            frames,
        };
        assert_eq!(M24.segments(24000), [seg(0, 24000, 75)]);
        assert_eq!(M24.segments(1), [seg(0, 1, 1)]);
        assert_eq!(M24.segments(321), [seg(0, 321, 2)]);
        assert_eq!(M24.segments(0), []);
        assert_eq!(
            M48.segments(100_000),
            [
                seg(0, 48000, 150),
                seg(47520, 48000, 150),
                seg(95040, 4960, 16)
            ]
        );
        assert_eq!(
            M48.segments(96000),
            [
                seg(0, 48000, 150),
                seg(47520, 48000, 150),
                seg(95040, 960, 3)
            ]
        );
        // One second at 48 kHz is two segments: the stride is 0.99 s.
        assert_eq!(
            M48.segments(48000),
            [seg(0, 48000, 150), seg(47520, 480, 2)]
        );
        assert_eq!(M48.segments(47520), [seg(0, 47520, 149)]);
        assert_eq!(M48.segments(0), []);
        // A hostile length does not loop forever or overflow.
        assert_eq!(M24.segments(usize::MAX).len(), 1);
        assert_eq!(M48.segment_iter(usize::MAX).take(3).count(), 3);
    }

    #[test]
    fn python_float_frame_count_bug() {
        assert_eq!(
            M24.segments(6720),
            [SegmentLayout {
                offset: 0,
                length: 6720,
                frames: 21
            }]
        );
        assert_eq!(M24.python_frames(6720), 22);
        assert!(!M24.python_reads_back(6720));
        for bad in [13440, 16320, 26880] {
            assert!(!M24.python_reads_back(bad), "{bad}");
        }
        for good in [1, 320, 6400, 7040, 24000, 24001] {
            assert!(M24.python_reads_back(good), "{good}");
        }
        // 223 lengths below 60 s at 24 kHz (spec §9.2).
        let n = (1..=24000 * 60)
            .filter(|&l| !M24.python_reads_back(l))
            .count();
        assert_eq!(n, 223);
        // 48 kHz: full segments are fine, a 6720-sample last segment is not.
        assert!(M48.python_reads_back(100_000));
        assert!(!M48.python_reads_back(47520 + 6720));
        // Our reader reads a 6720-sample file with 21 frames.
        let f = file(M24, 6720, 8);
        let b = to_bytes(&f).unwrap();
        assert_eq!(b.len(), 9 + 56 + 210);
        assert_eq!(from_bytes(&b).unwrap().segments[0].frames(), 21);
    }

    #[test]
    fn segment_accessors() {
        let s = EcdcSegment {
            scale: None,
            num_codebooks: 2,
            codes: vec![1, 2, 3, 4, 5, 6],
        };
        assert_eq!(s.frames(), 3);
        assert_eq!(s.code(1, 0), Some(4));
        assert_eq!(s.code(0, 2), Some(3));
        assert_eq!(s.code(2, 0), None);
        assert_eq!(s.code(0, 3), None);
        let empty = EcdcSegment {
            scale: None,
            num_codebooks: 0,
            codes: vec![1],
        };
        assert_eq!(empty.frames(), 0);
        assert_eq!(empty.code(0, 0), None);
    }

    #[test]
    fn model_lookup() {
        assert_eq!(EcdcModel::by_name("encodec_24khz"), Some(M24));
        assert_eq!(EcdcModel::by_name("encodec_48khz"), Some(M48));
        assert_eq!(EcdcModel::by_name("encodec_32khz"), None);
        assert_eq!(M48.segment_stride, Some((0.99f64 * 48000.0) as usize));
        for m in EcdcModel::ALL {
            assert_eq!(
                m.frame_rate as usize,
                (m.sample_rate as usize).div_ceil(m.hop_length)
            );
        }
    }

    #[test]
    fn read_errors_header() {
        let good = to_bytes(&file(M24, 640, 2)).unwrap();

        let e = read_err(b"RIFF\0\0\0\0WAVE");
        assert!(matches!(e, EcdcError::BadMagic { found } if &found == b"RIFF"));
        assert!(e.to_string().contains("b\"RIFF\""), "{e}");
        let e = read_err(b"\x00\xffAB");
        assert!(e.to_string().contains(r#"b"\x00\xffAB""#), "{e}");

        for n in 0..9 {
            let e = read_err(&good[..n]);
            assert!(
                matches!(e, EcdcError::TruncatedHeader { what: "header", expected: 9, available } if available == n as u64),
                "{n}: {e}"
            );
        }
        let mut v1 = good.clone();
        v1[4] = 1;
        assert!(matches!(read_err(&v1), EcdcError::UnsupportedVersion(1)));

        let e = read_err(&good[..30]);
        assert!(
            matches!(
                e,
                EcdcError::TruncatedHeader {
                    what: "metadata JSON",
                    expected: 55,
                    available: 21
                }
            ),
            "{e}"
        );
        // A length of 4 GiB with a few bytes present: an error, not a 4 GiB allocation.
        let mut huge = b"ECDC\0\xff\xff\xff\xff".to_vec();
        huge.extend_from_slice(b"{}");
        assert!(matches!(
            read_err(&huge),
            EcdcError::TruncatedHeader {
                expected: 4294967295,
                available: 2,
                ..
            }
        ));

        assert!(matches!(
            read_err(&with_json(b"\xff{}")),
            EcdcError::HeaderNotUtf8(_)
        ));
        assert!(matches!(
            read_err(&with_json(b"{\"m\": ")),
            EcdcError::HeaderNotJson(_)
        ));
        assert!(matches!(
            read_err(&with_json(b"")),
            EcdcError::HeaderNotJson(_)
        ));
        let e = read_err(&with_json(b"[1, 2]"));
        assert!(
            matches!(&e, EcdcError::HeaderNotObject { found } if found == "[1,2]"),
            "{e}"
        );

        let full = |m: &str, al: &str, nc: &str, lm: &str| {
            with_json(format!(r#"{{"m": {m}, "al": {al}, "nc": {nc}, "lm": {lm}}}"#).as_bytes())
        };
        for (field, json) in [
            ("m", r#"{"al": 1, "nc": 1, "lm": false}"#),
            ("al", r#"{"m": "encodec_24khz", "nc": 1, "lm": false}"#),
            ("nc", r#"{"m": "encodec_24khz", "al": 1, "lm": false}"#),
            ("lm", r#"{"m": "encodec_24khz", "al": 1, "nc": 1}"#),
        ] {
            let e = read_err(&with_json(json.as_bytes()));
            assert!(
                matches!(e, EcdcError::MissingField { field: f } if f == field),
                "{e}"
            );
            assert!(e.to_string().contains(&format!("\"{field}\"")), "{e}");
        }
        for (field, b) in [
            ("m", full("24", "1", "1", "false")),
            ("al", full("\"encodec_24khz\"", "1.0", "1", "false")),
            ("al", full("\"encodec_24khz\"", "-1", "1", "false")),
            ("al", full("\"encodec_24khz\"", "\"1\"", "1", "false")),
            ("nc", full("\"encodec_24khz\"", "1", "null", "false")),
            ("lm", full("\"encodec_24khz\"", "1", "1", "0")),
        ] {
            let e = read_err(&b);
            assert!(
                matches!(e, EcdcError::MistypedField { field: f, .. } if f == field),
                "{e}"
            );
        }
        let e = read_err(&full("\"x\"", &"9".repeat(100), "1", "false"));
        assert!(
            matches!(e, EcdcError::MistypedField { field: "al", .. }),
            "{e}"
        );
        assert!(e.to_string().len() < 200, "{e}");

        let e = read_err(&full("\"encodec_32khz\"", "1", "1", "false"));
        assert!(matches!(&e, EcdcError::UnknownModel { name } if name == "encodec_32khz"));
        assert!(
            e.to_string().contains("encodec_24khz, encodec_48khz"),
            "{e}"
        );

        let e = read_err(&full("\"encodec_24khz\"", "24000", "8", "true"));
        assert!(matches!(e, EcdcError::EntropyCodedNotSupported));
        assert_eq!(
            e.to_string(),
            "entropy-coded (lm) .ecdc files are not supported yet"
        );

        for (m, nc) in [
            ("encodec_24khz", 0),
            ("encodec_24khz", 33),
            ("encodec_48khz", 17),
        ] {
            let e = read_err(&full(&format!("\"{m}\""), "1", &nc.to_string(), "false"));
            assert!(
                matches!(e, EcdcError::BadNumCodebooks { num_codebooks, .. } if num_codebooks == nc),
                "{e}"
            );
        }
        let e = read_err(&full(
            "\"encodec_24khz\"",
            "1",
            "18446744073709551615",
            "false",
        ));
        assert!(matches!(e, EcdcError::BadNumCodebooks { .. }), "{e}");

        let e = read_err(&full("\"encodec_24khz\"", "0", "8", "false"));
        assert!(matches!(e, EcdcError::EmptyAudio), "{e}");

        // Extra keys and another key order are accepted, as in Python.
        let b = with_json(br#"{"lm": false, "nc": 1, "al": 1, "m": "encodec_24khz", "x": [1]}"#);
        let mut b = b;
        b.extend_from_slice(&[7, 0]);
        let f = from_bytes(&b).unwrap();
        assert_eq!(f.segments[0].codes, [7]);
    }

    #[test]
    fn read_errors_segments() {
        // 24 kHz, 640 samples, K = 2: one segment of 2 frames = 40 bits = 5 bytes.
        let good = to_bytes(&file(M24, 640, 2)).unwrap();
        let head = good.len() - 5;
        for cut in 0..5 {
            let e = read_err(&good[..head + cut]);
            assert!(
                matches!(e, EcdcError::TruncatedSegment { segment: 0, part: SegmentPart::Codes, expected: 5, available } if available == cut as u64),
                "{cut}: {e}"
            );
        }
        let mut extra = good.clone();
        extra.extend_from_slice(&[0, 0, 0]);
        let e = read_err(&extra);
        assert!(matches!(e, EcdcError::TrailingBytes { count: 3 }), "{e}");

        // 48 kHz, 100000 samples, K = 4: segments of 4 + 750, 4 + 750, 4 + 80 bytes.
        let good = to_bytes(&file(M48, 100_000, 4)).unwrap();
        let head = good.len() - (754 * 2 + 84);
        let e = read_err(&good[..head + 2]);
        assert!(
            matches!(
                e,
                EcdcError::TruncatedSegment {
                    segment: 0,
                    part: SegmentPart::Scale,
                    expected: 4,
                    available: 2
                }
            ),
            "{e}"
        );
        let e = read_err(&good[..head + 754 + 754 + 4 + 79]);
        assert!(
            matches!(
                e,
                EcdcError::TruncatedSegment {
                    segment: 2,
                    part: SegmentPart::Codes,
                    expected: 80,
                    available: 79
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("segment 2 codes needs 80 bytes, only 79"),
            "{e}"
        );
        // NaN, infinite, negative and zero scales: the same rule as HF tensors' (`crate::is_valid_scale`).
        for bad in [f32::NAN, f32::INFINITY, -0.5, 0.0] {
            let mut b = good.clone();
            b[head + 754..head + 758].copy_from_slice(&bad.to_be_bytes());
            let e = read_err(&b);
            assert!(
                matches!(e, EcdcError::NonFiniteScale { segment: 1, .. }),
                "{e}"
            );
            assert!(e.to_string().contains("finite and positive"), "{e}");
        }

        // A header claiming a huge length fails at the first short segment without a huge allocation.
        for (m, k) in [("encodec_24khz", 32), ("encodec_48khz", 16)] {
            let json =
                format!(r#"{{"m": "{m}", "al": 18446744073709551615, "nc": {k}, "lm": false}}"#);
            let mut b = with_json(json.as_bytes());
            // 0x3f3f3f3f: a valid 48 kHz scale (0.75).
            b.extend_from_slice(&[0x3f; 100]);
            let e = read_err(&b);
            assert!(
                matches!(
                    e,
                    EcdcError::TruncatedSegment {
                        segment: 0,
                        part: SegmentPart::Codes,
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        for f in [file(M24, 700, 3), file(M48, 48_100, 2)] {
            let good = to_bytes(&f).unwrap();
            for cut in 0..good.len() {
                assert!(from_bytes(&good[..cut]).is_err(), "cut {cut}");
            }
            for i in 0..good.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut b = good.clone();
                    b[i] ^= flip;
                    let _ = from_bytes(&b);
                }
            }
        }
    }

    #[test]
    fn read_io_error_is_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = read_ecdc(&mut Failing).unwrap_err();
        assert!(matches!(e, EcdcError::Io(_)));
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }

    #[test]
    fn write_errors() {
        let mut f = file(M24, 640, 2);
        f.model = "encodec_32khz".into();
        assert!(matches!(write_err(&f), EcdcError::UnknownModel { .. }));

        for k in [0, 33] {
            let mut f = file(M24, 640, 2);
            f.num_codebooks = k;
            assert!(matches!(
                write_err(&f),
                EcdcError::BadNumCodebooks { max: 32, .. }
            ));
        }
        let mut f = file(M48, 640, 2);
        f.num_codebooks = 17;
        assert!(matches!(
            write_err(&f),
            EcdcError::BadNumCodebooks { max: 16, .. }
        ));

        let mut f = file(M24, 640, 2);
        f.audio_length = 0;
        assert!(matches!(write_err(&f), EcdcError::EmptyAudio));

        let mut f = file(M48, 100_000, 2);
        f.segments.pop();
        let e = write_err(&f);
        assert!(
            matches!(
                e,
                EcdcError::WrongSegmentCount {
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{e}"
        );

        let mut f = file(M48, 100_000, 2);
        f.segments[1].num_codebooks = 1;
        let e = write_err(&f);
        assert!(
            matches!(
                e,
                EcdcError::WrongCodebookCount {
                    segment: 1,
                    expected: 2,
                    found: 1
                }
            ),
            "{e}"
        );

        let mut f = file(M48, 100_000, 2);
        f.segments[2].codes.push(0);
        let e = write_err(&f);
        assert!(
            matches!(
                e,
                EcdcError::WrongFrameCount {
                    segment: 2,
                    length: 4960,
                    expected_frames: 16,
                    num_codebooks: 2,
                    expected_codes: 32,
                    found_codes: 33
                }
            ),
            "{e}"
        );

        let mut f = file(M48, 100_000, 2);
        f.segments[2].codes[16 + 5] = 1024;
        let e = write_err(&f);
        assert!(
            matches!(
                e,
                EcdcError::CodeOutOfRange {
                    segment: 2,
                    codebook: 1,
                    frame: 5,
                    value: 1024,
                    limit: 1024
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("segment 2, codebook 1, frame 5: code 1024"),
            "{e}"
        );

        let mut f = file(M48, 100_000, 2);
        f.segments[1].scale = None;
        assert!(matches!(
            write_err(&f),
            EcdcError::MissingScale { segment: 1, .. }
        ));

        let mut f = file(M24, 640, 2);
        f.segments[0].scale = Some(1.0);
        assert!(matches!(
            write_err(&f),
            EcdcError::UnexpectedScale { segment: 0, .. }
        ));

        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 0.0] {
            let mut f = file(M48, 100_000, 2);
            f.segments[0].scale = Some(bad);
            assert!(matches!(
                write_err(&f),
                EcdcError::NonFiniteScale { segment: 0, .. }
            ));
        }

        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = write_ecdc(&mut Failing, &file(M24, 640, 2)).unwrap_err();
        assert!(matches!(e, EcdcError::Io(_)), "{e}");
    }
}
