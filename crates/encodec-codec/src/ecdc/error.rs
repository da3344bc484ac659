//! [`EcdcError`]: why an `.ecdc` file could not be read or written.

use std::fmt;
use std::io;

use super::EcdcModel;

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
